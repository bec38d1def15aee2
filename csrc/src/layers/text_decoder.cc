#include "text_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>

#include "../kernels/cpu/ops.h"

namespace whisper_genio::layers {

StatusOr<std::unique_ptr<TextDecoder>> TextDecoder::create(const ModelDims& dims, const TensorMap& tensors,
                                                           ComputeType type) {
  auto weights = load_decoder_weights(dims, tensors, type);
  if (!weights.ok()) return weights.status();
  std::unique_ptr<TextDecoder> dec(new TextDecoder());
  dec->dims_ = dims;
  dec->w_ = std::move(weights).value();
  dec->cross_type_ = type == ComputeType::kInt8      ? CrossKV::Type::kI8
                     : type == ComputeType::kFloat16 ? CrossKV::Type::kF16
                                                     : CrossKV::Type::kF32;
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
  out->type = cross_type_;
  const size_t L = w_.blocks.size();
  out->kv32.resize(cross_type_ == CrossKV::Type::kF32 ? L : 0);
  out->kv16.resize(cross_type_ == CrossKV::Type::kF16 ? L : 0);
  out->kv8.resize(cross_type_ == CrossKV::Type::kI8 ? L : 0);
  out->scale8.resize(cross_type_ == CrossKV::Type::kI8 ? L : 0);
  Buffer<float> tmp;  // [T, 2d] as the fused projection writes it
  if (!tmp.reset(per_layer)) return Status(StatusCode::kOutOfMemory, "allocating cross-attention keys/values");
  const Status oom(StatusCode::kOutOfMemory, "allocating cross-attention keys/values");
  for (size_t l = 0; l < L; ++l) {
    switch (cross_type_) {  // allocated on the first window, reused after
      case CrossKV::Type::kF32:
        if (out->kv32[l].size() != per_layer && !out->kv32[l].reset(per_layer)) return oom;
        break;
      case CrossKV::Type::kF16:
        if (out->kv16[l].size() != per_layer && !out->kv16[l].reset(per_layer)) return oom;
        break;
      case CrossKV::Type::kI8:
        if (out->kv8[l].size() != per_layer && !out->kv8[l].reset(per_layer)) return oom;
        if (out->scale8[l].size() != static_cast<size_t>(2 * H * T) && !out->scale8[l].reset(static_cast<size_t>(2 * H * T))) {
          return oom;
        }
        break;
    }
    w_.blocks[l].cross_kv.forward(states.data, T, tmp.data(), pool);
    if (offload_) {
      // Layer-step subgraphs take this window's cross K/V as [T, d] inputs: written once here.
      for (offload::LayerStepRunner* r : offload_->steps_of_layer(static_cast<int>(l))) {
        float* ck = r->cross_k();
        float* cv = r->cross_v();
        for (int64_t t = 0; t < T; ++t) {
          std::memcpy(ck + t * d, tmp.data() + t * 2 * d, d * sizeof(float));
          std::memcpy(cv + t * d, tmp.data() + t * 2 * d + d, d * sizeof(float));
        }
      }
    }
    // [T, (K|V), H, dh] -> [(K|V), H, T, dh]
    auto regroup = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t kv = 0; kv < 2; ++kv) {
          for (int64_t h = 0; h < H; ++h) {
            const float* src = tmp.data() + t * 2 * d + kv * d + h * dh;
            const size_t row = static_cast<size_t>((kv * H + h) * T + t);
            const size_t dst = row * static_cast<size_t>(dh);
            switch (out->type) {
              case CrossKV::Type::kF32: std::memcpy(out->kv32[l].data() + dst, src, dh * sizeof(float)); break;
              case CrossKV::Type::kF16: cpu::floats_to_half(src, dh, out->kv16[l].data() + dst); break;
              case CrossKV::Type::kI8:
                out->scale8[l][row] = cpu::quantize_row_i8(src, dh, out->kv8[l].data() + dst);
                break;
            }
          }
        }
      }
    };
    if (pool) pool->parallel_for(T, 64, regroup); else regroup(0, T);
  }
  return Status::Ok();
}

size_t CrossKV::layers() const {
  switch (type) {
    case Type::kF32: return kv32.size();
    case Type::kF16: return kv16.size();
    case Type::kI8: return kv8.size();
  }
  return 0;
}

namespace {
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
double wall_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
}  // namespace

std::vector<KVCache::External> TextDecoder::cache_storage(int beams) const {
  std::vector<KVCache::External> out;
  if (!offload_) return out;
  bool any = false;
  for (int l = 0; l < dims_.n_text_layer; ++l) {
    offload::LayerStepRunner* r = offload_->step(l, beams);
    out.push_back(r ? KVCache::External{r->self_k(), r->self_v()} : KVCache::External{});
    any = any || r != nullptr;
  }
  if (!any) out.clear();
  return out;
}

