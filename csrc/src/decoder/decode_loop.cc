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
  if (patience && *beam_size * *patience > 1000.0) {
    return invalid_argument("beam_size * patience (finished candidates to wait for) must be at most 1000, got " +
                            str(*beam_size * *patience));
  }
  if (length_penalty && !(*length_penalty >= 0.0 && *length_penalty <= 1.0)) {
    return invalid_argument("length_penalty (alpha) should be a value between 0 and 1, got " + str(*length_penalty));
  }
  if (max_initial_timestamp && !(std::isfinite(*max_initial_timestamp) && *max_initial_timestamp >= 0.0)) {
    return invalid_argument("max_initial_timestamp must be a finite number >= 0, got " + str(*max_initial_timestamp));
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
    << ", seed=" << seed << ", initial_tokens=" << initial_tokens.size() << " tokens, sot_index=" << sot_index
    << ", suppress_tokens=" << suppress_tokens.size() << ")";
  return s.str();
}

// Decoder forward passes with a KV cache (openai-whisper's PyTorchInference): the first call
// runs every initial token, once, and copies the cache to every sequence of the group; later
// calls run only the newest token of each sequence.
class Inference {
 public:
  Inference(Decoder& owner, int n_group) : owner_(owner), n_group_(n_group) {}

  // logits [n_group, V] for the last position; on the first call also the logits at
  // `sot_index` (same for every sequence) into sot_logits [V].
  Status logits(const decoding::Sequences& tokens, int sot_index, float* out, float* sot_logits) {
    layers::TextDecoder& dec = *owner_.decoder_;
    KVCache& cache = *owner_.cache_;
    const int V = dec.dims().n_vocab;
    ThreadPool* pool = owner_.pool_.get();
    if (first_) {
      first_ = false;
      const int L = static_cast<int>(tokens[0].size());
      WG_RETURN_IF_ERROR(cache.reset(dec.dims().n_text_layer, n_group_, dec.dims().n_text_ctx, dec.dims().n_text_state,
                                     dec.cache_storage(n_group_)));
      WG_RETURN_IF_ERROR(cache.broadcast_first(1));
      std::vector<float> two(2 * static_cast<size_t>(V));
      WG_RETURN_IF_ERROR(dec.forward(tokens[0].data(), 1, L, &cache, *owner_.cross_, {sot_index, L - 1}, two.data(), pool));
      WG_RETURN_IF_ERROR(cache.broadcast_first(n_group_));
      std::copy(two.begin(), two.begin() + V, sot_logits);
      for (int g = 0; g < n_group_; ++g) std::copy(two.begin() + V, two.end(), out + static_cast<size_t>(g) * V);
      owner_.forward_calls_ += 1;
      owner_.forward_tokens_ += L;
      return Status::Ok();
    }
    const int B = static_cast<int>(tokens.size());
    std::vector<int> last(static_cast<size_t>(B));
    std::vector<int> rows(static_cast<size_t>(B));
    for (int b = 0; b < B; ++b) {
      last[static_cast<size_t>(b)] = tokens[static_cast<size_t>(b)].back();
      rows[static_cast<size_t>(b)] = b;
    }
    owner_.forward_calls_ += 1;
    owner_.forward_tokens_ += B;
    return dec.forward(last.data(), B, 1, &cache, *owner_.cross_, rows, out, pool);
  }

  Status rearrange_kv_cache(const std::vector<int>& source) {
    bool identity = true;
    for (size_t i = 0; i < source.size(); ++i) identity = identity && source[i] == static_cast<int>(i);
    if (identity) return Status::Ok();
    return owner_.cache_->reorder(source);
  }

 private:
  Decoder& owner_;
  int n_group_;
  bool first_ = true;
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
const offload::OffloadStats& Decoder::offload_stats() const { return decoder_->stats(); }
void Decoder::reset_offload_stats() { decoder_->reset_stats(); }
size_t Decoder::weight_bytes() const { return decoder_->weight_bytes(); }

Status Decoder::set_audio(const EncoderStates& states) {
  has_audio_ = false;
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

StatusOr<DecodingResult> Decoder::decode(const DecodingOptions& options) {
  if (!has_audio_) return invalid_argument("no audio set: call set_audio first");
  WG_RETURN_IF_ERROR(options.validate(dims()));
  const int V = dims().n_vocab;
  const int n_ctx = dims().n_text_ctx;
  const int sample_begin = static_cast<int>(options.initial_tokens.size());
  const int n_group = options.group_size();

  std::vector<std::unique_ptr<decoding::LogitFilter>> filters;
  if (options.suppress_blank) {
    filters.push_back(std::make_unique<decoding::SuppressBlank>(options.blank_tokens, sample_begin));
  }
  if (!options.suppress_tokens.empty()) {
    filters.push_back(std::make_unique<decoding::SuppressTokens>(options.suppress_tokens));
  }
  if (!options.without_timestamps) {
    filters.push_back(std::make_unique<decoding::ApplyTimestampRules>(
        sample_begin, options.eot, options.no_timestamps, options.timestamp_begin, options.max_initial_timestamp_index(dims())));
  }
  std::unique_ptr<decoding::TokenDecoder> token_decoder;
  if (options.beam_size) {
    token_decoder = std::make_unique<decoding::BeamSearchDecoder>(*options.beam_size, options.eot,
                                                                  options.patience.value_or(1.0));
  } else {
    token_decoder = std::make_unique<decoding::GreedyDecoder>(options.temperature, options.eot, options.seed);
  }

  Inference inference(*this, n_group);
  decoding::Sequences tokens(static_cast<size_t>(n_group), options.initial_tokens);
  std::vector<float> sum_logprobs(static_cast<size_t>(n_group), 0.0f);
  std::vector<float> logits(static_cast<size_t>(n_group) * V);
  std::vector<float> sot_logits(static_cast<size_t>(V));
  std::vector<int> source;
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

  decoding::Candidates cands = token_decoder->finalize(tokens, sum_logprobs);
  // Sampled part of each candidate: from sample_begin up to the first EOT.
  std::vector<std::vector<int>> sampled;
  for (const auto& seq : cands.sequences) {
    auto begin = seq.begin() + std::min<size_t>(seq.size(), static_cast<size_t>(sample_begin));
    sampled.emplace_back(begin, std::find(begin, seq.end(), options.eot));
  }
  const float alpha = options.length_penalty ? static_cast<float>(*options.length_penalty) : -1.0f;
  const int best = decoding::rank_candidates(sampled, cands.sum_logprobs, alpha);
  DecodingResult result;
  result.tokens = sampled[static_cast<size_t>(best)];
  result.sum_logprob = cands.sum_logprobs[static_cast<size_t>(best)];
  result.avg_logprob = result.sum_logprob / static_cast<float>(result.tokens.size() + 1);
  result.no_speech_prob = no_speech_prob;
  result.temperature = options.temperature;
  return result;
}

}  // namespace whisper_genio
