// Token decoders (how the next token is chosen) and the sequence ranker (which finished
// candidate wins): openai-whisper's GreedyDecoder, BeamSearchDecoder and
// MaximumLikelihoodRanker, with the same tie and ordering behaviour.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "logit_filters.h"

namespace whisper_genio::decoding {

struct Candidates {
  std::vector<std::vector<int>> sequences;  // full sequences, each ending with EOT
  std::vector<float> sum_logprobs;
};

class TokenDecoder {
 public:
  virtual ~TokenDecoder() = default;
  // Appends one token to each sequence (possibly replacing the set of sequences, for beam
  // search) given filtered logits [n, n_vocab]. `source` receives, for each new sequence,
  // the index of the sequence it extends (to reorder the KV cache). Returns true when done.
  // Allocation-free once the first call has sized the scratch, provided every sequence has
  // capacity for the whole decode (Decoder::decode reserves it).
  virtual bool update(Sequences& tokens, const float* logits, int n_vocab, std::vector<float>& sum_logprobs,
                      std::vector<int>& source) = 0;
  virtual Candidates finalize(const Sequences& tokens, const std::vector<float>& sum_logprobs) = 0;
};

// Argmax at temperature 0, else a sample from softmax(logits / temperature).
class GreedyDecoder final : public TokenDecoder {
 public:
  GreedyDecoder(float temperature, int eot, uint64_t seed) : temperature_(temperature), eot_(eot), rng_(seed) {}
  bool update(Sequences& tokens, const float* logits, int n_vocab, std::vector<float>& sum_logprobs,
              std::vector<int>& source) override;
  Candidates finalize(const Sequences& tokens, const std::vector<float>& sum_logprobs) override;

 private:
  int sample(const float* logits, int n_vocab);
  float temperature_;
  int eot_;
  std::mt19937_64 rng_;
  std::vector<double> probs_;  // sampling scratch [n_vocab]
};

class BeamSearchDecoder final : public TokenDecoder {
 public:
  // max_length: the longest sequence a decode can produce (initial tokens, sampled tokens and
  // EOT): every sequence buffer is reserved for it here, so no step allocates (0: reserve nothing).
  BeamSearchDecoder(int beam_size, int eot, double patience, size_t max_length = 0);
  bool update(Sequences& tokens, const float* logits, int n_vocab, std::vector<float>& sum_logprobs,
              std::vector<int>& source) override;
  Candidates finalize(const Sequences& tokens, const std::vector<float>& sum_logprobs) override;
  // round(beam_size * patience), the finished candidates to wait for, within [0, kMaxBeamCandidates].
  static int max_candidates(int beam_size, double patience);

 private:
  struct Candidate {
    int parent;
    int token;
    float score;
  };
  void collect_candidates(const Sequences& tokens, const float* logits, int n_vocab,
                          const std::vector<float>& sum_logprobs);
  void keep_finished(const Sequences& tokens);
  int find_finished(const std::vector<int>& parent, int token) const;

  int beam_size_;
  int eot_;
  int max_candidates_;
  // Finished sequences in the order they finished (openai keeps an insertion-ordered dict):
  // the first n_finished_ of finished_, whose buffers are reserved up front.
  std::vector<std::vector<int>> finished_;
  std::vector<float> finished_scores_;
  int n_finished_ = 0;
  // Per-step scratch, sized by the first step.
  std::vector<float> logprobs_;
  std::vector<int> order_;
  std::vector<Candidate> cands_;
  std::vector<int> newly_finished_;  // indices into cands_, best first
  Sequences next_;
  std::vector<float> next_scores_;
};

// Index of the best candidate: highest sum_logprob / penalty, where penalty is the length
// (length_penalty < 0) or ((5 + length) / 6) ^ length_penalty. Lengths exclude EOT.
int rank_candidates(const std::vector<std::vector<int>>& sampled, const std::vector<float>& sum_logprobs,
                    float length_penalty);

}  // namespace whisper_genio::decoding
