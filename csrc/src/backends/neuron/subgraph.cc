#include "subgraph.h"

#include <sys/stat.h>

#include <sstream>

namespace whisper_genio::neuron {

using backends::DmaBuffer;
using backends::IoDType;
using backends::TensorSpec;

namespace {
// The device buffer can be the host's float view: float32 in the host layout, unpadded or (when
// the caller takes a row stride) padded only in its last dimension.
bool in_place(const TensorSpec& t, bool row_stride) {
  return t.dtype == IoDType::kFloat32 && !t.transposed && (!t.padded() || (row_stride && t.padded_last_dim_only()));
}

// A subgraph's failures name it: one model loads many subgraphs.
Status named(const std::string& name, const Status& s) {
  return s.ok() || name.empty() ? s : Status(s.code(), name + ": " + s.message());
}
}  // namespace

StatusOr<std::unique_ptr<Subgraph>> Subgraph::create(const SubgraphConfig& config) {
  if (config.inputs.empty() || config.outputs.empty()) return invalid_argument(config.name + ": no inputs or outputs declared");
  for (const auto* list : {&config.inputs, &config.outputs}) {
    for (const TensorSpec& t : *list) {
      Status s = t.validate();
      if (!s.ok()) return named(config.name, bad_model(s.message()));
    }
  }
  if (config.qos) WG_RETURN_IF_ERROR(config.qos->validate());
  struct stat st;
  if (config.dla_path.empty() || ::stat(config.dla_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return named(config.name, not_found("subgraph file not found: '" + config.dla_path + "'"));
  }
  std::unique_ptr<Subgraph> g(new Subgraph());
  g->config_ = config;
  auto lib = NeuronLibrary::load(config.library);
  if (!lib.ok()) return lib.status();
  auto rt = Runtime::open(std::move(lib).value(), config.dla_path, config.api, config.cpu_threads);
  if (!rt.ok()) return named(config.name, rt.status());
  g->rt_ = std::move(rt).value();
  // From here on the runtime is released with `g`, whatever fails.
  WG_RETURN_IF_ERROR(named(config.name, g->check_sizes()));
  WG_RETURN_IF_ERROR(g->allocate_and_bind());
  if (config.qos) WG_RETURN_IF_ERROR(named(config.name, g->rt_->set_qos(*config.qos)));
  return g;
}

Subgraph::~Subgraph() = default;

Status Subgraph::check_sizes() {
  size_t n_in = config_.inputs.size(), n_out = config_.outputs.size();
  WG_RETURN_IF_ERROR(rt_->io_counts(&n_in, &n_out));
  if (n_in != config_.inputs.size() || n_out != config_.outputs.size()) {
    return bad_model(config_.dla_path + " has " + std::to_string(n_in) + " input(s) and " + std::to_string(n_out) +
                     " output(s); the manifest declares " + std::to_string(config_.inputs.size()) + " and " +
                     std::to_string(config_.outputs.size()));
  }
  auto diffs = rt_->resolve_io(&config_.inputs, &config_.outputs, &notes_);
  if (!diffs.ok()) return diffs.status();
  if (!diffs.value().empty()) return bad_model(config_.dla_path + " does not match the manifest: " + diffs.value());
  return Status::Ok();
}

Status Subgraph::bind_v1() {
  for (size_t i = 0; i < in_.size(); ++i) WG_RETURN_IF_ERROR(rt_->bind_input(i, in_[i]));
  for (size_t i = 0; i < out_.size(); ++i) WG_RETURN_IF_ERROR(rt_->bind_output(i, out_[i]));
  return Status::Ok();
}

Status Subgraph::allocate(const std::string& heap) {
  in_.clear();
  out_.clear();
  for (const TensorSpec& t : config_.inputs) {
    WG_ASSIGN_OR_RETURN(DmaBuffer b, DmaBuffer::allocate(t.device_bytes(), heap));
    in_.push_back(std::move(b));
  }
  for (const TensorSpec& t : config_.outputs) {
    WG_ASSIGN_OR_RETURN(DmaBuffer b, DmaBuffer::allocate(t.device_bytes(), heap));
    out_.push_back(std::move(b));
  }
  return Status::Ok();
}

// Device buffers from the dma-heap (host memory when the runtime refuses their fds); V1 binds
// them here, once (the stand-in tests count these calls).
Status Subgraph::allocate_and_bind() {
  for (int attempt = 0; attempt < 2; ++attempt) {
    WG_RETURN_IF_ERROR(allocate(attempt == 0 ? config_.dma_heap : std::string()));
    if (rt_->v2()) break;
    Status s = bind_v1();
    if (s.ok()) break;
    bool any_fd = false;
    for (const auto* list : {&in_, &out_}) {
      for (const auto& b : *list) any_fd = any_fd || b.fd() >= 0;
    }
    if (attempt == 0 && any_fd) {
      notes_ += "the runtime refused the dma-buf fds (" + s.message() + "); using host memory. ";
      continue;
    }
    return named(config_.name, s);
  }
  WG_RETURN_IF_ERROR(stage());
  // The CPU owns the buffers between runs.
  for (auto& b : in_) WG_RETURN_IF_ERROR(b.begin_cpu_access(true));
  for (auto& b : out_) WG_RETURN_IF_ERROR(b.begin_cpu_access(false));
  return Status::Ok();
}

// Float staging where a tensor is not float32 in the host layout; the V2 IOBuffer arrays.
Status Subgraph::stage() {
  const Status oom(StatusCode::kOutOfMemory, "allocating a subgraph staging buffer");
  in_stage_.resize(in_.size());
  out_stage_.resize(out_.size());
  for (size_t i = 0; i < in_.size(); ++i) {
    if (!in_place(config_.inputs[i], config_.allow_row_stride)) {
      if (!in_stage_[i].reset(static_cast<size_t>(config_.inputs[i].numel()))) return oom;
      in_stage_[i].zero();
    }
    v2_in_.push_back(io_buffer(in_[i]));
  }
  for (size_t i = 0; i < out_.size(); ++i) {
    if (!in_place(config_.outputs[i], config_.allow_row_stride)) {
      if (!out_stage_[i].reset(static_cast<size_t>(config_.outputs[i].numel()))) return oom;
      out_stage_[i].zero();
    }
    v2_out_.push_back(io_buffer(out_[i]));
  }
  return Status::Ok();
}

int64_t Subgraph::input_stride(size_t i) const {
  const TensorSpec& t = config_.inputs[i];
  int64_t r, c;
  backends::host_rows_cols(t, &r, &c);
  return in_stage_[i].empty() ? t.device_row_stride() : c;
}

int64_t Subgraph::output_stride(size_t i) const {
  const TensorSpec& t = config_.outputs[i];
  int64_t r, c;
  backends::host_rows_cols(t, &r, &c);
  return out_stage_[i].empty() ? t.device_row_stride() : c;
}

float* Subgraph::input(size_t i) {
  return in_stage_[i].empty() ? static_cast<float*>(in_[i].data()) : in_stage_[i].data();
}

const float* Subgraph::output(size_t i) const {
  return out_stage_[i].empty() ? static_cast<const float*>(out_[i].data()) : out_stage_[i].data();
}

Status Subgraph::run() {
  if (rt_ == nullptr) return internal_error(config_.name + ": no runtime");
  for (size_t i = 0; i < in_.size(); ++i) {
    if (!in_stage_[i].empty()) {
      int64_t r, c;
      backends::host_rows_cols(config_.inputs[i], &r, &c);
      backends::quantize_from_float(in_stage_[i].data(), r, c, config_.inputs[i], in_[i].data());
    }
    // Hand the CPU's writes to the device (a no-op for host memory).
    WG_RETURN_IF_ERROR(in_[i].end_cpu_access(true));
  }
  for (auto& b : out_) WG_RETURN_IF_ERROR(b.end_cpu_access(false));
  Status rs = !rt_->v2() && config_.rebind_each_run ? bind_v1() : Status::Ok();
  if (rs.ok()) rs = rt_->run(v2_in_.data(), v2_out_.data());
  for (auto& b : in_) WG_RETURN_IF_ERROR(b.begin_cpu_access(true));
  for (auto& b : out_) WG_RETURN_IF_ERROR(b.begin_cpu_access(false));
  if (!rs.ok()) return named(config_.name, rs);
  ++runs_;
  for (size_t i = 0; i < out_.size(); ++i) {
    if (!out_stage_[i].empty()) {
      int64_t r, c;
      backends::host_rows_cols(config_.outputs[i], &r, &c);
      backends::dequantize_to_float(out_[i].data(), r, c, config_.outputs[i], out_stage_[i].data());
    }
  }
  return Status::Ok();
}

std::string Subgraph::describe() const {
  std::ostringstream s;
  s << "neuron " << config_.dla_path << " (" << api_name() << ", " << (in_.empty() ? "?" : in_[0].kind_name())
    << " memory";
  for (size_t i = 0; i < config_.inputs.size(); ++i) s << "; in " << config_.inputs[i].describe();
  for (size_t i = 0; i < config_.outputs.size(); ++i) s << "; out " << config_.outputs[i].describe();
  s << ")";
  if (!notes_.empty()) s << " " << notes_;
  return s.str();
}

}  // namespace whisper_genio::neuron
