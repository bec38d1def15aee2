#include "text_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../kernels/cpu/ops.h"

namespace whisper_genio::layers {

StatusOr<std::unique_ptr<TextDecoder>> TextDecoder::create(const ModelDims& dims, const TensorMap& tensors,
                                                           ComputeType type) {
  auto weights = load_decoder_weights(dims, tensors, type);
  if (!weights.ok()) return weights.status();
  std::unique_ptr<TextDecoder> dec(new TextDecoder());
  dec->dims_ = dims;
  dec->w_ = std::move(weights).value();
  dec->half_cross_kv_ = type != ComputeType::kFloat32;
  return dec;
}

Status TextDecoder::ensure_scratch(int64_t rows) {
  if (rows <= scratch_rows_) return Status::Ok();
  const int64_t d = dims_.n_text_state;
  const int64_t score_cols = std::max<int64_t>(dims_.n_audio_ctx, dims_.n_text_ctx);
  bool ok = x_.reset(static_cast<size_t>(rows * d)) && h_.reset(static_cast<size_t>(rows * d)) &&
            qkv_.reset(static_cast<size_t>(rows * 3 * d)) && ctx_.reset(static_cast<size_t>(rows * d)) &&
            hidden_.reset(static_cast<size_t>(rows * 4 * d)) &&
            scores_.reset(static_cast<size_t>(rows * dims_.n_text_head * score_cols));
  if (!ok) return Status(StatusCode::kOutOfMemory, "allocating decoder activations");
  scratch_rows_ = rows;
  return Status::Ok();
}

Status TextDecoder::compute_cross_kv(const EncoderStates& states, CrossKV* out, ThreadPool* pool) const {
  const int64_t d = dims_.n_text_state;
  if (states.data == nullptr) return invalid_argument("encoder states are empty");
  if (states.d != d || states.n_ctx != dims_.n_audio_ctx) {
    return invalid_argument("encoder states have shape [" + std::to_string(states.n_ctx) + ", " +
                            std::to_string(states.d) + "], the decoder expects [" +
                            std::to_string(dims_.n_audio_ctx) + ", " + std::to_string(d) + "]");
  }
  const int64_t T = states.n_ctx, H = dims_.n_text_head, dh = d / H;
  const size_t per_layer = static_cast<size_t>(T * 2 * d);
  out->n_ctx = T;
  out->half = half_cross_kv_;
  out->kv32.resize(out->half ? 0 : w_.blocks.size());
  out->kv16.resize(out->half ? w_.blocks.size() : 0);
  Buffer<float> tmp;  // [T, 2d] as the fused projection writes it
  if (!tmp.reset(per_layer)) return Status(StatusCode::kOutOfMemory, "allocating cross-attention keys/values");
  for (size_t l = 0; l < w_.blocks.size(); ++l) {
    const bool fresh = out->half ? out->kv16[l].size() != per_layer : out->kv32[l].size() != per_layer;
    if (fresh && !(out->half ? out->kv16[l].reset(per_layer) : out->kv32[l].reset(per_layer))) {
      return Status(StatusCode::kOutOfMemory, "allocating cross-attention keys/values");
    }
    w_.blocks[l].cross_kv.forward(states.data, T, tmp.data(), pool);
    // [T, (K|V), H, dh] -> [(K|V), H, T, dh]
    auto regroup = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t kv = 0; kv < 2; ++kv) {
          for (int64_t h = 0; h < H; ++h) {
            const float* src = tmp.data() + t * 2 * d + kv * d + h * dh;
            const size_t dst = static_cast<size_t>(((kv * H + h) * T + t) * dh);
            if (out->half) {
              for (int64_t i = 0; i < dh; ++i) out->kv16[l][dst + i] = float_to_half(src[i]);
            } else {
              std::memcpy(out->kv32[l].data() + dst, src, dh * sizeof(float));
            }
          }
        }
      }
    };
    if (pool) pool->parallel_for(T, 64, regroup); else regroup(0, T);
  }
  return Status::Ok();
}

