// A text-decoder layer on executors, and the CPU executors: what runs where no plan says otherwise.
#pragma once

#include "attention.h"
#include "executor.h"
#include "weights.h"

namespace whisper_genio::layers {

// A projection on the CPU kernels: x from the scratch buffer `in`, y into `out`.
class CpuLinear final : public LinearExecutor {
 public:
  CpuLinear(const Linear& w, Buffer<float>* in, Buffer<float>* out, ExecutionStats& stats)
      : w_(w), in_(in), out_(out), stats_(stats) {}
  float* input() override { return in_->data(); }
  StatusOr<const float*> run(int64_t rows, ThreadPool* pool) override;

 private:
  const Linear& w_;
  Buffer<float>* in_;
  Buffer<float>* out_;
  ExecutionStats& stats_;
};

// The tied output projection on the CPU kernels: logits = h E^T with E the token embedding.
class CpuVocabulary final : public VocabularyExecutor {
 public:
  CpuVocabulary(const Linear& embedding, ExecutionStats& stats) : embedding_(embedding), stats_(stats) {}
  Status forward(const float* h, int64_t rows, float* logits, ThreadPool* pool) override;

 private:
  const Linear& embedding_;
  ExecutionStats& stats_;
};

// The MLP (CTranslate2's FeedForwardNetwork):  x += fc2(gelu(fc1(ln(x))))
class FeedForward {
 public:
  FeedForward(const LayerNorm& ln, LinearExecutor& fc1, LinearExecutor& fc2) : ln_(ln), fc1_(fc1), fc2_(fc2) {}
  Status forward(float* x, int64_t rows, ThreadPool* pool) const;

 private:
  const LayerNorm& ln_;
  LinearExecutor& fc1_;
  LinearExecutor& fc2_;
};

// The six projections of one layer, in Block's order.
struct LayerLinears {
  LinearExecutor* self_qkv = nullptr;
  LinearExecutor* self_out = nullptr;
  LinearExecutor* cross_q = nullptr;
  LinearExecutor* cross_out = nullptr;
  LinearExecutor* fc1 = nullptr;
  LinearExecutor* fc2 = nullptr;
};

// openai-whisper's ResidualAttentionBlock for one step:
//   x = x + self_attention(x);  x = x + cross_attention(x);  x = x + mlp(x)
class DecoderLayer final : public LayerExecutor {
 public:
  DecoderLayer(const Block& weights, int layer, const ModelDims& dims, const LayerLinears& linears,
               DecoderScratch& scratch, ExecutionStats& stats);
  Status forward(float* x, const Step& step, KVCache* cache, const CrossKV& cross, ThreadPool* pool) override;
  CrossAttention& cross_attention() { return cross_; }

 private:
  SelfAttention self_;
  CrossAttention cross_;
  FeedForward mlp_;
};

}  // namespace whisper_genio::layers
