// Layer weights in compute layout, and the reader that fills them from a TensorMap.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../kernels/cpu/ops.h"
#include "whisper_genio/buffer.h"
#include "whisper_genio/model.h"
#include "whisper_genio/status.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio::layers {

// y = x W^T + b with W [n, k] (PyTorch layout), W stored as float32, float16 or int8.
struct Linear {
  int64_t n = 0;
  int64_t k = 0;
  cpu::WeightType type = cpu::WeightType::kF32;
  Buffer<float> w32;
  Buffer<uint16_t> w16;
  Buffer<int8_t> w8;
  Buffer<float> scales;  // int8: per output row
  Buffer<int8_t> w8_packed;  // int8: panels for cpu::gemm_i8 (pack_i8), empty if not packed
  Buffer<float> w32_packed;  // float32: panels for cpu::sgemm_prepacked (pack), empty if not packed
  Buffer<float> b;       // empty: no bias

  // Takes W one row at a time: row(r, out) writes row r of the float32 [n, k] matrix into out
  // (k floats), and it is converted to `type` (int8: symmetric per row) before the next row,
  // so loading never holds a float32 copy of a whole matrix.
  using RowSource = std::function<void(int64_t r, float* out)>;
  Status store(cpu::WeightType type, const RowSource& row);
  // The same from a float32 [n, k] matrix.
  Status store(cpu::WeightType type, const float* w);
  // int8 only (no-op otherwise): packs W for the int8 x int8 GEMM of the active kernels.
  // Linears that only ever see many rows (encoder, cross-attention K/V) pass
  // keep_rows = false to drop the row-major copy, so packing costs no memory; forward then
  // runs the packed GEMM for every row count.
  Status pack_i8(bool keep_rows);
  // For Linears that multiply many rows (encoder, cross-attention K/V): int8 as pack_i8;
  // float32 packed once into the float GEMM's panels, which the GEMM otherwise re-packs from
  // the row-major weight in every task of every call (13 times per encoder product of 1500
  // rows); float16 stays as stored (packing would double it).
  Status pack(bool keep_rows);
  cpu::WeightView view() const;
  // x [m, k] -> y [m, n] (row stride ldy, default n).
  void forward(const float* x, int64_t m, float* y, ThreadPool* pool, int64_t ldy = 0) const;
  size_t bytes() const;
};

cpu::WeightType weight_type(ComputeType type);

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
  Linear token_embedding;         // [n_vocab, d], no bias; the embedding table and the output projection
  Buffer<float> position;         // [n_text_ctx, d]
  std::vector<Block> blocks;
  LayerNorm ln;
  size_t bytes() const;
};

// Matrices (projections, convolutions, the vocabulary) are stored as `type`; LayerNorms,
// biases and positional tables stay float32.
StatusOr<EncoderWeights> load_encoder_weights(const ModelDims& dims, const TensorMap& tensors, ComputeType type);
StatusOr<DecoderWeights> load_decoder_weights(const ModelDims& dims, const TensorMap& tensors, ComputeType type);

}  // namespace whisper_genio::layers
