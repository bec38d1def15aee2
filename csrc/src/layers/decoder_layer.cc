#include "decoder_layer.h"

#include <cstring>

#include "../kernels/cpu/ops.h"

namespace whisper_genio::layers {

StatusOr<const float*> CpuLinear::run(int64_t rows, ThreadPool* pool) {
  w_.forward(in_->data(), rows, out_->data(), pool);
  stats_.cpu_macs += rows * w_.n * w_.k;
  return static_cast<const float*>(out_->data());
}

Status CpuVocabulary::forward(const float* h, int64_t rows, float* logits, ThreadPool* pool) {
  cpu::linear(h, rows, embedding_.view(), nullptr, logits, embedding_.n, pool);
  stats_.cpu_macs += rows * embedding_.n * embedding_.k;
  return Status::Ok();
}

Status FeedForward::forward(float* x, int64_t rows, ThreadPool* pool) const {
  ln_.forward(x, rows, fc1_.input(), pool);
  WG_ASSIGN_OR_RETURN(const float* h, fc1_.run(rows, pool));
  float* hidden = fc2_.input();
  const int64_t n_hidden = rows * 4 * ln_.d;
  // On the CPU fc1 writes where fc2 reads; a subgraph on either side needs this one copy.
  if (h != hidden) std::memcpy(hidden, h, static_cast<size_t>(n_hidden) * sizeof(float));
  cpu::gelu(hidden, n_hidden, pool);
  WG_ASSIGN_OR_RETURN(const float* y, fc2_.run(rows, pool));
  cpu::add_inplace(x, y, rows * ln_.d);
  return Status::Ok();
}

DecoderLayer::DecoderLayer(const Block& w, int layer, const ModelDims& dims, const LayerLinears& linears,
                           DecoderScratch& scratch, ExecutionStats& stats)
    : self_(w.attn_ln, layer, dims, *linears.self_qkv, *linears.self_out, scratch, stats),
      cross_(w.cross_ln, layer, dims, *linears.cross_q, *linears.cross_out, scratch, stats),
      mlp_(w.mlp_ln, *linears.fc1, *linears.fc2) {}

Status DecoderLayer::forward(float* x, const Step& step, KVCache* cache, const CrossKV& cross, ThreadPool* pool) {
  WG_RETURN_IF_ERROR(self_.forward(x, step, cache, pool));
  WG_RETURN_IF_ERROR(cross_.forward(x, step.rows(), cross, pool));
  return mlp_.forward(x, step.rows(), pool);
}

}  // namespace whisper_genio::layers