Status TextDecoder::run_runner(offload::SubgraphRunner* r, int64_t macs) {
  const double c0 = thread_cpu_seconds(), w0 = wall_seconds();
  Status s = r->run();
  stats_.runner_cpu_seconds += thread_cpu_seconds() - c0;
  stats_.runner_seconds += wall_seconds() - w0;
  ++stats_.npu_calls;
  stats_.npu_macs += macs;
  return s;
}

Status TextDecoder::layer_step(offload::LayerStepRunner* r, int layer, int64_t M, float* x, KVCache* cache,
                               const CrossKV& cross) {
  const int64_t d = dims_.n_text_state;
  const int C = r->n_ctx();
  const int pos = cache->length();
  // Positions [0, pos) of the cache are attended; the step attends to its own new k/v itself.
  float* mask = r->mask();
  for (int64_t b = 0; b < M; ++b) {
    for (int j = 0; j < C; ++j) mask[b * C + j] = j < pos ? 0.0f : offload::kMaskedScore;
  }
  std::memcpy(r->x(), x, static_cast<size_t>(M * d) * sizeof(float));
  const double c0 = thread_cpu_seconds(), w0 = wall_seconds();
  Status s = r->run();
  stats_.runner_cpu_seconds += thread_cpu_seconds() - c0;
  stats_.runner_seconds += wall_seconds() - w0;
  ++stats_.npu_calls;
  stats_.npu_macs += M * (14 * d * d + 2 * (pos + 1) * d + 2 * cross.n_ctx * d);
  WG_RETURN_IF_ERROR(s);
  std::memcpy(x, r->x_out(), static_cast<size_t>(M * d) * sizeof(float));
  // The new position's keys/values: the only write to the cache this step.
  for (int64_t b = 0; b < M; ++b) {
    std::memcpy(cache->keys(layer, static_cast<int>(b)) + static_cast<int64_t>(pos) * d, r->k_out() + b * d,
                d * sizeof(float));
    std::memcpy(cache->values(layer, static_cast<int>(b)) + static_cast<int64_t>(pos) * d, r->v_out() + b * d,
                d * sizeof(float));
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
  if (cross.layers() != w_.blocks.size()) {
    return invalid_argument("cross-attention keys/values not computed");
  }
  const int64_t M = static_cast<int64_t>(beams) * n_new;
  WG_RETURN_IF_ERROR(ensure_scratch(std::max<int64_t>(M, static_cast<int64_t>(logit_rows.size()))));
  for (int64_t r = 0; r < M; ++r) {
    const int tok = tokens[r];
    if (tok < 0 || tok >= V) return invalid_argument("token id " + std::to_string(tok) + " outside the vocabulary");
  }
  // Subgraphs take single-token steps of exactly their batch; anything else runs on the CPU.
  const bool can_offload = offload_ && n_new == 1 && !offload_->batches().empty() &&
                           std::find(offload_->batches().begin(), offload_->batches().end(), static_cast<int>(M)) !=
                               offload_->batches().end();
  if (offload_ && offload_->mode() != offload::Mode::kNone) {
    if (can_offload) {
      stats_.tokens += M;
    } else {
      stats_.cpu_rows_other += M;
    }
  }
  auto runner = [&](offload::OpKind k, int l) -> offload::SubgraphRunner* {
    return can_offload ? offload_->dense(k, l, static_cast<int>(M)) : nullptr;
  };

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
    const int li = static_cast<int>(l);
    offload::LayerStepRunner* step = can_offload ? offload_->step(li, static_cast<int>(M)) : nullptr;
    // The step's cache inputs must be this cache's storage (KVCache::reset with cache_storage()).
    if (step != nullptr && cache->keys(li, 0) == step->self_k() && cache->values(li, 0) == step->self_v()) {
      WG_RETURN_IF_ERROR(layer_step(step, li, M, x, cache, cross));
      continue;
    }
    // --- masked self-attention over the cache ---
    offload::SubgraphRunner* r_qkv = runner(offload::OpKind::kSelfQkv, li);
    float* qkv_in = r_qkv ? r_qkv->input() : h_.data();
    b.attn_ln.forward(x, M, qkv_in, pool);
    const float* qkv = qkv_.data();
    if (r_qkv) {
      WG_RETURN_IF_ERROR(run_runner(r_qkv, M * 3 * d * d));
      qkv = r_qkv->output();
    } else {
      b.attn_qkv.forward(qkv_in, M, qkv_.data(), pool);
      stats_.cpu_macs += M * 3 * d * d;
    }
    for (int64_t r = 0; r < M; ++r) {
      const int beam = static_cast<int>(r / n_new);
      const int64_t pos = offset + r % n_new;
      std::memcpy(cache->keys(li, beam) + pos * d, qkv + r * 3 * d + d, d * sizeof(float));
      std::memcpy(cache->values(li, beam) + pos * d, qkv + r * 3 * d + 2 * d, d * sizeof(float));
    }
    offload::SubgraphRunner* r_out = runner(offload::OpKind::kSelfOut, li);
    float* ctx = r_out ? r_out->input() : ctx_.data();
    auto self_task = [&](int64_t t) {
      const int beam = static_cast<int>(t / n_head);
      const int64_t h = t % n_head;
      const float* K = cache->keys(li, beam) + h * dh;
      const float* Vv = cache->values(li, beam) + h * dh;
      float* s = scores_.data() + t * dims_.n_text_ctx;
      for (int i = 0; i < n_new; ++i) {
        const int64_t r = static_cast<int64_t>(beam) * n_new + i;
        const int64_t keys = offset + i + 1;  // causal: up to and including this position
        const float* q = qkv + r * 3 * d + h * dh;
        cpu::gemv_nk(1, dh, q, dh, K, d, 0, keys, s, keys);
        for (int64_t j = 0; j < keys; ++j) s[j] *= scale;
        cpu::softmax(s, keys);
        float* o = ctx + r * d + h * dh;
        std::memset(o, 0, dh * sizeof(float));
        for (int64_t j = 0; j < keys; ++j) cpu::axpy(s[j], Vv + j * d, o, dh);
      }
    };
    if (pool) pool->run(beams * n_head, self_task); else for (int64_t t = 0; t < beams * n_head; ++t) self_task(t);
    for (int64_t r = 0; r < M; ++r) stats_.cpu_macs += 2 * (offset + r % n_new + 1) * d;
    if (r_out) {
      WG_RETURN_IF_ERROR(run_runner(r_out, M * d * d));
      cpu::add_inplace(x, r_out->output(), M * d);
    } else {
      b.attn_out.forward(ctx, M, h_.data(), pool);
      stats_.cpu_macs += M * d * d;
      cpu::add_inplace(x, h_.data(), M * d);
    }

    // --- cross-attention over the window's encoder states ---
    offload::SubgraphRunner* r_cq = runner(offload::OpKind::kCrossQ, li);
    float* cq_in = r_cq ? r_cq->input() : h_.data();
    b.cross_ln.forward(x, M, cq_in, pool);
    const float* cq = qkv_.data();  // q [M, d] (row stride d)
    if (r_cq) {
      WG_RETURN_IF_ERROR(run_runner(r_cq, M * d * d));
      cq = r_cq->output();
    } else {
      b.cross_q.forward(cq_in, M, qkv_.data(), pool);
      stats_.cpu_macs += M * d * d;
    }
    offload::SubgraphRunner* r_co = runner(offload::OpKind::kCrossOut, li);
    float* cctx = r_co ? r_co->input() : ctx_.data();
    const size_t head_block = static_cast<size_t>(n_audio * dh);
    auto cross_task = [&](int64_t h) {
      float* s = scores_.data() + h * M * n_audio;
      const size_t k_off = static_cast<size_t>(h) * head_block;
      const size_t v_off = static_cast<size_t>(n_head + h) * head_block;
      const float* q = cq + h * dh;
      // int8: the scores get each key row's scale, the probabilities each value row's.
      const float* k_scale = cross.type == CrossKV::Type::kI8 ? cross.scale8[l].data() + h * n_audio : nullptr;
      const float* v_scale = cross.type == CrossKV::Type::kI8 ? cross.scale8[l].data() + (n_head + h) * n_audio : nullptr;
      switch (cross.type) {
        case CrossKV::Type::kF32: cpu::gemv_nk(M, dh, q, d, cross.kv32[l].data() + k_off, dh, 0, n_audio, s, n_audio); break;
        case CrossKV::Type::kF16: cpu::gemv_nk_f16(M, dh, q, d, cross.kv16[l].data() + k_off, dh, 0, n_audio, s, n_audio); break;
        case CrossKV::Type::kI8: cpu::gemv_nk_i8w(M, dh, q, d, cross.kv8[l].data() + k_off, dh, 0, n_audio, s, n_audio); break;
      }
      for (int64_t r = 0; r < M; ++r) {
        float* row = s + r * n_audio;
        if (k_scale != nullptr) {
          for (int64_t j = 0; j < n_audio; ++j) row[j] *= scale * k_scale[j];
        } else {
          for (int64_t j = 0; j < n_audio; ++j) row[j] *= scale;
        }
        cpu::softmax(row, n_audio);
        float* o = cctx + r * d + h * dh;
        switch (cross.type) {
          case CrossKV::Type::kF32: cpu::weighted_rows(row, n_audio, cross.kv32[l].data() + v_off, dh, dh, o); break;
          case CrossKV::Type::kF16: cpu::weighted_rows_f16(row, n_audio, cross.kv16[l].data() + v_off, dh, dh, o); break;
          case CrossKV::Type::kI8:
            for (int64_t j = 0; j < n_audio; ++j) row[j] *= v_scale[j];
            cpu::weighted_rows_i8(row, n_audio, cross.kv8[l].data() + v_off, dh, dh, o);
            break;
        }
      }
    };
    if (pool) pool->run(n_head, cross_task); else for (int64_t h = 0; h < n_head; ++h) cross_task(h);
    stats_.cpu_macs += M * 2 * n_audio * d;
    if (r_co) {
      WG_RETURN_IF_ERROR(run_runner(r_co, M * d * d));
      cpu::add_inplace(x, r_co->output(), M * d);
    } else {
      b.cross_out.forward(cctx, M, h_.data(), pool);
      stats_.cpu_macs += M * d * d;
      cpu::add_inplace(x, h_.data(), M * d);
    }

    // --- MLP ---
    offload::SubgraphRunner* r_fc1 = runner(offload::OpKind::kFc1, li);
    offload::SubgraphRunner* r_fc2 = runner(offload::OpKind::kFc2, li);
    float* fc1_in = r_fc1 ? r_fc1->input() : h_.data();
    float* hidden = r_fc2 ? r_fc2->input() : hidden_.data();  // GELU output = fc2's input
    b.mlp_ln.forward(x, M, fc1_in, pool);
    if (r_fc1) {
      WG_RETURN_IF_ERROR(run_runner(r_fc1, M * 4 * d * d));
      std::memcpy(hidden, r_fc1->output(), static_cast<size_t>(M * 4 * d) * sizeof(float));
    } else {
      b.fc1.forward(fc1_in, M, hidden, pool);
      stats_.cpu_macs += M * 4 * d * d;
    }
    cpu::gelu(hidden, M * 4 * d, pool);
    if (r_fc2) {
      WG_RETURN_IF_ERROR(run_runner(r_fc2, M * 4 * d * d));
      cpu::add_inplace(x, r_fc2->output(), M * d);
    } else {
      b.fc2.forward(hidden, M, h_.data(), pool);
      stats_.cpu_macs += M * 4 * d * d;
      cpu::add_inplace(x, h_.data(), M * d);
    }
  }
  cache->set_length(offset + n_new);

  // Final LayerNorm and the output projection (tied to the token embedding), only for the
  // rows whose logits were asked for.
  const int64_t n_rows = static_cast<int64_t>(logit_rows.size());
  const std::vector<offload::DecoderOffload::VocabChunk>* chunks =
      can_offload && n_rows == M ? offload_->vocab(static_cast<int>(M)) : nullptr;
  for (int64_t i = 0; i < n_rows; ++i) {
    const int r = logit_rows[static_cast<size_t>(i)];
    if (r < 0 || r >= M) return invalid_argument("logit row out of range");
    w_.ln.forward(x + static_cast<int64_t>(r) * d, 1, h_.data() + i * d, nullptr);
  }
  if (chunks == nullptr) {
    cpu::linear(h_.data(), n_rows, embedding, nullptr, logits, V, pool);
    stats_.cpu_macs += n_rows * V * d;
    return Status::Ok();
  }
  for (const auto& c : *chunks) {
    if (c.runner == nullptr) {
      // This chunk on the CPU: the embedding rows [col0, col0 + cols) as a weight of their own.
      cpu::WeightView part = embedding;
      const size_t elem = part.type == cpu::WeightType::kF32 ? 4 : part.type == cpu::WeightType::kF16 ? 2 : 1;
      part.data = static_cast<const char*>(part.data) + static_cast<size_t>(c.col0 * d) * elem;
      if (part.scales != nullptr) part.scales += c.col0;
      part.packed = nullptr;  // packed int8 panels are not row-sliceable; the row-major copy is
      part.n = c.cols;
      cpu::linear(h_.data(), n_rows, part, nullptr, logits + c.col0, V, pool);
      stats_.cpu_macs += n_rows * c.cols * d;
      continue;
    }
    std::memcpy(c.runner->input(), h_.data(), static_cast<size_t>(n_rows * d) * sizeof(float));
    WG_RETURN_IF_ERROR(run_runner(c.runner, n_rows * c.cols * d));
    for (int64_t i = 0; i < n_rows; ++i) {
      std::memcpy(logits + i * V + c.col0, c.runner->output() + i * c.cols, static_cast<size_t>(c.cols) * sizeof(float));
    }
  }
  return Status::Ok();
}

}  // namespace whisper_genio::layers
