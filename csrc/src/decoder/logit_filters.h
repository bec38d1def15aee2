// Logit filters: rules that mask logits before a token is chosen (openai-whisper's
// LogitFilter subclasses). Each applies in place to logits [n_batch, n_vocab] given the
// token sequences so far (initial tokens included).
#pragma once

#include <memory>
#include <vector>

namespace whisper_genio::decoding {

using Sequences = std::vector<std::vector<int>>;

class LogitFilter {
 public:
  virtual ~LogitFilter() = default;
  virtual void apply(float* logits, int n_vocab, const Sequences& tokens) const = 0;
};

// At the first sampled position, forbids a blank start (" " and <|endoftext|>).
class SuppressBlank final : public LogitFilter {
 public:
  SuppressBlank(std::vector<int> blank_tokens, int sample_begin)
      : blank_(std::move(blank_tokens)), sample_begin_(sample_begin) {}
  void apply(float* logits, int n_vocab, const Sequences& tokens) const override;

 private:
  std::vector<int> blank_;
  int sample_begin_;
};

// Forbids a fixed set of tokens everywhere.
class SuppressTokens final : public LogitFilter {
 public:
  explicit SuppressTokens(std::vector<int> tokens) : tokens_(std::move(tokens)) {}
  void apply(float* logits, int n_vocab, const Sequences& tokens) const override;

 private:
  std::vector<int> tokens_;
};

// Whisper's timestamp grammar: timestamps come in pairs (except right before EOT), never
// decrease, each segment has non-zero length, the first token is a timestamp no later than
// max_initial_timestamp, and a timestamp is forced when timestamps together are more
// probable than any single text token.
class ApplyTimestampRules final : public LogitFilter {
 public:
  ApplyTimestampRules(int sample_begin, int eot, int no_timestamps, int timestamp_begin,
                      int max_initial_timestamp_index)
      : sample_begin_(sample_begin),
        eot_(eot),
        no_timestamps_(no_timestamps),
        timestamp_begin_(timestamp_begin),
        max_initial_timestamp_index_(max_initial_timestamp_index) {}
  void apply(float* logits, int n_vocab, const Sequences& tokens) const override;

 private:
  int sample_begin_, eot_, no_timestamps_, timestamp_begin_, max_initial_timestamp_index_;
};

// faster-whisper's repetition_penalty (CTRL's): the logit of each token sampled so far is divided
// by the penalty where positive and multiplied where negative, once per distinct token.
class RepetitionPenalty final : public LogitFilter {
 public:
  RepetitionPenalty(float penalty, int sample_begin) : penalty_(penalty), sample_begin_(sample_begin) {}
  void apply(float* logits, int n_vocab, const Sequences& tokens) const override;

 private:
  float penalty_;
  int sample_begin_;
};

// faster-whisper's no_repeat_ngram_size: a token that would complete an n-gram already among the
// sampled tokens is forbidden (n = 1: every token sampled so far).
class NoRepeatNgram final : public LogitFilter {
 public:
  NoRepeatNgram(int n, int sample_begin) : n_(n), sample_begin_(sample_begin) {}
  void apply(float* logits, int n_vocab, const Sequences& tokens) const override;

 private:
  int n_, sample_begin_;
};

// repetition_cutoff: a sequence whose text ends in a loop (loop_start in decoding.h) may only end.
class LoopCutoff final : public LogitFilter {
 public:
  LoopCutoff(int repeats, int sample_begin, int eot) : repeats_(repeats), sample_begin_(sample_begin), eot_(eot) {}
  void apply(float* logits, int n_vocab, const Sequences& tokens) const override;

 private:
  int repeats_, sample_begin_, eot_;
};

// log(sum(exp(x))) of n values (-inf entries contribute nothing; all -inf gives -inf), with
// the vectorised exp kernel. A token's log-probability is then logits[t] - logsumexp: one
// exp pass per row instead of a full log_softmax.
float logsumexp(const float* x, int n);

// log_softmax of one row (logits - logsumexp), for callers that need every value.
void log_softmax(const float* logits, int n, float* out);

}  // namespace whisper_genio::decoding
