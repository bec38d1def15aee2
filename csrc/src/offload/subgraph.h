// Decoder ops that may run outside the CPU kernels: the op ids of the dispatch plan and the
// runner interfaces the text decoder calls.
//
// A runner has a FIXED batch (rows = B, the beam count it was compiled for) and fixed
// features; its input and output are float32 host views. For a neuron::Subgraph with float32
// device I/O the views ARE the device buffers (the decoder writes LayerNorm output straight
// into them and reads results in place); for quantized I/O they are staging buffers that
// run() quantizes / dequantizes (the only per-step conversion the math needs).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "whisper_genio/buffer.h"
#include "whisper_genio/status.h"

namespace whisper_genio::offload {

enum class OpKind { kSelfQkv = 0, kSelfOut, kCrossQ, kCrossOut, kFc1, kFc2, kLayerStep, kVocab };
inline constexpr int kNumOpKinds = 8;

const char* op_kind_name(OpKind k);  // "self_qkv", ..., "layer_step", "vocab"
StatusOr<OpKind> parse_op_kind(const std::string& name);

// [rows, in] -> [rows, out]: one linear op (projection or a chunk of the vocabulary).
class SubgraphRunner {
 public:
  virtual ~SubgraphRunner() = default;
  virtual int rows() const = 0;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  virtual float* input() = 0;               // [rows, in], written by the caller before run()
  virtual Status run() = 0;
  virtual const float* output() const = 0;  // [rows, out], valid after run()
  virtual std::string describe() const = 0;
  // Elements between rows of input() / output(); 0: contiguous (in / out). Only runners created
  // for a caller that reads row by row (the vocabulary chunks) have other strides.
  virtual int64_t input_stride() const { return 0; }
  virtual int64_t output_stride() const { return 0; }
};

// One whole decoder layer for one token per row (see neuron_standin.cc / export_decoder.py for
// the contract): inputs x [B, d], self K/V cache [B, n_ctx, d] each, cross K/V [n_audio, d]
// each, additive position mask [B, n_ctx]; outputs x' [B, d], new k and v [B, d].
class LayerStepRunner {
 public:
  virtual ~LayerStepRunner() = default;
  virtual int rows() const = 0;
  virtual int n_ctx() const = 0;
  virtual float* x() = 0;
  virtual float* self_k() = 0;   // the KV cache storage of this layer (bound once)
  virtual float* self_v() = 0;
  virtual float* cross_k() = 0;  // written once per window
  virtual float* cross_v() = 0;
  virtual float* mask() = 0;
  virtual Status run() = 0;
  virtual const float* x_out() const = 0;
  virtual const float* k_out() const = 0;
  virtual const float* v_out() const = 0;
  virtual std::string describe() const = 0;
  // Elements between rows of input i (x 0, cross_k 3, cross_v 4, mask 5) and output i (x' 0,
  // k 1, v 2); 0: contiguous. The KV cache inputs are always contiguous (they are the cache).
  virtual int64_t input_stride(int /*i*/) const { return 0; }
  virtual int64_t output_stride(int /*i*/) const { return 0; }
};

// Masked-out self-attention positions. Finite so that a float16 device (--relax-fp32) does not
// turn it into -inf - inf = NaN; exp() of it underflows to 0 in float16 and float32 alike.
inline constexpr float kMaskedScore = -30000.0f;

// A runner whose math is a callback (the Python binding: LiteRT / ONNX Runtime host numerics,
// or anything a test injects). The callback reads [rows, in] and writes [rows, out].
class CallbackSubgraph final : public SubgraphRunner {
 public:
  using Fn = std::function<Status(const float* in, float* out)>;
  using Ptr = std::unique_ptr<CallbackSubgraph>;
  static StatusOr<Ptr> create(int rows, int64_t in, int64_t out, Fn fn,
                                                            std::string name);
  int rows() const override { return rows_; }
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  float* input() override { return x_.data(); }
  Status run() override { return fn_(x_.data(), y_.data()); }
  const float* output() const override { return y_.data(); }
  std::string describe() const override { return "callback " + name_; }

 private:
  CallbackSubgraph() = default;
  int rows_ = 0;
  int64_t in_ = 0, out_ = 0;
  Fn fn_;
  std::string name_;
  Buffer<float> x_, y_;
};

// A layer step whose math is a callback (Python: LiteRT running an exported layer-step TFLite,
// or a test). Host buffers for every input and output; the callback gets them all.
class CallbackLayerStep final : public LayerStepRunner {
 public:
  // in: x, self_k, self_v, cross_k, cross_v, mask; out: x', k, v (shapes in LayerStepRunner).
  using Fn = std::function<Status(const std::vector<float*>& in, const std::vector<float*>& out)>;
  using Ptr = std::unique_ptr<CallbackLayerStep>;
  static StatusOr<Ptr> create(int rows, int64_t d, int n_ctx, int64_t n_audio, Fn fn, std::string name);
  int rows() const override { return rows_; }
  int n_ctx() const override { return n_ctx_; }
  float* x() override { return in_[0].data(); }
  float* self_k() override { return in_[1].data(); }
  float* self_v() override { return in_[2].data(); }
  float* cross_k() override { return in_[3].data(); }
  float* cross_v() override { return in_[4].data(); }
  float* mask() override { return in_[5].data(); }
  Status run() override;
  const float* x_out() const override { return out_[0].data(); }
  const float* k_out() const override { return out_[1].data(); }
  const float* v_out() const override { return out_[2].data(); }
  std::string describe() const override { return "callback " + name_; }

 private:
  CallbackLayerStep() = default;
  int rows_ = 0, n_ctx_ = 0;
  Fn fn_;
  std::string name_;
  Buffer<float> in_[6];
  Buffer<float> out_[3];
};

}  // namespace whisper_genio::offload
