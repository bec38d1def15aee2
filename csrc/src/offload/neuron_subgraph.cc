#include "neuron_subgraph.h"

#include <sys/stat.h>

#include <sstream>

namespace whisper_genio::offload {

using backends::DmaBuffer;
using backends::IoDType;
using backends::TensorSpec;

namespace {
bool in_place(const TensorSpec& t) { return t.dtype == IoDType::kFloat32 && !t.transposed; }

// rows x cols of a tensor for tensor_io's converters: the last dimension is the columns.
void rows_cols(const TensorSpec& t, int64_t* rows, int64_t* cols) {
  *cols = t.shape.empty() ? 1 : t.shape.back();
  *rows = *cols > 0 ? t.numel() / *cols : 0;
}

// A subgraph's failures name it: one model loads many subgraphs.
Status named(const std::string& name, const Status& s) {
  return s.ok() ? s : Status(s.code(), name + ": " + s.message());
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
  auto rt = neuron::Runtime::open(std::move(lib).value(), config.dla_path, config.api, config.cpu_threads);
  if (!rt.ok()) return named(config.name, rt.status());
  g->rt_ = std::move(rt).value();
  // From here on the runtime is released with `g`, whatever fails.
  WG_RETURN_IF_ERROR(named(config.name, g->check_sizes()));
  WG_RETURN_IF_ERROR(g->allocate_and_bind());
  return g;
}

NeuronSubgraph::~NeuronSubgraph() = default;

Status NeuronSubgraph::check_sizes() {
  size_t n_in = config_.inputs.size(), n_out = config_.outputs.size();
  WG_RETURN_IF_ERROR(rt_->io_counts(&n_in, &n_out));
  if (n_in != config_.inputs.size() || n_out != config_.outputs.size()) {
    return bad_model(config_.dla_path + " has " + std::to_string(n_in) + " input(s) and " + std::to_string(n_out) +
                     " output(s); the manifest declares " + std::to_string(config_.inputs.size()) + " and " +
                     std::to_string(config_.outputs.size()));
  }
  auto diffs = rt_->size_mismatches(config_.inputs, config_.outputs);
  if (!diffs.ok()) return diffs.status();
  if (!diffs.value().empty()) return bad_model(config_.dla_path + " does not match the manifest: " + diffs.value());
  return Status::Ok();
}

Status NeuronSubgraph::bind_v1() {
  for (size_t i = 0; i < in_.size(); ++i) WG_RETURN_IF_ERROR(rt_->bind_input(i, in_[i]));
  for (size_t i = 0; i < out_.size(); ++i) WG_RETURN_IF_ERROR(rt_->bind_output(i, out_[i]));
  return Status::Ok();
}

Status NeuronSubgraph::allocate_and_bind() {
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
    if (rt_->v2()) break;
    // V1: bound here, once; never again (the stand-in tests count these calls).
    Status s = bind_v1();
    if (s.ok()) break;
    bool any_fd = false;
    for (const auto& b : in_) any_fd = any_fd || b.fd() >= 0;
    for (const auto& b : out_) any_fd = any_fd || b.fd() >= 0;
    if (attempt == 0 && any_fd) {
      notes_ += "the runtime refused the dma-buf fds (" + s.message() + "); using host memory. ";
      continue;
    }
    return named(config_.name, s);
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
    v2_in_.push_back(neuron::io_buffer(in_[i]));
  }
  for (size_t i = 0; i < out_.size(); ++i) {
    if (!in_place(config_.outputs[i])) {
      if (!out_stage_[i].reset(static_cast<size_t>(config_.outputs[i].numel()))) {
        return Status(StatusCode::kOutOfMemory, "allocating a subgraph staging buffer");
      }
      out_stage_[i].zero();
    }
    v2_out_.push_back(neuron::io_buffer(out_[i]));
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
  const Status rs = rt_->run(v2_in_.data(), v2_out_.data());
  for (auto& b : in_) WG_RETURN_IF_ERROR(b.begin_cpu_access(true));
  for (auto& b : out_) WG_RETURN_IF_ERROR(b.begin_cpu_access(false));
  if (!rs.ok()) return named(config_.name, rs);
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
