#include "neuron_subgraph.h"

#include <sys/stat.h>

#include <sstream>

namespace whisper_genio::offload {

using backends::DmaBuffer;
using backends::IoDType;
using backends::TensorSpec;
using neuron::call_failed;
namespace abi = neuron::abi;

namespace {
bool in_place(const TensorSpec& t) { return t.dtype == IoDType::kFloat32 && !t.transposed; }

// rows x cols of a tensor for tensor_io's converters: the last dimension is the columns.
void rows_cols(const TensorSpec& t, int64_t* rows, int64_t* cols) {
  *cols = t.shape.empty() ? 1 : t.shape.back();
  *rows = *cols > 0 ? t.numel() / *cols : 0;
}
}  // namespace

StatusOr<std::unique_ptr<NeuronSubgraph>> NeuronSubgraph::create(const NeuronSubgraphConfig& config) {
  if (config.inputs.empty() || config.outputs.empty()) return invalid_argument(config.name + ": no inputs or outputs declared");
  for (const auto* list : {&config.inputs, &config.outputs}) {
    for (const TensorSpec& t : *list) {
      Status s = t.validate();
      if (!s.ok()) return bad_model(config.name + ": " + s.message());
    }
  }
  struct stat st;
  if (config.dla_path.empty() || ::stat(config.dla_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return not_found(config.name + ": subgraph file not found: '" + config.dla_path + "'");
  }
  std::unique_ptr<NeuronSubgraph> g(new NeuronSubgraph());
  g->config_ = config;
  auto lib = neuron::NeuronLibrary::load(config.library);
  if (!lib.ok()) return lib.status();
  g->lib_ = std::move(lib).value();
  // From here on the destructor releases the runtime whatever fails.
  WG_RETURN_IF_ERROR(g->open_runtime());
  WG_RETURN_IF_ERROR(g->check_sizes());
  WG_RETURN_IF_ERROR(g->allocate_and_bind());
  return g;
}

NeuronSubgraph::~NeuronSubgraph() { release_runtime(); }

void NeuronSubgraph::release_runtime() {
  if (rt_ == nullptr) return;
  if (v2_) {
    lib_->api().v2_release(rt_);
  } else {
    lib_->api().release(rt_);
  }
  rt_ = nullptr;
}

Status NeuronSubgraph::open_runtime() {
  const neuron::Api& a = lib_->api();
  using Api = NeuronSubgraphConfig::Api;
  if (config_.api == Api::kV2 && !lib_->has_v2()) {
    return unavailable(lib_->resolved_path() + " lacks the V2 API; use neuron_api='v1' or 'auto'");
  }
  v2_ = config_.api == Api::kV2 || (config_.api == Api::kAuto && lib_->has_v2());
  if (v2_) {
    const int rc = a.v2_create(config_.dla_path.c_str(), 1, &rt_, 2048);
    if (rc != abi::kNoError) {
      rt_ = nullptr;
      return bad_model(config_.name + ": loading " + config_.dla_path + " failed: " +
                       call_failed("NeuronRuntimeV2_create", rc));
    }
    return Status::Ok();
  }
  const std::vector<unsigned char> env = lib_->env_options(config_.cpu_threads);
  int rc = a.create(env.data(), &rt_);
  if (rc != abi::kNoError) {
    rt_ = nullptr;
    return unavailable(config_.name + ": the Neuron runtime could not start: " + call_failed("NeuronRuntime_create", rc));
  }
  rc = a.loadNetworkFromFile(rt_, config_.dla_path.c_str());
  if (rc != abi::kNoError) {
    return bad_model(config_.name + ": loading " + config_.dla_path + " failed: " +
                     call_failed("NeuronRuntime_loadNetworkFromFile", rc));
  }
  return Status::Ok();
}

Status NeuronSubgraph::check_sizes() {
  const neuron::Api& a = lib_->api();
  auto in_number = v2_ ? a.v2_getInputNumber : a.getInputNumber;
  auto out_number = v2_ ? a.v2_getOutputNumber : a.getOutputNumber;
  size_t n_in = config_.inputs.size(), n_out = config_.outputs.size();
  int rc = abi::kNoError;
  if (in_number != nullptr && (rc = in_number(rt_, &n_in)) != abi::kNoError) {
    return runtime_error(call_failed(v2_ ? "NeuronRuntimeV2_getInputNumber" : "NeuronRuntime_getInputNumber", rc));
  }
  if (out_number != nullptr && (rc = out_number(rt_, &n_out)) != abi::kNoError) {
    return runtime_error(call_failed(v2_ ? "NeuronRuntimeV2_getOutputNumber" : "NeuronRuntime_getOutputNumber", rc));
  }
  if (n_in != config_.inputs.size() || n_out != config_.outputs.size()) {
    return bad_model(config_.name + ": " + config_.dla_path + " has " + std::to_string(n_in) + " input(s) and " +
                     std::to_string(n_out) + " output(s); the manifest declares " +
                     std::to_string(config_.inputs.size()) + " and " + std::to_string(config_.outputs.size()));
  }
  auto in_size = v2_ ? a.v2_getInputSize : a.getInputSize;
  auto out_size = v2_ ? a.v2_getOutputSize : a.getOutputSize;
  std::string diffs;
  for (int pass = 0; pass < 2; ++pass) {
    const auto& specs = pass == 0 ? config_.inputs : config_.outputs;
    for (size_t i = 0; i < specs.size(); ++i) {
      size_t bytes = 0;
      rc = (pass == 0 ? in_size : out_size)(rt_, i, &bytes);
      if (rc != abi::kNoError) return runtime_error(call_failed(pass == 0 ? "getInputSize" : "getOutputSize", rc));
      if (bytes != specs[i].bytes()) {
        if (!diffs.empty()) diffs += "; ";
        diffs += std::string(pass == 0 ? "input " : "output ") + std::to_string(i) + ": the manifest declares " +
                 specs[i].describe() + ": " + backends::describe_size_mismatch(bytes, specs[i]);
      }
    }
  }
  if (!diffs.empty()) {
    return bad_model(config_.name + ": " + config_.dla_path + " does not match the manifest: " + diffs);
  }
  return Status::Ok();
}

Status NeuronSubgraph::allocate_and_bind() {
  const neuron::Api& a = lib_->api();
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::string heap = attempt == 0 ? config_.dma_heap : std::string();
    in_.clear();
    out_.clear();
    for (const TensorSpec& t : config_.inputs) {
      auto b = DmaBuffer::allocate(t.bytes(), heap);
      if (!b.ok()) return b.status();
      in_.push_back(std::move(b).value());
    }
    for (const TensorSpec& t : config_.outputs) {
      auto b = DmaBuffer::allocate(t.bytes(), heap);
      if (!b.ok()) return b.status();
      out_.push_back(std::move(b).value());
    }
    if (v2_) break;
    // V1: bound here, once; never again (the stand-in tests count these calls).
    Status s;
    for (size_t i = 0; i < in_.size() && s.ok(); ++i) {
      const int rc = a.setInput(rt_, i, in_[i].data(), in_[i].size(), abi::BufferAttribute{in_[i].fd()});
      if (rc != abi::kNoError) s = runtime_error(call_failed("NeuronRuntime_setInput", rc));
    }
    for (size_t i = 0; i < out_.size() && s.ok(); ++i) {
      const int rc = a.setOutput(rt_, i, out_[i].data(), out_[i].size(), abi::BufferAttribute{out_[i].fd()});
      if (rc != abi::kNoError) s = runtime_error(call_failed("NeuronRuntime_setOutput", rc));
    }
    if (s.ok()) break;
    bool any_fd = false;
    for (const auto& b : in_) any_fd = any_fd || b.fd() >= 0;
    for (const auto& b : out_) any_fd = any_fd || b.fd() >= 0;
    if (attempt == 0 && any_fd) {
      notes_ += "the runtime refused the dma-buf fds (" + s.message() + "); using host memory. ";
      continue;
    }
    return Status(s.code(), config_.name + ": " + s.message());
  }
  in_stage_.resize(in_.size());
  out_stage_.resize(out_.size());
  for (size_t i = 0; i < in_.size(); ++i) {
    if (!in_place(config_.inputs[i])) {
      if (!in_stage_[i].reset(static_cast<size_t>(config_.inputs[i].numel()))) {
        return Status(StatusCode::kOutOfMemory, "allocating a subgraph staging buffer");
      }
      in_stage_[i].zero();
    }
    v2_in_.push_back(abi::IOBuffer{in_[i].data(), in_[i].size(), in_[i].fd(), 0, 0, 0});
  }
  for (size_t i = 0; i < out_.size(); ++i) {
    if (!in_place(config_.outputs[i])) {
      if (!out_stage_[i].reset(static_cast<size_t>(config_.outputs[i].numel()))) {
        return Status(StatusCode::kOutOfMemory, "allocating a subgraph staging buffer");
      }
      out_stage_[i].zero();
    }
    v2_out_.push_back(abi::IOBuffer{out_[i].data(), out_[i].size(), out_[i].fd(), 0, 0, 0});
  }
  return Status::Ok();
}

float* NeuronSubgraph::input(size_t i) {
  return in_stage_[i].empty() ? static_cast<float*>(in_[i].data()) : in_stage_[i].data();
}

const float* NeuronSubgraph::output(size_t i) const {
  return out_stage_[i].empty() ? static_cast<const float*>(out_[i].data()) : out_stage_[i].data();
}

Status NeuronSubgraph::run() {
  if (rt_ == nullptr) return internal_error(config_.name + ": no runtime");
  for (size_t i = 0; i < in_.size(); ++i) {
    if (!in_stage_[i].empty()) {
      int64_t r, c;
      rows_cols(config_.inputs[i], &r, &c);
      backends::quantize_from_float(in_stage_[i].data(), r, c, config_.inputs[i], in_[i].data());
    }
    // Hand the CPU's writes to the device (a no-op for host memory).
    WG_RETURN_IF_ERROR(in_[i].end_cpu_access(true));
  }
  for (auto& b : out_) WG_RETURN_IF_ERROR(b.end_cpu_access(false));
  const neuron::Api& a = lib_->api();
  int rc;
  const char* fn;
  if (v2_) {
    rc = a.v2_run(rt_, abi::SyncInferenceRequest{v2_in_.data(), v2_out_.data()});
    fn = "NeuronRuntimeV2_run";
  } else {
    rc = a.inference(rt_);
    fn = "NeuronRuntime_inference";
  }
  for (auto& b : in_) WG_RETURN_IF_ERROR(b.begin_cpu_access(true));
  for (auto& b : out_) WG_RETURN_IF_ERROR(b.begin_cpu_access(false));
  if (rc != abi::kNoError) return runtime_error(config_.name + ": " + call_failed(fn, rc));
  ++runs_;
  for (size_t i = 0; i < out_.size(); ++i) {
    if (!out_stage_[i].empty()) {
      int64_t r, c;
      rows_cols(config_.outputs[i], &r, &c);
      backends::dequantize_to_float(out_[i].data(), r, c, config_.outputs[i], out_stage_[i].data());
    }
  }
  return Status::Ok();
}

std::string NeuronSubgraph::describe() const {
  std::ostringstream s;
  s << "neuron " << config_.dla_path << " (" << api_name() << ", " << (in_.empty() ? "?" : in_[0].kind_name())
    << " memory";
  for (size_t i = 0; i < config_.inputs.size(); ++i) s << "; in " << config_.inputs[i].describe();
  for (size_t i = 0; i < config_.outputs.size(); ++i) s << "; out " << config_.outputs[i].describe();
  s << ")";
  if (!notes_.empty()) s << " " << notes_;
  return s.str();
}

StatusOr<std::unique_ptr<NeuronDense>> NeuronDense::create(const NeuronSubgraphConfig& config, int rows, int64_t in,
                                                           int64_t out) {
  if (config.inputs.size() != 1 || config.outputs.size() != 1) {
    return bad_model(config.name + ": a linear subgraph has one input and one output; the manifest declares " +
                     std::to_string(config.inputs.size()) + " and " + std::to_string(config.outputs.size()));
  }
  if (config.inputs[0].numel() != rows * in || config.outputs[0].numel() != rows * out) {
    return bad_model(config.name + ": the manifest declares " + config.inputs[0].describe() + " -> " +
                     config.outputs[0].describe() + "; this model needs [" + std::to_string(rows) + ", " +
                     std::to_string(in) + "] -> [" + std::to_string(rows) + ", " + std::to_string(out) + "]");
  }
  auto g = NeuronSubgraph::create(config);
  if (!g.ok()) return g.status();
  std::unique_ptr<NeuronDense> d(new NeuronDense());
  d->g_ = std::move(g).value();
  d->rows_ = rows;
  d->in_f_ = in;
  d->out_f_ = out;
  return d;
}

StatusOr<std::unique_ptr<NeuronLayerStep>> NeuronLayerStep::create(const NeuronSubgraphConfig& config, int rows,
                                                                   int64_t d, int n_ctx, int64_t n_audio) {
  if (config.inputs.size() != 6 || config.outputs.size() != 3) {
    return bad_model(config.name + ": a layer step has 6 inputs (x, self_k, self_v, cross_k, cross_v, mask) and 3 "
                     "outputs (x, k, v); the manifest declares " + std::to_string(config.inputs.size()) + " and " +
                     std::to_string(config.outputs.size()));
  }
  const int64_t B = rows;
  const int64_t want_in[6] = {B * d, B * n_ctx * d, B * n_ctx * d, n_audio * d, n_audio * d, B * n_ctx};
  const char* names[6] = {"x", "self_k", "self_v", "cross_k", "cross_v", "mask"};
  for (int i = 0; i < 6; ++i) {
    if (config.inputs[i].numel() != want_in[i]) {
      return bad_model(config.name + ": input " + names[i] + " is declared " + config.inputs[i].describe() +
                       "; this model needs " + std::to_string(want_in[i]) + " elements");
    }
  }
  for (int i = 1; i < 3; ++i) {
    if (!in_place(config.inputs[i])) {
      return bad_model(config.name + ": the KV cache inputs must be float32 in the host layout (they are the "
                       "decoder's cache itself); the manifest declares " + config.inputs[i].describe());
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (config.outputs[i].numel() != B * d) {
      return bad_model(config.name + ": output " + std::to_string(i) + " is declared " +
                       config.outputs[i].describe() + "; this model needs [" + std::to_string(B) + ", " +
                       std::to_string(d) + "]");
    }
  }
  auto g = NeuronSubgraph::create(config);
  if (!g.ok()) return g.status();
  std::unique_ptr<NeuronLayerStep> s(new NeuronLayerStep());
  s->g_ = std::move(g).value();
  s->rows_ = rows;
  s->n_ctx_ = n_ctx;
  return s;
}

}  // namespace whisper_genio::offload
