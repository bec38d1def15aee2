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
  struct stat st;
  if (config.dla_path.empty() || ::stat(config.dla_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return not_found("encoder DLA not found: '" + config.dla_path + "'");
  }
  neuron::SubgraphConfig g;
  g.dla_path = config.dla_path;
  g.inputs = {config.input};
  g.outputs = {config.output};
  g.api = config.api;
  g.dma_heap = config.dma_heap;
  g.cpu_threads = config.cpu_threads;
  g.rebind_each_run = config.rebind_each_run;
  if (config.set_qos) g.qos = config.qos;
  g.library = config.library;
  auto subgraph = neuron::Subgraph::create(g);
  if (!subgraph.ok()) {
    const Status& s = subgraph.status();
    if (s.code() != StatusCode::kBadModel || s.message().find("does not match the manifest") == std::string::npos) return s;
    return bad_model(s.message() + ". Fix the manifest's dtype/shape (or pass them explicitly), or recompile the DLA");
  }
  std::unique_ptr<NeuronEncoderBackend> b(new NeuronEncoderBackend());
  b->config_ = config;
  b->g_ = std::move(subgraph).value();
  if (config.self_test) WG_RETURN_IF_ERROR(b->self_test());
  return b;
}

NeuronEncoderBackend::~NeuronEncoderBackend() = default;

StatusOr<EncoderStates> NeuronEncoderBackend::run() {
  WG_RETURN_IF_ERROR(g_->run());
  const ModelDims& d = config_.dims;
  return EncoderStates{g_->output(0), d.n_audio_ctx, d.n_audio_state};
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
  const neuron::NeuronLibrary& lib = library();
  s << "neuron: " << config_.dla_path << " on " << lib.resolved_path() << " (runtime " << lib.version_string() << ", "
    << api_name() << " API, " << neuron::layout_name(lib.layout()) << " layouts); input "
    << g_->input_spec(0).describe() << " in " << input_buffer().kind_name() << " memory"
    << (input_zero_copy() ? " (the mel is written there in place)" : " (converted from a float staging buffer per run)")
    << "; output " << g_->output_spec(0).describe() << " in " << output_buffer().kind_name() << " memory"
    << (output_zero_copy() ? " (read by the decoder in place)" : " (converted once per run into float states)");
  s << "; memory: " << input_buffer().note();
  if (!notes().empty()) s << "; " << notes();
  return s.str();
}

}  // namespace whisper_genio::backends
