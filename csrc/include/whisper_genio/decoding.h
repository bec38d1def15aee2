// Decoding one 30-second window: the one decode loop of whisper_genio.
//
// It mirrors openai-whisper's DecodingTask and its roles (decoding.py): an inference step
// with a KV cache, a token decoder (greedy / sampling / beam search), logit filters
// (suppress blank, suppress tokens, timestamp rules) and a maximum-likelihood ranker.
// Text handling (tokenizing prompts, building the initial tokens, compression ratio) and
// the long-form policy (seek, temperature fallback) stay in Python; this side works on
// token ids only and never hard-codes them: the caller passes the vocabulary layout.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "whisper_genio/encoder_backend.h"
#include "whisper_genio/model.h"
#include "whisper_genio/status.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio {

// Options of one decode call, already tokenised. Field-for-field the meaning of
// openai-whisper's DecodingOptions; defaults live in Python (whisper_genio/options.py),
// which fills every field. validate() rejects what openai-whisper rejects.
struct DecodingOptions {
  // [<|startofprev|> prompt...] <|startoftranscript|> [lang] [task] [<|notimestamps|>] [prefix...]
  std::vector<int> initial_tokens;
  int sot_index = 0;           // position of <|startoftranscript|> (no-speech probability is read there)
  int sample_len = 224;        // maximum number of sampled tokens
  float temperature = 0.0f;
  int beam_size = 0;           // > 0: beam search (temperature must be 0)
  int best_of = 1;             // independent samples when temperature > 0
  double patience = 1.0;       // beam search: finished candidates wanted = round(beam_size * patience)
  float length_penalty = -1.0f;  // < 0: rank by logprob / length; else Google NMT penalty with this alpha
  std::vector<int> suppress_tokens;  // always -inf
  bool suppress_blank = true;
  std::vector<int> blank_tokens;     // -inf at the first sampled position when suppress_blank
  bool timestamps = true;            // apply the timestamp rules (openai's not without_timestamps)
  int max_initial_timestamp_index = -1;  // < 0: no limit
  uint64_t seed = 0;                 // sampling RNG seed

  // Vocabulary layout.
  int eot = -1;
  int no_speech = -1;       // < 0: the model has no <|nospeech|> token
  int no_timestamps = -1;
  int timestamp_begin = -1;

  Status validate(const ModelDims& dims) const;
  std::string to_string() const;
};

struct DecodingResult {
  std::vector<int> tokens;  // sampled tokens, without the initial tokens and the final <|endoftext|>
  float sum_logprob = 0.0f;
  float avg_logprob = 0.0f;  // sum_logprob / (len(tokens) + 1), as openai-whisper
  float no_speech_prob = 0.0f;
  float temperature = 0.0f;
};

namespace layers {
class TextDecoder;
struct CrossKV;
}  // namespace layers
class KVCache;
namespace offload {
class DecoderOffload;
struct OffloadStats;
}  // namespace offload

// The text decoder of one model plus the state of the window being decoded (cross-attention
// keys/values, KV cache). Not thread-safe: one window at a time per instance.
class Decoder {
 public:
  static StatusOr<std::unique_ptr<Decoder>> create(const ModelDims& dims, const TensorMap& tensors,
                                                   std::shared_ptr<ThreadPool> pool,
                                                   ComputeType type = ComputeType::kFloat32);
  ~Decoder();

  const ModelDims& dims() const;
  size_t weight_bytes() const;

  // Computes the cross-attention keys/values of a window; every later decode reads them.
  Status set_audio(const EncoderStates& states);
  bool has_audio() const { return has_audio_; }

  StatusOr<DecodingResult> decode(const DecodingOptions& options);

  // Probabilities of each of `language_tokens` after <|startoftranscript|> (openai-whisper's
  // detect_language), in the given order.
  StatusOr<std::vector<float>> language_probs(int sot, const std::vector<int>& language_tokens);

  // Cumulative decoder work, for benchmarks: forward calls and tokens run through the decoder.
  int64_t forward_calls() const { return forward_calls_; }
  int64_t forward_tokens() const { return forward_tokens_; }

  // Decoder ops on subgraph runners (csrc/src/offload/decoder_offload.h); null = all on the CPU.
  // Takes effect at the next decode / language_probs call (the KV cache is reset there).
  void set_offload(std::shared_ptr<offload::DecoderOffload> plan);
  const offload::DecoderOffload* offload() const;
  const offload::OffloadStats& offload_stats() const;
  void reset_offload_stats();

 private:
  Decoder();
  std::unique_ptr<layers::TextDecoder> decoder_;
  std::unique_ptr<layers::CrossKV> cross_;
  std::unique_ptr<KVCache> cache_;
  std::shared_ptr<ThreadPool> pool_;
  bool has_audio_ = false;
  int64_t forward_calls_ = 0;
  int64_t forward_tokens_ = 0;
  friend class Inference;
};

}  // namespace whisper_genio
