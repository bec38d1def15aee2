// The one decode loop (openai-whisper's DecodingTask._main_loop and run) and the Decoder
// facade that owns the per-window state.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "../layers/text_decoder.h"
#include "logit_filters.h"
#include "token_decoders.h"
#include "whisper_genio/audio.h"
#include "whisper_genio/decoding.h"
#include "whisper_genio/kv_cache.h"

namespace whisper_genio {

namespace {

// no_repeat_ngram_size and repetition_cutoff beyond a window's tokens would mean nothing.
constexpr int kMaxNgram = 448;
// Far beyond any useful penalty, and within float range (the filter works in float).
constexpr double kMaxRepetitionPenalty = 1000.0;

template <typename T>
std::string str(T v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

Status DecodingOptions::check() const {
  if (!std::isfinite(temperature) || temperature < 0.0f) {
    return invalid_argument("temperature must be a finite number >= 0, got " + str(temperature));
  }
  for (const auto& [name, value] : {std::pair<const char*, const std::optional<int>&>{"sample_len", sample_len},
                                    {"best_of", best_of}, {"beam_size", beam_size}}) {
    if (value && *value < 1) return invalid_argument(std::string(name) + " must be a positive integer, got " + str(*value));
  }
  if (best_of && *best_of > kMaxDecodingGroup) {
    return invalid_argument("best_of must be at most " + str(kMaxDecodingGroup) + ", got " + str(*best_of));
  }
  if (beam_size && *beam_size > kMaxDecodingGroup) {
    return invalid_argument("beam_size must be at most " + str(kMaxDecodingGroup) + ", got " + str(*beam_size));
  }
  if (beam_size && best_of) return invalid_argument("beam_size and best_of can't be given together");
  if (temperature == 0.0f && best_of) return invalid_argument("best_of with greedy sampling (T=0) is not compatible");
  if (beam_size && temperature > 0.0f) return invalid_argument("beam_size needs temperature 0 (beam search is greedy)");
  if (patience && !beam_size) return invalid_argument("patience requires beam_size to be given");
  if (patience && !(*patience > 0.0 && std::isfinite(*patience))) {
    return invalid_argument("patience must be a finite number > 0, got " + str(*patience));
  }
  if (patience && std::nearbyint(*beam_size * *patience) < 1) {
    return invalid_argument("beam_size * patience must be at least 1, got " + str(*beam_size * *patience));
  }
  if (patience && *beam_size * *patience > kMaxBeamCandidates) {
    return invalid_argument("beam_size * patience (finished candidates to wait for) must be at most " +
                            str(kMaxBeamCandidates) + ", got " + str(*beam_size * *patience));
  }
  if (length_penalty && !(*length_penalty >= 0.0 && *length_penalty <= 1.0)) {
    return invalid_argument("length_penalty (alpha) should be a value between 0 and 1, got " + str(*length_penalty));
  }
  if (max_initial_timestamp && !(std::isfinite(*max_initial_timestamp) && *max_initial_timestamp >= 0.0)) {
    return invalid_argument("max_initial_timestamp must be a finite number >= 0, got " + str(*max_initial_timestamp));
  }
  if (!(repetition_penalty > 0.0 && repetition_penalty <= kMaxRepetitionPenalty)) {
    return invalid_argument("repetition_penalty must be a number > 0 and <= " + str(kMaxRepetitionPenalty) +
                            " (1: none), got " + str(repetition_penalty));
  }
  if (no_repeat_ngram_size < 0 || no_repeat_ngram_size > kMaxNgram) {
    return invalid_argument("no_repeat_ngram_size must be between 0 (off) and " + str(kMaxNgram) + ", got " +
                            str(no_repeat_ngram_size));
  }
  if (repetition_cutoff && (*repetition_cutoff < 2 || *repetition_cutoff > kMaxNgram)) {
    return invalid_argument("repetition_cutoff must be a number of repeats between 2 and " + str(kMaxNgram) + ", got " +
                            str(*repetition_cutoff));
  }
  return Status::Ok();
}

int DecodingOptions::max_initial_timestamp_index(const ModelDims& dims) const {
  if (!max_initial_timestamp || *max_initial_timestamp == 0.0) return -1;  // openai-whisper: 0 means no limit
  const double precision = static_cast<double>(kChunkSeconds) / dims.n_audio_ctx;  // seconds per timestamp token
  // Python's round() (half to even); past the last timestamp token the limit no longer limits.
  return static_cast<int>(std::min<double>(std::nearbyint(*max_initial_timestamp / precision), dims.n_audio_ctx));
}

Status DecodingOptions::validate(const ModelDims& dims) const {
  WG_RETURN_IF_ERROR(check());
  const int V = dims.n_vocab;
  auto in_vocab = [V](int t) { return t >= 0 && t < V; };
  if (initial_tokens.empty()) return invalid_argument("initial_tokens is empty");
  for (int t : initial_tokens) {
    if (!in_vocab(t)) return invalid_argument("initial token " + std::to_string(t) + " outside the vocabulary");
  }
  if (static_cast<int>(initial_tokens.size()) >= dims.n_text_ctx) {
    return invalid_argument("the prompt fills the decoder context (" + std::to_string(initial_tokens.size()) +
                            " tokens, n_text_ctx " + std::to_string(dims.n_text_ctx) + ")");
  }
  if (sot_index < 0 || sot_index >= static_cast<int>(initial_tokens.size())) return invalid_argument("sot_index out of range");
  for (const auto* list : {&suppress_tokens, &blank_tokens}) {
    for (int t : *list) {
      if (!in_vocab(t)) return invalid_argument("suppressed token " + std::to_string(t) + " outside the vocabulary");
    }
  }
  if (!in_vocab(eot)) return invalid_argument("eot token outside the vocabulary");
  if (!without_timestamps && (!in_vocab(timestamp_begin) || !in_vocab(no_timestamps))) {
    return invalid_argument("timestamp tokens outside the vocabulary");
  }
  if (no_speech >= V) return invalid_argument("no_speech token outside the vocabulary");
  return Status::Ok();
}

std::string DecodingOptions::to_string() const {
  auto opt = [](const auto& v) { return v ? str(*v) : std::string("None"); };
  std::ostringstream s;
  s << "DecodingOptions(temperature=" << temperature << ", sample_len=" << opt(sample_len) << ", best_of="
    << opt(best_of) << ", beam_size=" << opt(beam_size) << ", patience=" << opt(patience)
    << ", length_penalty=" << opt(length_penalty) << ", suppress_blank=" << suppress_blank
    << ", without_timestamps=" << without_timestamps << ", max_initial_timestamp=" << opt(max_initial_timestamp)
    << ", seed=" << seed << ", repetition_penalty=" << repetition_penalty
    << ", no_repeat_ngram_size=" << no_repeat_ngram_size << ", repetition_cutoff=" << opt(repetition_cutoff)
    << ", initial_tokens=" << initial_tokens.size() << " tokens, sot_index=" << sot_index
    << ", suppress_tokens=" << suppress_tokens.size() << ")";
  return s.str();
}

// Decoder forward passes with a KV cache (openai-whisper's PyTorchInference): the first call
// runs every initial token, once, and copies the cache to every sequence of the group; later
// calls run only the newest token of each sequence. Its buffers are sized once per decode.
class Inference {
 public:
  Inference(Decoder& owner, int n_group) : owner_(owner), n_group_(n_group) {
    last_.resize(static_cast<size_t>(n_group));
    rows_.resize(static_cast<size_t>(n_group));
    for (int b = 0; b < n_group; ++b) rows_[static_cast<size_t>(b)] = b;
  }

  // logits [n_group, V] for the last position; on the first call also the logits at
  // `sot_index` (same for every sequence) into sot_logits [V].
  Status logits(const decoding::Sequences& tokens, int sot_index, float* out, float* sot_logits) {
    if (first_) {
      first_ = false;
      return prompt(tokens[0], sot_index, out, sot_logits);
    }
    const int B = static_cast<int>(tokens.size());
    for (int b = 0; b < B; ++b) last_[static_cast<size_t>(b)] = tokens[static_cast<size_t>(b)].back();
    rows_.resize(static_cast<size_t>(B));
    owner_.forward_calls_ += 1;
    owner_.forward_tokens_ += B;
    return owner_.decoder_->forward(last_.data(), B, 1, owner_.cache_.get(), *owner_.cross_, rows_, out,
                                    owner_.pool_.get());
  }

  Status rearrange_kv_cache(const std::vector<int>& source) {
    bool identity = true;
    for (size_t i = 0; i < source.size(); ++i) identity = identity && source[i] == static_cast<int>(i);
    if (identity) return Status::Ok();
    return owner_.cache_->reorder(source);
  }

 private:
  // The initial tokens of one sequence, then the cache copied to the whole group.
  Status prompt(const std::vector<int>& initial, int sot_index, float* out, float* sot_logits) {
    layers::TextDecoder& dec = *owner_.decoder_;
    KVCache& cache = *owner_.cache_;
    const ModelDims& d = dec.dims();
    const int V = d.n_vocab;
    const int L = static_cast<int>(initial.size());
    WG_RETURN_IF_ERROR(cache.reset(d.n_text_layer, n_group_, d.n_text_ctx, d.n_text_state, dec.cache_storage(n_group_)));
    WG_RETURN_IF_ERROR(cache.broadcast_first(1));
    // Scratch for the prompt's rows and every later step's, so no later step allocates.
    WG_RETURN_IF_ERROR(dec.reserve(std::max(L, n_group_)));
    std::vector<float> two(2 * static_cast<size_t>(V));
    WG_RETURN_IF_ERROR(dec.forward(initial.data(), 1, L, &cache, *owner_.cross_, {sot_index, L - 1}, two.data(),
                                   owner_.pool_.get()));
    WG_RETURN_IF_ERROR(cache.broadcast_first(n_group_));
    std::copy(two.begin(), two.begin() + V, sot_logits);
    for (int g = 0; g < n_group_; ++g) std::copy(two.begin() + V, two.end(), out + static_cast<size_t>(g) * V);
    owner_.forward_calls_ += 1;
    owner_.forward_tokens_ += L;
    return Status::Ok();
  }

  Decoder& owner_;
  int n_group_;
  bool first_ = true;
  std::vector<int> last_, rows_;
};

Decoder::Decoder() = default;
Decoder::~Decoder() = default;

StatusOr<std::unique_ptr<Decoder>> Decoder::create(const ModelDims& dims, const TensorMap& tensors,
                                                   std::shared_ptr<ThreadPool> pool, ComputeType type) {
  auto dec = layers::TextDecoder::create(dims, tensors, type);
  if (!dec.ok()) return dec.status();
  std::unique_ptr<Decoder> d(new Decoder());
  d->decoder_ = std::move(dec).value();
  d->cross_ = std::make_unique<layers::CrossKV>();
  d->cache_ = std::make_unique<KVCache>();
  d->pool_ = std::move(pool);
  return d;
}

const ModelDims& Decoder::dims() const { return decoder_->dims(); }
void Decoder::set_offload(std::shared_ptr<offload::DecoderOffload> plan) {
  decoder_->set_offload(std::move(plan));
  has_audio_ = false;  // layer-step runners need this window's cross K/V: set_audio again
}
const offload::DecoderOffload* Decoder::offload() const { return decoder_->offload(); }
const layers::ExecutionStats& Decoder::offload_stats() const { return decoder_->stats(); }
void Decoder::reset_offload_stats() { decoder_->reset_stats(); }
size_t Decoder::weight_bytes() const { return decoder_->weight_bytes(); }
bool Decoder::fixed_window() const { return decoder_->fixed_window(); }

Status Decoder::set_audio(const EncoderStates& states) {
  has_audio_ = false;
  // Every backend's states come in here: NaN/Inf (a misread device output, a broken runtime)
  // would decode to silent garbage, so they are refused, naming the first one.
  if (states.data != nullptr && states.n_ctx > 0 && states.d > 0) {
    const int64_t n = states.n_ctx * states.d;
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(states.data[i])) {
        return runtime_error("the encoder states hold a non-finite value (" + str(states.data[i]) + ") at frame " +
                             str(i / states.d) + ", channel " + str(i % states.d) +
                             ": the encoder output is unusable (for device output files: check its dtype, scale "
                             "and layout)");
      }
    }
  }
  WG_RETURN_IF_ERROR(decoder_->compute_cross_kv(states, cross_.get(), pool_.get()));
  has_audio_ = true;
  return Status::Ok();
}

StatusOr<std::vector<float>> Decoder::language_probs(int sot, const std::vector<int>& language_tokens) {
  if (!has_audio_) return invalid_argument("no audio set: call set_audio first");
  const int V = dims().n_vocab;
  if (sot < 0 || sot >= V) return invalid_argument("sot token outside the vocabulary");
  if (language_tokens.empty()) return invalid_argument("this model has no language tokens");
  for (int t : language_tokens) {
    if (t < 0 || t >= V) return invalid_argument("language token outside the vocabulary");
  }
  WG_RETURN_IF_ERROR(cache_->reset(dims().n_text_layer, 1, dims().n_text_ctx, dims().n_text_state,
                                    decoder_->cache_storage(1)));
  std::vector<float> logits(static_cast<size_t>(V));
  WG_RETURN_IF_ERROR(decoder_->forward(&sot, 1, 1, cache_.get(), *cross_, {0}, logits.data(), pool_.get()));
  // softmax restricted to the language tokens (every other logit is -inf)
  double m = -std::numeric_limits<double>::infinity();
  for (int t : language_tokens) m = std::max(m, static_cast<double>(logits[static_cast<size_t>(t)]));
  double sum = 0.0;
  std::vector<float> probs;
  probs.reserve(language_tokens.size());
  for (int t : language_tokens) sum += std::exp(logits[static_cast<size_t>(t)] - m);
  for (int t : language_tokens) probs.push_back(static_cast<float>(std::exp(logits[static_cast<size_t>(t)] - m) / sum));
  return probs;
}

namespace {

// The logit filters for these options: faster-whisper's repetition guards first (as CTranslate2
// applies them), then openai-whisper's filters in its order, then the loop cut-off, which may
// leave only EOT.
std::vector<std::unique_ptr<decoding::LogitFilter>> logit_filters(const DecodingOptions& o, const ModelDims& dims) {
  const int sample_begin = static_cast<int>(o.initial_tokens.size());
  std::vector<std::unique_ptr<decoding::LogitFilter>> filters;
  if (o.repetition_penalty != 1.0) {
    filters.push_back(std::make_unique<decoding::RepetitionPenalty>(static_cast<float>(o.repetition_penalty), sample_begin));
  }
  if (o.no_repeat_ngram_size > 0) {
    filters.push_back(std::make_unique<decoding::NoRepeatNgram>(o.no_repeat_ngram_size, sample_begin));
  }
  if (o.suppress_blank) filters.push_back(std::make_unique<decoding::SuppressBlank>(o.blank_tokens, sample_begin));
  if (!o.suppress_tokens.empty()) filters.push_back(std::make_unique<decoding::SuppressTokens>(o.suppress_tokens));
  if (!o.without_timestamps) {
    filters.push_back(std::make_unique<decoding::ApplyTimestampRules>(
        sample_begin, o.eot, o.no_timestamps, o.timestamp_begin, o.max_initial_timestamp_index(dims)));
  }
  if (o.repetition_cutoff) {
    filters.push_back(std::make_unique<decoding::LoopCutoff>(*o.repetition_cutoff, sample_begin, o.eot));
  }
  return filters;
}

// The best finished candidate's sampled tokens (from sample_begin up to the first EOT).
DecodingResult best_candidate(const decoding::Candidates& cands, const DecodingOptions& o) {
  const size_t sample_begin = o.initial_tokens.size();
  std::vector<std::vector<int>> sampled;
  for (const auto& seq : cands.sequences) {
    auto begin = seq.begin() + std::min(seq.size(), sample_begin);
    sampled.emplace_back(begin, std::find(begin, seq.end(), o.eot));
  }
  const float alpha = o.length_penalty ? static_cast<float>(*o.length_penalty) : -1.0f;
  const size_t best = static_cast<size_t>(decoding::rank_candidates(sampled, cands.sum_logprobs, alpha));
  DecodingResult result;
  result.tokens = sampled[best];
  result.sum_logprob = cands.sum_logprobs[best];
  result.avg_logprob = result.sum_logprob / static_cast<float>(result.tokens.size() + 1);
  result.temperature = o.temperature;
  if (o.repetition_cutoff) {
    const int first_copy_end = loop_start(result.tokens, 0, o.eot, *o.repetition_cutoff);
    if (first_copy_end >= 0) {
      result.tokens.resize(static_cast<size_t>(first_copy_end));
      result.looped = true;
    }
  }
  return result;
}

}  // namespace

// openai-whisper's DecodingTask._main_loop. Everything a step needs is sized before the loop
// (sequences reserved for the longest decode, scratch by the first step): steps allocate nothing.
StatusOr<DecodingResult> Decoder::decode(const DecodingOptions& options) {
  if (!has_audio_) return invalid_argument("no audio set: call set_audio first");
  WG_RETURN_IF_ERROR(options.validate(dims()));
  const int V = dims().n_vocab;
  const int n_ctx = dims().n_text_ctx;
  const int n_group = options.group_size();
  const size_t max_length = static_cast<size_t>(n_ctx) + 2;  // the loop stops past n_ctx; finalize adds EOT

  const auto filters = logit_filters(options, dims());
  std::unique_ptr<decoding::TokenDecoder> token_decoder;
  if (options.beam_size) {
    token_decoder = std::make_unique<decoding::BeamSearchDecoder>(*options.beam_size, options.eot,
                                                                  options.patience.value_or(1.0), max_length);
  } else {
    token_decoder = std::make_unique<decoding::GreedyDecoder>(options.temperature, options.eot, options.seed);
  }
  Inference inference(*this, n_group);
  decoding::Sequences tokens(static_cast<size_t>(n_group));
  for (auto& seq : tokens) {
    seq.reserve(max_length);
    seq.assign(options.initial_tokens.begin(), options.initial_tokens.end());
  }
  std::vector<float> sum_logprobs(static_cast<size_t>(n_group), 0.0f);
  std::vector<float> logits(static_cast<size_t>(n_group) * V);
  std::vector<float> sot_logits(static_cast<size_t>(V));
  std::vector<int> source;
  source.reserve(static_cast<size_t>(n_group));
  float no_speech_prob = std::numeric_limits<float>::quiet_NaN();

  const int sample_len = options.sample_len_for(dims());
  for (int i = 0; i < sample_len; ++i) {
    WG_RETURN_IF_ERROR(inference.logits(tokens, options.sot_index, logits.data(), sot_logits.data()));
    if (i == 0 && options.no_speech >= 0) {
      no_speech_prob = std::exp(sot_logits[static_cast<size_t>(options.no_speech)] -
                                decoding::logsumexp(sot_logits.data(), V));
    }
    for (const auto& f : filters) f->apply(logits.data(), V, tokens);
    const bool completed = token_decoder->update(tokens, logits.data(), V, sum_logprobs, source);
    WG_RETURN_IF_ERROR(inference.rearrange_kv_cache(source));
    if (completed || static_cast<int>(tokens[0].size()) > n_ctx) break;
  }
  DecodingResult result = best_candidate(token_decoder->finalize(tokens, sum_logprobs), options);
  result.no_speech_prob = no_speech_prob;
  return result;
}

}  // namespace whisper_genio
