// The text decoder's two attentions, on the CPU kernels, with their projections on executors.
#pragma once

#include <vector>

#include "executor.h"
#include "weights.h"
#include "whisper_genio/buffer.h"
#include "whisper_genio/kv_cache.h"

namespace whisper_genio::layers {

// Cross-attention keys and values of one window. Per layer, K then V, each laid out per head
// [n_head, n_ctx, head_dim] so that one head's keys are one contiguous block (the per-token
// scores and weighted sums stream them). float32 for the float32 compute type, float16 for
// float16, and int8 for int8 with one scale per (K|V, head, position) row: after the weights
// they are the biggest per-token read, and int8 rows changed no transcript of the verified
// English items (benchmarks/README.md). Computed once per window and shared by every beam and
// every temperature retry.
struct CrossKV {
  enum class Type { kF32, kF16, kI8 };
  Type type = Type::kF32;
  std::vector<Buffer<float>> kv32;
  std::vector<Buffer<uint16_t>> kv16;
  std::vector<Buffer<int8_t>> kv8;
  std::vector<Buffer<float>> scale8;  // int8: [(K|V), n_head, n_ctx] per layer
  int64_t n_ctx = 0;
  size_t layers() const;
  // Sizes layer `layer`'s buffers for n_ctx positions of width d (allocates on the first window only).
  Status reserve(size_t layers, size_t layer, int64_t n_ctx, int64_t d, int64_t n_head);
  // Stores layer `layer`'s keys and values from the fused projection's rows [n_ctx, (K|V) d].
  void store(size_t layer, const float* kv, int64_t d, int64_t n_head, ThreadPool* pool);
};

// Buffers one decoder step works in: [rows, ...] each, sized for the largest step so far.
struct DecoderScratch {
  Buffer<float> x;       // [rows, d] the residual stream
  Buffer<float> h;       // [rows, d] LayerNorm output (a CPU projection's input)
  Buffer<float> qkv;     // [rows, 3d] fused self-attention q | k | v; cross-attention q
  Buffer<float> ctx;     // [rows, d] attention output (the output projection's input)
  Buffer<float> hidden;  // [rows, 4d] MLP hidden activations
  Buffer<float> proj;    // [rows, d] an output projection's result, before the residual add
  Buffer<float> scores;  // [rows, n_head, max(n_audio_ctx, n_text_ctx)] attention weights
  int64_t rows = 0;
  Status reserve(int64_t rows, const ModelDims& dims);
};

// Masked self-attention over the KV cache (openai-whisper's MultiHeadAttention with kv_cache):
//   q, k, v = qkv(ln(x));  k, v join the cache;  x += out(softmax(q K^T / sqrt(dh)) V)
// causal: each position attends to the cache and to itself.
class SelfAttention {
 public:
  SelfAttention(const LayerNorm& ln, int layer, const ModelDims& dims, LinearExecutor& qkv, LinearExecutor& out,
                DecoderScratch& scratch, ExecutionStats& stats)
      : ln_(ln), layer_(layer), n_head_(dims.n_text_head), n_text_ctx_(dims.n_text_ctx), qkv_(qkv), out_(out),
        scratch_(scratch), stats_(stats) {}
  Status forward(float* x, const Step& step, KVCache* cache, ThreadPool* pool) const;

 private:
  void attend(const float* qkv, const Step& step, const KVCache& cache, float* ctx, ThreadPool* pool) const;
  const LayerNorm& ln_;
  int layer_, n_head_, n_text_ctx_;
  LinearExecutor& qkv_;
  LinearExecutor& out_;
  DecoderScratch& scratch_;
  ExecutionStats& stats_;
};

// Where the cross-attention scores of one head are recorded (openai-whisper's alignment hook):
// the pre-softmax q K^T / sqrt(dh) of each row, first `frames` audio positions, into
// out [rows, frames] (row stride `frames`).
struct AttentionProbe {
  int head = -1;
  int64_t frames = 0;
  float* out = nullptr;
};

// Cross-attention over the window's encoder states:
//   x += out(softmax(q(ln(x)) K^T / sqrt(dh)) V)   with K, V from CrossKV
class CrossAttention {
 public:
  CrossAttention(const LayerNorm& ln, int layer, const ModelDims& dims, LinearExecutor& q, LinearExecutor& out,
                 DecoderScratch& scratch, ExecutionStats& stats)
      : ln_(ln), layer_(layer), n_head_(dims.n_text_head), q_(q), out_(out), scratch_(scratch), stats_(stats) {}
  Status forward(float* x, int64_t rows, const CrossKV& cross, ThreadPool* pool) const;
  // Heads whose scores the next forward passes record (empty: none).
  void set_probes(std::vector<AttentionProbe> probes) { probes_ = std::move(probes); }

 private:
  void attend(const float* q, int64_t rows, const CrossKV& cross, float* ctx, ThreadPool* pool) const;
  void record(int64_t head, const float* scores, int64_t rows, int64_t n_ctx) const;
  const LayerNorm& ln_;
  int layer_, n_head_;
  std::vector<AttentionProbe> probes_;
  LinearExecutor& q_;
  LinearExecutor& out_;
  DecoderScratch& scratch_;
  ExecutionStats& stats_;
};

}  // namespace whisper_genio::layers
