#include "neuron_encoder.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <sstream>

namespace whisper_genio::backends {

TensorSpec NeuronEncoderConfig::default_input(const ModelDims& dims) {
  TensorSpec t;
  t.name = "mel";
  t.shape = {1, dims.n_mels, 2 * static_cast<int64_t>(dims.n_audio_ctx)};
  return t;
}

TensorSpec NeuronEncoderConfig::default_output(const ModelDims& dims) {
  TensorSpec t;
  t.name = "states";
  t.shape = {1, dims.n_audio_ctx, dims.n_audio_state};
  return t;
}

namespace {

uint64_t fnv1a(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

StatusOr<std::unique_ptr<NeuronEncoderBackend>> NeuronEncoderBackend::create(const NeuronEncoderConfig& config) {
  WG_RETURN_IF_ERROR(config.dims.validate());
  const int64_t mel_elems = static_cast<int64_t>(config.dims.n_mels) * 2 * config.dims.n_audio_ctx;
  const int64_t state_elems = static_cast<int64_t>(config.dims.n_audio_ctx) * config.dims.n_audio_state;
  WG_RETURN_IF_ERROR(config.input.validate());
  WG_RETURN_IF_ERROR(config.output.validate());
  if (config.input.numel() != mel_elems) {
    return bad_model("the manifest's encoder input " + config.input.describe() + " does not hold one mel window [" +
                     std::to_string(config.dims.n_mels) + ", " + std::to_string(2 * config.dims.n_audio_ctx) +
                     "] of this model");
  }
  if (config.output.numel() != state_elems) {
    return bad_model("the manifest's encoder output " + config.output.describe() + " does not hold the states [" +
                     std::to_string(config.dims.n_audio_ctx) + ", " + std::to_string(config.dims.n_audio_state) +
                     "] this model's decoder takes");
  }
  if (config.set_qos) WG_RETURN_IF_ERROR(config.qos.validate());
  struct stat st;
  if (config.dla_path.empty() || ::stat(config.dla_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return not_found("encoder DLA not found: '" + config.dla_path + "'");
  }

  std::unique_ptr<NeuronEncoderBackend> b(new NeuronEncoderBackend());
  b->config_ = config;
  auto lib = neuron::NeuronLibrary::load(config.library);
  if (!lib.ok()) return lib.status();
  auto rt = neuron::Runtime::open(std::move(lib).value(), config.dla_path, config.api, config.cpu_threads);
  if (!rt.ok()) return rt.status();
  b->rt_ = std::move(rt).value();
  // From here on the runtime is released with `b`, whatever fails.
  WG_RETURN_IF_ERROR(b->check_sizes());
  WG_RETURN_IF_ERROR(b->allocate_and_bind());
  if (config.set_qos) WG_RETURN_IF_ERROR(b->rt_->set_qos(config.qos));
  if (config.self_test) WG_RETURN_IF_ERROR(b->self_test());
  return b;
}

NeuronEncoderBackend::~NeuronEncoderBackend() = default;

Status NeuronEncoderBackend::check_sizes() {
  size_t n_in = 1, n_out = 1;
  WG_RETURN_IF_ERROR(rt_->io_counts(&n_in, &n_out));
  if (n_in != 1 || n_out != 1) {
    return bad_model(config_.dla_path + " has " + std::to_string(n_in) + " input(s) and " + std::to_string(n_out) +
                     " output(s); a Whisper encoder DLA has one of each (mel -> states)");
  }
  auto diffs = rt_->size_mismatches({config_.input}, {config_.output});
  if (!diffs.ok()) return diffs.status();
  if (!diffs.value().empty()) {
    return bad_model(config_.dla_path + " does not match the model bundle's manifest: " + diffs.value() +
                     ". Fix the manifest's dtype/shape (or pass them explicitly), or recompile the DLA");
  }
  return Status::Ok();
}

Status NeuronEncoderBackend::allocate_and_bind() {
  const bool in_direct = config_.input.dtype == IoDType::kFloat32 && !config_.input.transposed;
  const bool out_direct = config_.output.dtype == IoDType::kFloat32 && !config_.output.transposed;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::string heap = attempt == 0 ? config_.dma_heap : std::string();
    auto in = DmaBuffer::allocate(config_.input.bytes(), heap);
    if (!in.ok()) return in.status();
    auto out = DmaBuffer::allocate(config_.output.bytes(), heap);
    if (!out.ok()) return out.status();
    input_ = std::move(in).value();
    output_ = std::move(out).value();
    if (rt_->v2()) break;  // V2 buffers are handed over per run
    Status s = bind_v1();
    if (s.ok()) break;
    if (attempt == 0 && (input_.fd() >= 0 || output_.fd() >= 0)) {
      notes_ += "the runtime refused the dma-buf fds (" + s.message() + "); using host memory. ";
      continue;
    }
    return s;
  }
  if (!in_direct && !mel_staging_.reset(static_cast<size_t>(config_.input.numel()))) {
    return Status(StatusCode::kOutOfMemory, "allocating the mel staging buffer");
  }
  if (!out_direct && !states_.reset(static_cast<size_t>(config_.output.numel()))) {
    return Status(StatusCode::kOutOfMemory, "allocating the encoder states buffer");
  }
  mel_staging_.zero();
  states_.zero();
  v2_in_ = neuron::io_buffer(input_);
  v2_out_ = neuron::io_buffer(output_);
  return Status::Ok();
}

Status NeuronEncoderBackend::bind_v1() {
  WG_RETURN_IF_ERROR(rt_->bind_input(0, input_));
  return rt_->bind_output(0, output_);
}

float* NeuronEncoderBackend::mel_buffer() {
  if (!mel_staging_.empty()) return mel_staging_.data();
  if (!input_cpu_open_) {
    Status s = input_.begin_cpu_access(true);
    if (!s.ok() && pending_.ok()) pending_ = s;
    input_cpu_open_ = true;
  }
  return static_cast<float*>(input_.data());
}

StatusOr<EncoderStates> NeuronEncoderBackend::run() {
  if (rt_ == nullptr) return internal_error("the neuron encoder has no runtime");
  if (!pending_.ok()) {
    Status s = pending_;
    pending_ = Status::Ok();
    return s;
  }
  const ModelDims& d = config_.dims;
  const int64_t n_mels = d.n_mels, frames = 2 * static_cast<int64_t>(d.n_audio_ctx);
  // Mel -> DLA input (in place, or one quantizing pass), then hand the pages to the device.
  if (!mel_staging_.empty()) {
    if (!input_cpu_open_) {
      WG_RETURN_IF_ERROR(input_.begin_cpu_access(true));
      input_cpu_open_ = true;
    }
    quantize_from_float(mel_staging_.data(), n_mels, frames, config_.input, input_.data());
  }
  if (input_cpu_open_) {
    input_cpu_open_ = false;
    WG_RETURN_IF_ERROR(input_.end_cpu_access(true));
  }
  if (output_cpu_open_) {
    output_cpu_open_ = false;
    WG_RETURN_IF_ERROR(output_.end_cpu_access(false));
  }
  if (!rt_->v2() && config_.rebind_each_run) WG_RETURN_IF_ERROR(bind_v1());
  WG_RETURN_IF_ERROR(rt_->run(&v2_in_, &v2_out_));
  ++runs_;
  WG_RETURN_IF_ERROR(output_.begin_cpu_access(false));
  output_cpu_open_ = true;
  const float* states = static_cast<const float*>(output_.data());
  if (!states_.empty()) {
    dequantize_to_float(output_.data(), d.n_audio_ctx, d.n_audio_state, config_.output, states_.data());
    states = states_.data();
  }
  return EncoderStates{states, d.n_audio_ctx, d.n_audio_state};
}

Status NeuronEncoderBackend::self_test() {
  const ModelDims& d = config_.dims;
  const size_t n_mel = static_cast<size_t>(d.n_mels) * 2 * d.n_audio_ctx;
  const size_t n_states = static_cast<size_t>(d.n_audio_ctx) * d.n_audio_state;
  uint64_t hashes[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    float* mel = mel_buffer();
    for (size_t i = 0; i < n_mel; ++i) {
      // Two different log-mel-like windows: flat silence, then a varying pattern.
      mel[i] = k == 0 ? -0.5f : static_cast<float>(0.6 * std::sin(0.001 * static_cast<double>(i)) + 0.2);
    }
    auto s = run();
    if (!s.ok()) return Status(s.status().code(), "self-test: " + s.status().message());
    const float* p = s.value().data;
    for (size_t i = 0; i < n_states; ++i) {
      if (!std::isfinite(p[i])) {
        return runtime_error("self-test: the encoder DLA produced a non-finite value (states[" + std::to_string(i) +
                             "]): check the DLA's output dtype, scale and zero point");
      }
    }
    hashes[k] = fnv1a(p, n_states * sizeof(float));
  }
  float* mel = mel_buffer();
  std::memset(mel, 0, n_mel * sizeof(float));
  if (hashes[0] == hashes[1]) {
    return runtime_error(
        "self-test: the encoder output did not change when its input changed (two different mel windows gave "
        "identical states). The runtime appears to latch the input of its first inference (reported for V1 with "
        "host buffers on some runtimes): try neuron_api='v2', keep rebinding on, or WHISPER_GENIO_DMA_HEAP; see "
        "docs/on-device.md");
  }
  return Status::Ok();
}

std::string NeuronEncoderBackend::describe() const {
  std::ostringstream s;
  const neuron::NeuronLibrary& lib = rt_->library();
  s << "neuron: " << config_.dla_path << " on " << lib.resolved_path() << " (runtime " << lib.version_string() << ", "
    << api_name() << " API, " << neuron::layout_name(lib.layout()) << " layouts); input "
    << config_.input.describe() << " in " << input_.kind_name() << " memory"
    << (input_zero_copy() ? " (the mel is written there in place)" : " (quantized from a float staging buffer per run)")
    << "; output " << config_.output.describe() << " in " << output_.kind_name() << " memory"
    << (output_zero_copy() ? " (read by the decoder in place)" : " (dequantized once per run into float states)");
  s << "; memory: " << input_.note();
  if (!notes_.empty()) s << "; " << notes_;
  return s.str();
}

}  // namespace whisper_genio::backends