Status TextDecoder::forward(const int* tokens, int beams, int n_new, KVCache* cache, const CrossKV& cross,
                            const std::vector<int>& logit_rows, float* logits, ThreadPool* pool) {
  const int64_t d = dims_.n_text_state, n_head = dims_.n_text_head, dh = d / n_head;
  const int64_t V = dims_.n_vocab;
  const int offset = cache->length();
  if (beams != cache->beams()) return invalid_argument("token batch does not match the KV cache's beams");
  if (n_new <= 0) return invalid_argument("no tokens to decode");
  if (offset + n_new > std::min(cache->capacity(), dims_.n_text_ctx)) {
    return invalid_argument("decoder context full: " + std::to_string(offset + n_new) + " positions, capacity " +
                            std::to_string(dims_.n_text_ctx));
  }
  if ((cross.half ? cross.kv16.size() : cross.kv32.size()) != w_.blocks.size()) {
    return invalid_argument("cross-attention keys/values not computed");
  }
  const int64_t M = static_cast<int64_t>(beams) * n_new;
  WG_RETURN_IF_ERROR(ensure_scratch(std::max<int64_t>(M, static_cast<int64_t>(logit_rows.size()))));
  for (int64_t r = 0; r < M; ++r) {
    const int tok = tokens[r];
    if (tok < 0 || tok >= V) return invalid_argument("token id " + std::to_string(tok) + " outside the vocabulary");
  }

  float* x = x_.data();
  const cpu::WeightView embedding = w_.token_embedding.view();
  for (int64_t r = 0; r < M; ++r) {
    const int64_t pos = offset + r % n_new;
    cpu::weight_row(embedding, tokens[r], x + r * d);
    cpu::add_inplace(x + r * d, w_.position.data() + pos * d, d);
  }

  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  const int64_t n_audio = cross.n_ctx;
  for (size_t l = 0; l < w_.blocks.size(); ++l) {
    const Block& b = w_.blocks[l];
    // --- masked self-attention over the cache ---
    b.attn_ln.forward(x, M, h_.data(), pool);
    b.attn_qkv.forward(h_.data(), M, qkv_.data(), pool);
    for (int64_t r = 0; r < M; ++r) {
      const int beam = static_cast<int>(r / n_new);
      const int64_t pos = offset + r % n_new;
      std::memcpy(cache->keys(static_cast<int>(l), beam) + pos * d, qkv_.data() + r * 3 * d + d, d * sizeof(float));
      std::memcpy(cache->values(static_cast<int>(l), beam) + pos * d, qkv_.data() + r * 3 * d + 2 * d, d * sizeof(float));
    }
    auto self_task = [&](int64_t t) {
      const int beam = static_cast<int>(t / n_head);
      const int64_t h = t % n_head;
      const float* K = cache->keys(static_cast<int>(l), beam) + h * dh;
      const float* Vv = cache->values(static_cast<int>(l), beam) + h * dh;
      float* s = scores_.data() + t * dims_.n_text_ctx;
      for (int i = 0; i < n_new; ++i) {
        const int64_t r = static_cast<int64_t>(beam) * n_new + i;
        const int64_t keys = offset + i + 1;  // causal: up to and including this position
        const float* q = qkv_.data() + r * 3 * d + h * dh;
        cpu::gemv_nk(1, dh, q, dh, K, d, 0, keys, s, keys);
        for (int64_t j = 0; j < keys; ++j) s[j] *= scale;
        cpu::softmax(s, keys);
        float* o = ctx_.data() + r * d + h * dh;
        std::memset(o, 0, dh * sizeof(float));
        for (int64_t j = 0; j < keys; ++j) cpu::axpy(s[j], Vv + j * d, o, dh);
      }
    };
    if (pool) pool->run(beams * n_head, self_task); else for (int64_t t = 0; t < beams * n_head; ++t) self_task(t);
    b.attn_out.forward(ctx_.data(), M, h_.data(), pool);
    cpu::add_inplace(x, h_.data(), M * d);

    // --- cross-attention over the window's encoder states ---
    b.cross_ln.forward(x, M, h_.data(), pool);
    b.cross_q.forward(h_.data(), M, qkv_.data(), pool);  // q in qkv_[:, 0:d] with row stride d
    const size_t head_block = static_cast<size_t>(n_audio * dh);
    auto cross_task = [&](int64_t h) {
      float* s = scores_.data() + h * M * n_audio;
      const size_t k_off = static_cast<size_t>(h) * head_block;
      const size_t v_off = static_cast<size_t>(n_head + h) * head_block;
      const float* q = qkv_.data() + h * dh;
      if (cross.half) {
        cpu::gemv_nk_f16(M, dh, q, d, cross.kv16[l].data() + k_off, dh, 0, n_audio, s, n_audio);
      } else {
        cpu::gemv_nk(M, dh, q, d, cross.kv32[l].data() + k_off, dh, 0, n_audio, s, n_audio);
      }
      for (int64_t r = 0; r < M; ++r) {
        float* row = s + r * n_audio;
        for (int64_t j = 0; j < n_audio; ++j) row[j] *= scale;
        cpu::softmax(row, n_audio);
        float* o = ctx_.data() + r * d + h * dh;
        if (cross.half) {
          cpu::weighted_rows_f16(row, n_audio, cross.kv16[l].data() + v_off, dh, dh, o);
        } else {
          cpu::weighted_rows(row, n_audio, cross.kv32[l].data() + v_off, dh, dh, o);
        }
      }
    };
    if (pool) pool->run(n_head, cross_task); else for (int64_t h = 0; h < n_head; ++h) cross_task(h);
    b.cross_out.forward(ctx_.data(), M, h_.data(), pool);
    cpu::add_inplace(x, h_.data(), M * d);

    // --- MLP ---
    b.mlp_ln.forward(x, M, h_.data(), pool);
    b.fc1.forward(h_.data(), M, hidden_.data(), pool);
    cpu::gelu(hidden_.data(), M * 4 * d, pool);
    b.fc2.forward(hidden_.data(), M, h_.data(), pool);
    cpu::add_inplace(x, h_.data(), M * d);
  }
  cache->set_length(offset + n_new);

  // Final LayerNorm and the output projection (tied to the token embedding), only for the
  // rows whose logits were asked for.
  const int64_t n_rows = static_cast<int64_t>(logit_rows.size());
  for (int64_t i = 0; i < n_rows; ++i) {
    const int r = logit_rows[static_cast<size_t>(i)];
    if (r < 0 || r >= M) return invalid_argument("logit row out of range");
    w_.ln.forward(x + static_cast<int64_t>(r) * d, 1, h_.data() + i * d, nullptr);
  }
  cpu::linear(h_.data(), n_rows, embedding, nullptr, logits, V, pool);
  return Status::Ok();
}

}  // namespace whisper_genio::layers
