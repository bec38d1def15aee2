#include "text_decoder.h"

#include <algorithm>
#include <cstring>

#include "../kernels/cpu/ops.h"
#include "../offload/executors.h"

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
  dec->cpu_ = dec->cpu_executors();
  return dec;
}

TextDecoder::Executors TextDecoder::cpu_executors() {
  Executors ex;
  DecoderScratch& s = *scratch_;
  for (size_t l = 0; l < w_.blocks.size(); ++l) {
    const Block& b = w_.blocks[l];
    const std::pair<const Linear*, std::pair<Buffer<float>*, Buffer<float>*>> ops[] = {
        {&b.attn_qkv, {&s.h, &s.qkv}}, {&b.attn_out, {&s.ctx, &s.proj}}, {&b.cross_q, {&s.h, &s.qkv}},
        {&b.cross_out, {&s.ctx, &s.proj}}, {&b.fc1, {&s.h, &s.hidden}}, {&b.fc2, {&s.hidden, &s.proj}}};
    LinearExecutor* l6[6];
    for (int k = 0; k < 6; ++k) {
      ex.linears.push_back(std::make_unique<CpuLinear>(*ops[k].first, ops[k].second.first, ops[k].second.second, *stats_));
      l6[k] = ex.linears.back().get();
    }
    const LayerLinears linears{l6[0], l6[1], l6[2], l6[3], l6[4], l6[5]};
    auto layer = std::make_unique<DecoderLayer>(b, static_cast<int>(l), dims_, linears, s, *stats_);
    cpu_layers_.push_back(layer.get());
    ex.layers.push_back(std::move(layer));
  }
  ex.vocabulary = std::make_unique<CpuVocabulary>(w_.token_embedding, *stats_);
  return ex;
}

LinearExecutor* TextDecoder::planned_linear(Executors& ex, offload::OpKind kind, int layer, LinearExecutor* cpu) {
  offload::SubgraphRunner* r = offload_->dense(kind, layer, ex.batch);
  if (r == nullptr) return cpu;
  ex.linears.push_back(std::make_unique<offload::SubgraphLinear>(*r, *stats_));
  return ex.linears.back().get();
}

// The executors the plan assigns to the steps of `batch` rows: a layer-step subgraph, else each
// projection on its subgraph or the CPU; the vocabulary in chunks where the plan has any.
TextDecoder::Executors TextDecoder::planned_executors(int batch) {
  Executors ex;
  ex.batch = batch;
  using offload::OpKind;
  const OpKind kinds[6] = {OpKind::kSelfQkv, OpKind::kSelfOut, OpKind::kCrossQ,
                           OpKind::kCrossOut, OpKind::kFc1,    OpKind::kFc2};
  for (int l = 0; l < dims_.n_text_layer; ++l) {
    LayerExecutor& cpu_layer = *cpu_.layers[static_cast<size_t>(l)];
    if (offload::LayerStepRunner* step = offload_->step(l, batch)) {
      ex.layers.push_back(std::make_unique<offload::SubgraphLayerStep>(*step, l, dims_.n_text_state, cpu_layer, *stats_));
      continue;
    }
    LinearExecutor* l6[6];
    for (int k = 0; k < 6; ++k) l6[k] = planned_linear(ex, kinds[k], l, cpu_.linears[static_cast<size_t>(6 * l + k)].get());
    const LayerLinears linears{l6[0], l6[1], l6[2], l6[3], l6[4], l6[5]};
    ex.layers.push_back(std::make_unique<DecoderLayer>(w_.blocks[static_cast<size_t>(l)], l, dims_, linears, *scratch_,
                                                       *stats_));
  }
  if (const auto* chunks = offload_->vocab(batch)) {
    ex.vocabulary = std::make_unique<offload::ChunkedVocabulary>(*chunks, w_.token_embedding, *stats_);
  }
  return ex;
}

