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
#include <optional>
#include <string>
#include <vector>

#include "whisper_genio/encoder_backend.h"
#include "whisper_genio/model.h"
#include "whisper_genio/status.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio {

// Options of one decode call. The first group is openai-whisper's DecodingOptions, with its
// names, meanings and defaults (nullopt is Python's None); check() is their one validator:
// Python's DecodingOptions calls it on construction and takes its defaults from here
// (whisper_genio/transcription/options.py). The second group is what Python's tokenizer
// builds from the text options (prompt, prefix, language, task, suppress_tokens).
struct DecodingOptions {
  float temperature = 0.0f;
  std::optional<int> sample_len;            // maximum sampled tokens; None: n_text_ctx / 2
  std::optional<int> best_of;               // independent samples when temperature > 0
  std::optional<int> beam_size;             // beam search when temperature == 0
  std::optional<double> patience;           // beam search: finished candidates = round(beam_size * patience)
  std::optional<double> length_penalty;     // None: rank by logprob / length; else Google NMT's alpha
  bool suppress_blank = true;
  bool without_timestamps = false;
  std::optional<double> max_initial_timestamp = 1.0;  // seconds
  uint64_t seed = 0;                        // sampling RNG seed
  // Guards against the loops Whisper falls into on silence, noise and music. The first two are
  // faster-whisper's (CTranslate2's), over the tokens sampled in this window:
  double repetition_penalty = 1.0;          // logit of each token sampled so far: / p where > 0, * p where < 0
  int no_repeat_ngram_size = 0;             // > 0: no n-gram of this many tokens is sampled twice
  // The loop cut-off: a sequence whose text (timestamps aside) ends with one block of at most
  // kMaxLoopBlock tokens repeated this many times in a row ends there, and the result keeps the
  // first copy (DecodingResult::looped). None: never.
  std::optional<int> repetition_cutoff;

  // [<|startofprev|> prompt...] <|startoftranscript|> [lang] [task] [<|notimestamps|>] [prefix...]
  std::vector<int> initial_tokens;
  int sot_index = 0;                  // position of <|startoftranscript|> (no-speech probability is read there)
  std::vector<int> suppress_tokens;   // always -inf
  std::vector<int> blank_tokens;      // -inf at the first sampled position when suppress_blank
  // Vocabulary layout.
  int eot = -1;
  int no_speech = -1;       // < 0: the model has no <|nospeech|> token
  int no_timestamps = -1;
  int timestamp_begin = -1;

  // The options of the first group, alone: what openai-whisper rejects, plus the bounds that
  // keep the loop's memory and arithmetic finite. Messages name the option.
  Status check() const;
  // check(), and the token fields against the model.
  Status validate(const ModelDims& dims) const;
  std::string to_string() const;

  // Sequences decoded side by side: beam_size beams, or best_of samples.
  int group_size() const { return beam_size ? *beam_size : best_of.value_or(1); }
  int sample_len_for(const ModelDims& dims) const { return sample_len.value_or(dims.n_text_ctx / 2); }
  // Index of the latest timestamp token allowed first (< 0: no limit).
  int max_initial_timestamp_index(const ModelDims& dims) const;
};

// Beams or samples decoded side by side at most: each costs a KV cache
// (2 * n_text_layer * n_text_ctx * n_text_state floats: 147 MB for large-v3), and Whisper's
// decoding gains nothing from more than a few.
inline constexpr int kMaxDecodingGroup = 64;
// The most finished candidates beam search waits for (beam_size * patience): far past any useful
// patience, and small enough that the candidate lists stay a few MB.
inline constexpr int kMaxBeamCandidates = 1000;
// The longest block (in text tokens) repetition_cutoff looks for.
inline constexpr int kMaxLoopBlock = 32;

