// Layer weights in compute layout, and the reader that fills them from a TensorMap.
#pragma once

#include <string>
#include <vector>

#include "whisper_genio/buffer.h"
#include "whisper_genio/model.h"
#include "whisper_genio/status.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio::layers {

// y = x W^T + b with W [n, k] (PyTorch layout).
struct Linear {
  int64_t n = 0;
  int64_t k = 0;
  Buffer<float> w;
  Buffer<float> b;  // empty: no bias

  // x [m, k] -> y [m, n] (row stride ldy, default n).
  void forward(const float* x, int64_t m, float* y, ThreadPool* pool, int64_t ldy = 0) const;
  size_t bytes() const { return (w.size() + b.size()) * sizeof(float); }
};

struct LayerNorm {
  int64_t d = 0;
  Buffer<float> gamma;
  Buffer<float> beta;
  void forward(const float* x, int64_t rows, float* y, ThreadPool* pool) const;
};

struct Block {
  LayerNorm attn_ln;
  Linear attn_qkv;   // query, key (zero bias), value fused: [3d, d]
  Linear attn_out;
  bool has_cross = false;
  LayerNorm cross_ln;
  Linear cross_q;
  Linear cross_kv;   // key (zero bias), value fused: [2d, d]; applied to encoder states
  Linear cross_out;
  LayerNorm mlp_ln;
  Linear fc1;
  Linear fc2;
};

struct EncoderWeights {
  Linear conv1;            // [d, n_mels * 3]: Conv1d(k=3, pad=1) as a matrix over im2col rows
  Linear conv2;            // [d, d * 3], stride 2
  Buffer<float> position;  // [n_audio_ctx, d]
  std::vector<Block> blocks;
  LayerNorm ln_post;
  size_t bytes() const;
};

struct DecoderWeights {
  Buffer<float> token_embedding;  // [n_vocab, d]; also the output projection
  Buffer<float> position;         // [n_text_ctx, d]
  std::vector<Block> blocks;
  LayerNorm ln;
  size_t bytes() const;
};

StatusOr<EncoderWeights> load_encoder_weights(const ModelDims& dims, const TensorMap& tensors);
StatusOr<DecoderWeights> load_decoder_weights(const ModelDims& dims, const TensorMap& tensors);

}  // namespace whisper_genio::layers
