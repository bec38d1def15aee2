#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../kernels/cpu/ops.h"

namespace whisper_genio::layers {

size_t CrossKV::layers() const {
  switch (type) {
    case Type::kF32: return kv32.size();
    case Type::kF16: return kv16.size();
    case Type::kI8: return kv8.size();
  }
  return 0;
}

Status CrossKV::reserve(size_t n_layers, size_t layer, int64_t ctx, int64_t d, int64_t n_head) {
  const size_t per_layer = static_cast<size_t>(ctx * 2 * d);
  n_ctx = ctx;
  kv32.resize(type == Type::kF32 ? n_layers : 0);
  kv16.resize(type == Type::kF16 ? n_layers : 0);
  kv8.resize(type == Type::kI8 ? n_layers : 0);
  scale8.resize(type == Type::kI8 ? n_layers : 0);
  bool ok = true;
  switch (type) {
    case Type::kF32: ok = kv32[layer].size() == per_layer || kv32[layer].reset(per_layer); break;
    case Type::kF16: ok = kv16[layer].size() == per_layer || kv16[layer].reset(per_layer); break;
    case Type::kI8: {
      const size_t scales = static_cast<size_t>(2 * n_head * ctx);
      ok = (kv8[layer].size() == per_layer || kv8[layer].reset(per_layer)) &&
           (scale8[layer].size() == scales || scale8[layer].reset(scales));
      break;
    }
  }
  return ok ? Status::Ok() : Status(StatusCode::kOutOfMemory, "allocating cross-attention keys/values");
}

void CrossKV::store(size_t layer, const float* kv, int64_t d, int64_t n_head, ThreadPool* pool) {
  const int64_t T = n_ctx, H = n_head, dh = d / H;
  // [T, (K|V), H, dh] -> [(K|V), H, T, dh]
  auto regroup = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t half = 0; half < 2; ++half) {
        for (int64_t h = 0; h < H; ++h) {
          const float* src = kv + t * 2 * d + half * d + h * dh;
          const size_t row = static_cast<size_t>((half * H + h) * T + t);
          const size_t dst = row * static_cast<size_t>(dh);
          switch (type) {
            case Type::kF32: std::memcpy(kv32[layer].data() + dst, src, dh * sizeof(float)); break;
            case Type::kF16: cpu::floats_to_half(src, dh, kv16[layer].data() + dst); break;
            case Type::kI8: scale8[layer][row] = cpu::quantize_row_i8(src, dh, kv8[layer].data() + dst); break;
          }
        }
      }
    }
  };
  if (pool) pool->parallel_for(T, 64, regroup); else regroup(0, T);
}

Status DecoderScratch::reserve(int64_t n, const ModelDims& dims) {
  if (n <= rows) return Status::Ok();
  const int64_t d = dims.n_text_state;
  const int64_t score_cols = std::max<int64_t>(dims.n_audio_ctx, dims.n_text_ctx);
  const bool ok = x.reset(static_cast<size_t>(n * d)) && h.reset(static_cast<size_t>(n * d)) &&
                  qkv.reset(static_cast<size_t>(n * 3 * d)) && ctx.reset(static_cast<size_t>(n * d)) &&
                  hidden.reset(static_cast<size_t>(n * 4 * d)) && proj.reset(static_cast<size_t>(n * d)) &&
                  scores.reset(static_cast<size_t>(n * dims.n_text_head * score_cols));
  if (!ok) return Status(StatusCode::kOutOfMemory, "allocating decoder activations");
  rows = n;
  return Status::Ok();
}

Status SelfAttention::forward(float* x, const Step& step, KVCache* cache, ThreadPool* pool) const {
  const int64_t M = step.rows(), d = cache->d();
  ln_.forward(x, M, qkv_.input(), pool);
  WG_ASSIGN_OR_RETURN(const float* qkv, qkv_.run(M, pool));
  for (int64_t r = 0; r < M; ++r) {  // the new positions' keys and values join the cache
    const int beam = static_cast<int>(r / step.n_new);
    const int64_t pos = step.offset + r % step.n_new;
    std::memcpy(cache->keys(layer_, beam) + pos * d, qkv + r * 3 * d + d, d * sizeof(float));
    std::memcpy(cache->values(layer_, beam) + pos * d, qkv + r * 3 * d + 2 * d, d * sizeof(float));
  }
  attend(qkv, step, *cache, out_.input(), pool);
  WG_ASSIGN_OR_RETURN(const float* y, out_.run(M, pool));
  cpu::add_inplace(x, y, M * d);
  return Status::Ok();
}