// Where the text tokens of tokens[begin:] (ids below text_end, the EOT id: timestamps and other
// special tokens aside) end with one block of at most kMaxLoopBlock text tokens repeated
// `repeats` times in a row: the position in `tokens` just past the block's first copy; -1 when
// they don't.
int loop_start(const std::vector<int>& tokens, size_t begin, int text_end, int repeats);

struct DecodingResult {
  std::vector<int> tokens;  // sampled tokens, without the initial tokens and the final <|endoftext|>
  float sum_logprob = 0.0f;
  float avg_logprob = 0.0f;  // sum_logprob / (len(tokens) + 1), as openai-whisper
  float no_speech_prob = 0.0f;
  float temperature = 0.0f;
  // repetition_cutoff stopped this sequence: `tokens` keep the repeated block's first copy
  // (sum_logprob and avg_logprob are those of every token decoded, the repeats included).
  bool looped = false;
};

// What word timestamps read off the decoder for one window (openai-whisper's find_alignment):
// a token sequence run once as a forced prompt.
struct Alignment {
  int n_heads = 0, n_tokens = 0, n_frames = 0;
  std::vector<float> qk;           // [heads, tokens, frames]: pre-softmax cross-attention scores q K^T / sqrt(dh)
  std::vector<float> token_probs;  // [tokens - 1]: P(tokens[i + 1] | tokens[0..i]) among the ids < text_vocab
                                   // (NaN where tokens[i + 1] is not one of them)
};

// Dynamic time warping through cost [n, m] (lower is better): the monotonic path of least total
// cost from (0, 0) to (n - 1, m - 1), as row and column indices in order (openai-whisper's
// dtw_cpu, ties broken the same way).
void dtw(const float* cost, int n, int m, std::vector<int>* rows, std::vector<int>* columns);

namespace layers {
class TextDecoder;
struct CrossKV;
struct ExecutionStats;
}  // namespace layers
class KVCache;
namespace offload {
class DecoderOffload;
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
  // Whether set_audio needs a whole window's n_audio_ctx positions (NPU layer steps planned);
  // else a window trimmed to its audio (fewer positions) decodes too.
  bool fixed_window() const;

  // Computes the cross-attention keys/values of a window; every later decode reads them.
  Status set_audio(const EncoderStates& states);
  bool has_audio() const { return has_audio_; }

  StatusOr<DecodingResult> decode(const DecodingOptions& options);

  // Probabilities of each of `language_tokens` after <|startoftranscript|> (openai-whisper's
  // detect_language), in the given order.
  StatusOr<std::vector<float>> language_probs(int sot, const std::vector<int>& language_tokens);

  // `tokens` run through the decoder on the window set, recording the cross-attention scores of
  // the (layer, head) pairs for the first n_frames audio positions (see Alignment).
  StatusOr<Alignment> alignment(const std::vector<int>& tokens, const std::vector<std::pair<int, int>>& heads,
                                int n_frames, int text_vocab);

  // Single-token steps for the NPU self-check (whisper_genio/backends/npu_check.py): `prompt`
  // as one prompt step (on the CPU, as always), then tokens.size() steps of `beams` identical
  // rows (so the plan's batch-`beams` subgraphs run them) feeding tokens[i], or where it is -1
  // the argmax of the previous logits (row 0). Writes the tokens fed back into `tokens` and the
  // logits after each step, [steps, beams, n_vocab], into `logits`.
  Status step_logits(const std::vector<int>& prompt, int beams, std::vector<int>* tokens, std::vector<float>* logits);

  // Cumulative decoder work, for benchmarks: forward calls and tokens run through the decoder.
  int64_t forward_calls() const { return forward_calls_; }
  int64_t forward_tokens() const { return forward_tokens_; }

  // Decoder ops on subgraph runners (csrc/src/offload/decoder_offload.h); null = all on the CPU.
  // Takes effect at the next decode / language_probs call (the KV cache is reset there).
  void set_offload(std::shared_ptr<offload::DecoderOffload> plan);
  const offload::DecoderOffload* offload() const;
  const layers::ExecutionStats& offload_stats() const;
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