void TextDecoder::set_offload(std::shared_ptr<offload::DecoderOffload> plan) {
  planned_.clear();
  offload_ = std::move(plan);
  if (!offload_) return;
  for (int batch : offload_->batches()) planned_.push_back(planned_executors(batch));
}

// Subgraphs take single-token steps of exactly their batch, every logit row asked for; anything
// else (prompts, other row counts) runs on the CPU.
const TextDecoder::Executors& TextDecoder::executors_for(const Step& step) const {
  if (step.n_new == 1) {
    for (const Executors& ex : planned_) {
      if (ex.batch == step.beams) return ex;
    }
  }
  return cpu_;
}

std::vector<KVCache::External> TextDecoder::cache_storage(int beams) const {
  for (const Executors& ex : planned_) {
    if (ex.batch != beams) continue;
    std::vector<KVCache::External> out;
    bool any = false;
    for (const auto& layer : ex.layers) {
      out.push_back(layer->cache_storage());
      any = any || out.back().k != nullptr;
    }
    if (any) return out;
  }
  return {};
}

bool TextDecoder::fixed_window() const {
  return std::any_of(planned_.begin(), planned_.end(), [](const Executors& ex) {
    return std::any_of(ex.layers.begin(), ex.layers.end(), [](const auto& layer) { return layer->fixed_window(); });
  });
}

Status TextDecoder::compute_cross_kv(const EncoderStates& states, CrossKV* out, ThreadPool* pool) const {
  const int64_t d = dims_.n_text_state;
  if (states.data == nullptr) return invalid_argument("encoder states are empty");
  if (states.d != d || states.n_ctx < 1 || states.n_ctx > dims_.n_audio_ctx) {
    return invalid_argument("encoder states have shape [" + std::to_string(states.n_ctx) + ", " +
                            std::to_string(states.d) + "], the decoder expects [" +
                            std::to_string(dims_.n_audio_ctx) + ", " + std::to_string(d) + "] (or fewer positions)");
  }
  if (states.n_ctx != dims_.n_audio_ctx && fixed_window()) {
    return invalid_argument("decoder layers on the NPU take a whole 30 s window's " + std::to_string(dims_.n_audio_ctx) +
                            " encoder positions, got " + std::to_string(states.n_ctx) +
                            " (a trimmed window): trim only with the decoder on the CPU");
  }
  const int64_t T = states.n_ctx;
  Buffer<float> kv;  // [T, 2d] as the fused projection writes it
  if (!kv.reset(static_cast<size_t>(T * 2 * d))) return Status(StatusCode::kOutOfMemory, "allocating cross-attention keys/values");
  out->type = cross_type_;
  const size_t L = w_.blocks.size();
  for (size_t l = 0; l < L; ++l) {
    WG_RETURN_IF_ERROR(out->reserve(L, l, T, d, dims_.n_text_head));
    w_.blocks[l].cross_kv.forward(states.data, T, kv.data(), pool);
    for (const Executors& ex : planned_) ex.layers[l]->set_window(kv.data(), T);
    out->store(l, kv.data(), d, dims_.n_text_head, pool);
  }
  return Status::Ok();
}

Status TextDecoder::reserve(int64_t rows) { return scratch_->reserve(rows, dims_); }

Status TextDecoder::check_step(const int* tokens, const Step& step, const KVCache& cache,
                               const CrossKV& cross) const {
  if (step.beams != cache.beams()) return invalid_argument("token batch does not match the KV cache's beams");
  if (step.n_new <= 0) return invalid_argument("no tokens to decode");
  if (step.offset + step.n_new > std::min(cache.capacity(), dims_.n_text_ctx)) {
    return invalid_argument("decoder context full: " + std::to_string(step.offset + step.n_new) + " positions, capacity " +
                            std::to_string(dims_.n_text_ctx));
  }
  if (cross.layers() != w_.blocks.size()) return invalid_argument("cross-attention keys/values not computed");
  for (int64_t r = 0; r < step.rows(); ++r) {
    if (tokens[r] < 0 || tokens[r] >= dims_.n_vocab) {
      return invalid_argument("token id " + std::to_string(tokens[r]) + " outside the vocabulary");
    }
  }
  return Status::Ok();
}