void SelfAttention::attend(const float* qkv, const Step& step, const KVCache& cache, float* ctx,
                           ThreadPool* pool) const {
  const int64_t d = cache.d(), dh = d / n_head_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  auto task = [&](int64_t t) {  // one (beam, head)
    const int beam = static_cast<int>(t / n_head_);
    const int64_t h = t % n_head_;
    const float* K = cache.keys(layer_, beam) + h * dh;
    const float* V = cache.values(layer_, beam) + h * dh;
    float* s = scratch_.scores.data() + t * n_text_ctx_;
    for (int i = 0; i < step.n_new; ++i) {
      const int64_t r = static_cast<int64_t>(beam) * step.n_new + i;
      const int64_t keys = step.offset + i + 1;  // causal: up to and including this position
      cpu::gemv_nk(1, dh, qkv + r * 3 * d + h * dh, dh, K, d, 0, keys, s, keys);
      for (int64_t j = 0; j < keys; ++j) s[j] *= scale;
      cpu::softmax(s, keys);
      float* o = ctx + r * d + h * dh;
      std::memset(o, 0, dh * sizeof(float));
      for (int64_t j = 0; j < keys; ++j) cpu::axpy(s[j], V + j * d, o, dh);
    }
  };
  const int64_t tasks = static_cast<int64_t>(step.beams) * n_head_;
  if (pool) pool->run(tasks, task); else for (int64_t t = 0; t < tasks; ++t) task(t);
  for (int64_t r = 0; r < step.rows(); ++r) stats_.cpu_macs += 2 * (step.offset + r % step.n_new + 1) * d;
}

Status CrossAttention::forward(float* x, int64_t rows, const CrossKV& cross, ThreadPool* pool) const {
  const int64_t d = ln_.d;
  ln_.forward(x, rows, q_.input(), pool);
  WG_ASSIGN_OR_RETURN(const float* q, q_.run(rows, pool));
  attend(q, rows, cross, out_.input(), pool);
  WG_ASSIGN_OR_RETURN(const float* y, out_.run(rows, pool));
  cpu::add_inplace(x, y, rows * d);
  return Status::Ok();
}

void CrossAttention::attend(const float* q, int64_t M, const CrossKV& cross, float* ctx, ThreadPool* pool) const {
  const int64_t d = ln_.d, dh = d / n_head_, T = cross.n_ctx;
  const size_t l = static_cast<size_t>(layer_);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  const size_t head_block = static_cast<size_t>(T * dh);
  auto task = [&](int64_t h) {
    float* s = scratch_.scores.data() + h * M * T;
    const size_t k_off = static_cast<size_t>(h) * head_block;
    const size_t v_off = static_cast<size_t>(n_head_ + h) * head_block;
    // int8: the scores get each key row's scale, the probabilities each value row's.
    const bool i8 = cross.type == CrossKV::Type::kI8;
    const float* k_scale = i8 ? cross.scale8[l].data() + h * T : nullptr;
    const float* v_scale = i8 ? cross.scale8[l].data() + (n_head_ + h) * T : nullptr;
    switch (cross.type) {
      case CrossKV::Type::kF32: cpu::gemv_nk(M, dh, q + h * dh, d, cross.kv32[l].data() + k_off, dh, 0, T, s, T); break;
      case CrossKV::Type::kF16: cpu::gemv_nk_f16(M, dh, q + h * dh, d, cross.kv16[l].data() + k_off, dh, 0, T, s, T); break;
      case CrossKV::Type::kI8: cpu::gemv_nk_i8w(M, dh, q + h * dh, d, cross.kv8[l].data() + k_off, dh, 0, T, s, T); break;
    }
    for (int64_t r = 0; r < M; ++r) {
      float* row = s + r * T;
      for (int64_t j = 0; j < T; ++j) row[j] *= k_scale != nullptr ? scale * k_scale[j] : scale;
    }
    if (!probes_.empty()) record(h, s, M, T);
    for (int64_t r = 0; r < M; ++r) {
      float* row = s + r * T;
      cpu::softmax(row, T);
      float* o = ctx + r * d + h * dh;
      switch (cross.type) {
        case CrossKV::Type::kF32: cpu::weighted_rows(row, T, cross.kv32[l].data() + v_off, dh, dh, o); break;
        case CrossKV::Type::kF16: cpu::weighted_rows_f16(row, T, cross.kv16[l].data() + v_off, dh, dh, o); break;
        case CrossKV::Type::kI8:
          for (int64_t j = 0; j < T; ++j) row[j] *= v_scale[j];
          cpu::weighted_rows_i8(row, T, cross.kv8[l].data() + v_off, dh, dh, o);
          break;
      }
    }
  };
  if (pool) pool->run(n_head_, task); else for (int64_t h = 0; h < n_head_; ++h) task(h);
  stats_.cpu_macs += M * 2 * T * d;
}

void CrossAttention::record(int64_t head, const float* scores, int64_t rows, int64_t n_ctx) const {
  for (const AttentionProbe& p : probes_) {
    if (p.head != head) continue;
    const int64_t frames = std::min(p.frames, n_ctx);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(p.out + r * p.frames, scores + r * n_ctx, frames * sizeof(float));
  }
}

}  // namespace whisper_genio::layers
