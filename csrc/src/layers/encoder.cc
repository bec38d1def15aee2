#include "encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../kernels/cpu/ops.h"

namespace whisper_genio::layers {

StatusOr<std::unique_ptr<AudioEncoder>> AudioEncoder::create(const ModelDims& dims, const TensorMap& tensors,
                                                             ComputeType type) {
  auto weights = load_encoder_weights(dims, tensors, type);
  if (!weights.ok()) return weights.status();
  std::unique_ptr<AudioEncoder> enc(new AudioEncoder());
  enc->dims_ = dims;
  enc->w_ = std::move(weights).value();
  const int64_t T = dims.n_audio_ctx, d = dims.n_audio_state;
  // big_ holds conv1's im2col rows [2T, 3 n_mels], conv2's [T, 3d] and the MLP's hidden [T, 4d].
  const int64_t big = std::max({2 * T * 3 * static_cast<int64_t>(dims.n_mels), T * 3 * d, T * 4 * d});
  bool ok = enc->x_.reset(static_cast<size_t>(2 * T * d)) && enc->h_.reset(static_cast<size_t>(T * d)) &&
            enc->big_.reset(static_cast<size_t>(big)) && enc->qkv_.reset(static_cast<size_t>(T * 3 * d));
  if (!ok) return Status(StatusCode::kOutOfMemory, "allocating encoder activations");
  return enc;
}

void encoder_self_attention(const float* qkv, int64_t T, int64_t d, int64_t n_head, float* out, ThreadPool* pool) {
  const int64_t dh = d / n_head;
  const int64_t ld = 3 * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  // About 64 queries per task, a multiple of the GEMM tile's rows: no edge tiles (with 64 on
  // AVX2's 6-row tile, every block ended in a padded tile copied through scratch).
  const int64_t mr = cpu::sgemm_tile_rows();
  const int64_t kQueryBlock = mr * std::max<int64_t>(1, 64 / mr);
  const int64_t q_blocks = (T + kQueryBlock - 1) / kQueryBlock;
  // Each head's keys and values are packed once into the GEMM's panel layout, not once per
  // block of queries (that repacking cost about as much as the products themselves).
  const int64_t k_size = cpu::sgemm_packed_b_size(T, dh), v_size = cpu::sgemm_packed_b_size(dh, T);
  thread_local Buffer<float> packed;
  if (static_cast<int64_t>(packed.size()) < n_head * (k_size + v_size)) {
    packed.reset(static_cast<size_t>(n_head * (k_size + v_size)));
  }
  float* packed_kv = packed.data();  // the caller's buffer: workers must not name the thread_local
  auto pack = [&](int64_t h) {
    float* kp = packed_kv + h * (k_size + v_size);
    cpu::sgemm_pack_b(T, dh, qkv + d + h * dh, ld, /*b_nk=*/true, kp);
    cpu::sgemm_pack_b(dh, T, qkv + 2 * d + h * dh, ld, /*b_nk=*/false, kp + k_size);
  };
  // One task per (head, block of queries); each runs single-threaded GEMMs on its own scores.
  auto task = [&](int64_t t) {
    const int64_t h = t / q_blocks, qb = t % q_blocks;
    const int64_t q0 = qb * kQueryBlock, nq = std::min(kQueryBlock, T - q0);
    thread_local Buffer<float> scores;
    if (static_cast<int64_t>(scores.size()) < kQueryBlock * T) scores.reset(static_cast<size_t>(kQueryBlock * T));
    const float* q = qkv + q0 * ld + h * dh;
    const float* kp = packed_kv + h * (k_size + v_size);
    cpu::sgemm_prepacked(nq, T, dh, q, ld, kp, scores.data(), T, false, nullptr);
    for (int64_t i = 0; i < nq; ++i) {
      float* row = scores.data() + i * T;
      for (int64_t j = 0; j < T; ++j) row[j] *= scale;
      cpu::softmax(row, T);
    }
    cpu::sgemm_prepacked(nq, dh, T, scores.data(), T, kp + k_size, out + q0 * d + h * dh, d, false, nullptr);
  };
  if (pool != nullptr) {
    pool->run(n_head, pack);
    pool->run(n_head * q_blocks, task);
  } else {
    for (int64_t h = 0; h < n_head; ++h) pack(h);
    for (int64_t t = 0; t < n_head * q_blocks; ++t) task(t);
  }
}

Status AudioEncoder::forward(const float* mel, int64_t positions, float* out, ThreadPool* pool) {
  if (positions < 1 || positions > dims_.n_audio_ctx) {
    return invalid_argument("encoder positions must be 1.." + std::to_string(dims_.n_audio_ctx) + ", got " +
                            std::to_string(positions));
  }
  const int64_t T = positions, d = dims_.n_audio_state, n_mels = dims_.n_mels;
  const int64_t frames = 2 * T, mel_frames = 2 * static_cast<int64_t>(dims_.n_audio_ctx);  // row stride
  float* col = big_.data();
  float* h1 = x_.data();  // [frames, d] (x_ is 2T*d)

  // conv1 (k=3, pad=1): im2col rows col[t][c*3 + j] = mel[c][t + j - 1].
  auto im2col1 = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* row = col + t * n_mels * 3;
      for (int64_t c = 0; c < n_mels; ++c) {
        for (int64_t j = 0; j < 3; ++j) {
          const int64_t s = t + j - 1;
          row[c * 3 + j] = (s >= 0 && s < mel_frames) ? mel[c * mel_frames + s] : 0.0f;
        }
      }
    }
  };
  if (pool) pool->parallel_for(frames, 256, im2col1); else im2col1(0, frames);
  w_.conv1.forward(col, frames, h1, pool);
  cpu::gelu(h1, frames * d, pool);

  // conv2 (k=3, pad=1, stride 2): col[t][c*3 + j] = h1[2t + j - 1][c].
  auto im2col2 = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* row = col + t * d * 3;
      for (int64_t j = 0; j < 3; ++j) {
        const int64_t s = 2 * t + j - 1;
        const float* src = (s >= 0 && s < frames) ? h1 + s * d : nullptr;
        for (int64_t c = 0; c < d; ++c) row[c * 3 + j] = src ? src[c] : 0.0f;
      }
    }
  };
  if (pool) pool->parallel_for(T, 64, im2col2); else im2col2(0, T);
  float* x = h_.data();
  w_.conv2.forward(col, T, x, pool);
  cpu::gelu(x, T * d, pool);
  cpu::add_inplace(x, w_.position.data(), T * d);

  float* ln = x_.data();     // [T, d] scratch (conv1 output no longer needed)
  float* tmp = x_.data() + T * d;
  float* hidden = big_.data();
  for (const Block& b : w_.blocks) {
    b.attn_ln.forward(x, T, ln, pool);
    b.attn_qkv.forward(ln, T, qkv_.data(), pool);
    encoder_self_attention(qkv_.data(), T, d, dims_.n_audio_head, ln, pool);
    b.attn_out.forward(ln, T, tmp, pool);
    cpu::add_inplace(x, tmp, T * d);

    b.mlp_ln.forward(x, T, ln, pool);
    b.fc1.forward(ln, T, hidden, pool);
    cpu::gelu(hidden, T * 4 * d, pool);
    b.fc2.forward(hidden, T, tmp, pool);
    cpu::add_inplace(x, tmp, T * d);
  }
  w_.ln_post.forward(x, T, out, pool);
  return Status::Ok();
}

}  // namespace whisper_genio::layers