// x = token embedding + position embedding, per row.
void TextDecoder::embed(const int* tokens, const Step& step, float* x) const {
  const int64_t d = dims_.n_text_state;
  const cpu::WeightView embedding = w_.token_embedding.view();
  for (int64_t r = 0; r < step.rows(); ++r) {
    const int64_t pos = step.offset + r % step.n_new;
    cpu::weight_row(embedding, tokens[r], x + r * d);
    cpu::add_inplace(x + r * d, w_.position.data() + pos * d, d);
  }
}

Status TextDecoder::run_layers(const int* tokens, int beams, int n_new, KVCache* cache, const CrossKV& cross,
                               ThreadPool* pool) {
  const Step step{beams, n_new, cache->length()};
  WG_RETURN_IF_ERROR(check_step(tokens, step, *cache, cross));
  WG_RETURN_IF_ERROR(reserve(step.rows()));
  const Executors& ex = executors_for(step);
  if (offload_ && offload_->mode() != offload::Mode::kNone) (ex.batch ? stats_->tokens : stats_->cpu_rows_other) += step.rows();
  last_ = nullptr;
  float* x = scratch_->x.data();
  embed(tokens, step, x);
  for (const auto& layer : ex.layers) WG_RETURN_IF_ERROR(layer->forward(x, step, cache, cross, pool));
  cache->set_length(step.offset + n_new);
  last_ = &ex;
  last_step_ = step;
  return Status::Ok();
}

// The final LayerNorm and the output projection (tied to the token embedding), only for the
// rows whose logits were asked for.
Status TextDecoder::project(const std::vector<int>& rows, float* logits, ThreadPool* pool) {
  if (last_ == nullptr) return invalid_argument("no decoder step to project: run the layers first");
  const int64_t d = dims_.n_text_state, n_rows = static_cast<int64_t>(rows.size());
  for (int r : rows) {
    if (r < 0 || r >= last_step_.rows()) return invalid_argument("logit row out of range");
  }
  WG_RETURN_IF_ERROR(reserve(n_rows));
  const float* x = scratch_->x.data();
  float* h = scratch_->h.data();
  for (int64_t i = 0; i < n_rows; ++i) w_.ln.forward(x + rows[static_cast<size_t>(i)] * d, 1, h + i * d, nullptr);
  VocabularyExecutor& vocabulary = last_->vocabulary && n_rows == last_step_.rows() ? *last_->vocabulary
                                                                                    : *cpu_.vocabulary;
  return vocabulary.forward(h, n_rows, logits, pool);
}

Status TextDecoder::forward(const int* tokens, int beams, int n_new, KVCache* cache, const CrossKV& cross,
                            const std::vector<int>& logit_rows, float* logits, ThreadPool* pool) {
  for (int r : logit_rows) {  // before the cache changes
    if (r < 0 || r >= static_cast<int64_t>(beams) * n_new) return invalid_argument("logit row out of range");
  }
  WG_RETURN_IF_ERROR(reserve(std::max<int64_t>(static_cast<int64_t>(beams) * n_new, logit_rows.size())));
  WG_RETURN_IF_ERROR(run_layers(tokens, beams, n_new, cache, cross, pool));
  return project(logit_rows, logits, pool);
}

void TextDecoder::set_attention_probes(const std::vector<std::pair<int, AttentionProbe>>& probes) {
  for (size_t l = 0; l < cpu_layers_.size(); ++l) {
    std::vector<AttentionProbe> mine;
    for (const auto& [layer, probe] : probes) {
      if (layer == static_cast<int>(l)) mine.push_back(probe);
    }
    cpu_layers_[l]->cross_attention().set_probes(std::move(mine));
  }
}

}  // namespace whisper_genio::layers
