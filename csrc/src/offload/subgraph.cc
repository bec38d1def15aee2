#include "subgraph.h"

namespace whisper_genio::offload {

StatusOr<CallbackSubgraph::Ptr> CallbackSubgraph::create(int rows, int64_t in, int64_t out, Fn fn, std::string name) {
  if (rows <= 0 || in <= 0 || out <= 0) return invalid_argument("callback subgraph: sizes must be positive");
  if (!fn) return invalid_argument("callback subgraph: no function");
  Ptr c(new CallbackSubgraph());
  c->rows_ = rows;
  c->in_ = in;
  c->out_ = out;
  c->fn_ = std::move(fn);
  c->name_ = std::move(name);
  if (!c->x_.reset(static_cast<size_t>(rows * in)) || !c->y_.reset(static_cast<size_t>(rows * out))) {
    return Status(StatusCode::kOutOfMemory, "allocating callback subgraph buffers");
  }
  c->x_.zero();
  c->y_.zero();
  return c;
}

StatusOr<CallbackLayerStep::Ptr> CallbackLayerStep::create(int rows, int64_t d, int n_ctx, int64_t n_audio, Fn fn,
                                                          std::string name) {
  if (rows <= 0 || d <= 0 || n_ctx <= 0 || n_audio <= 0) return invalid_argument("callback layer step: sizes must be positive");
  if (!fn) return invalid_argument("callback layer step: no function");
  Ptr c(new CallbackLayerStep());
  c->rows_ = rows;
  c->n_ctx_ = n_ctx;
  c->fn_ = std::move(fn);
  c->name_ = std::move(name);
  const int64_t B = rows;
  const int64_t in_sizes[6] = {B * d, B * n_ctx * d, B * n_ctx * d, n_audio * d, n_audio * d, B * n_ctx};
  for (int i = 0; i < 6; ++i) {
    if (!c->in_[i].reset(static_cast<size_t>(in_sizes[i]))) return Status(StatusCode::kOutOfMemory, "callback layer step");
    c->in_[i].zero();
  }
  for (auto& o : c->out_) {
    if (!o.reset(static_cast<size_t>(B * d))) return Status(StatusCode::kOutOfMemory, "callback layer step");
    o.zero();
  }
  return c;
}

Status CallbackLayerStep::run() {
  std::vector<float*> in, out;
  for (auto& b : in_) in.push_back(b.data());
  for (auto& b : out_) out.push_back(b.data());
  return fn_(in, out);
}

}  // namespace whisper_genio::offload
