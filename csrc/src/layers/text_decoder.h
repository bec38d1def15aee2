// The Whisper text decoder on CPU kernels, one step at a time over a KV cache: openai-whisper's
// TextDecoder with its kv_cache hooks, in float32.
#pragma once

#include <memory>
#include <vector>

#include "../offload/decoder_offload.h"
#include "weights.h"
#include "whisper_genio/buffer.h"
#include "whisper_genio/encoder_backend.h"
#include "whisper_genio/kv_cache.h"
#include "whisper_genio/model.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio::layers {

// Cross-attention keys and values of one window. Per layer, K then V, each laid out per head
// [n_head, n_ctx, head_dim] so that one head's keys are one contiguous block (the per-token
// scores and weighted sums stream them). float32 for the float32 compute type, float16 for
// float16, and int8 for int8 with one scale per (K|V, head, position) row: after the weights
// they are the biggest per-token read (18 MB a token in float16 for whisper-base), and int8
// rows changed no transcript of the 70 verified English items (openai-whisper with its K/V
// rows quantized the same way). Computed once per window and shared by every beam and every
// temperature retry.
struct CrossKV {
  enum class Type { kF32, kF16, kI8 };
  Type type = Type::kF32;
  std::vector<Buffer<float>> kv32;
  std::vector<Buffer<uint16_t>> kv16;
  std::vector<Buffer<int8_t>> kv8;
  std::vector<Buffer<float>> scale8;  // int8: [(K|V), n_head, n_ctx] per layer
  int64_t n_ctx = 0;
  size_t layers() const;
};

class TextDecoder {
 public:
  static StatusOr<std::unique_ptr<TextDecoder>> create(const ModelDims& dims, const TensorMap& tensors,
                                                     ComputeType type);

  const ModelDims& dims() const { return dims_; }
  size_t weight_bytes() const { return w_.bytes(); }

  Status compute_cross_kv(const EncoderStates& states, CrossKV* out, ThreadPool* pool) const;

  // Runs n_new tokens for each of `beams` sequences at positions [cache.length(),
  // cache.length() + n_new), appending their keys/values to the cache (beams must equal
  // cache.beams()). tokens is [beams, n_new]. For every (beam, position) pair listed in
  // logit_rows (as beam * n_new + i) writes the vocabulary logits, in that order, to
  // logits [logit_rows.size(), n_vocab].
  Status forward(const int* tokens, int beams, int n_new, KVCache* cache, const CrossKV& cross,
                 const std::vector<int>& logit_rows, float* logits, ThreadPool* pool);

  // The dispatch plan's runners (null: everything on the CPU). Single-token steps whose row
  // count is a planned batch go to them; see offload/decoder_offload.h.
  void set_offload(std::shared_ptr<offload::DecoderOffload> plan) { offload_ = std::move(plan); }
  const offload::DecoderOffload* offload() const { return offload_.get(); }
  // KV cache storage for `beams` beams: the cache inputs of the layer-step runners of that batch
  // (empty when there are none), for KVCache::reset.
  std::vector<KVCache::External> cache_storage(int beams) const;
  const offload::OffloadStats& stats() const { return stats_; }
  void reset_stats() { stats_ = offload::OffloadStats(); }

 private:
  TextDecoder() = default;
  Status ensure_scratch(int64_t rows);
  Status run_runner(offload::SubgraphRunner* r, int64_t macs);
  Status layer_step(offload::LayerStepRunner* r, int layer, int64_t M, float* x, KVCache* cache, const CrossKV& cross);

  ModelDims dims_;
  DecoderWeights w_;
  CrossKV::Type cross_type_ = CrossKV::Type::kF32;
  int64_t scratch_rows_ = 0;
  Buffer<float> x_, h_, qkv_, ctx_, hidden_, scores_;
  std::shared_ptr<offload::DecoderOffload> offload_;
  offload::OffloadStats stats_;
};

}  // namespace whisper_genio::layers
