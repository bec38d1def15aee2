#include "token_decoders.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "whisper_genio/decoding.h"

namespace whisper_genio::decoding {

bool GreedyDecoder::update(Sequences& tokens, const float* logits, int n_vocab, std::vector<float>& sum_logprobs,
                           std::vector<int>& source) {
  source.resize(tokens.size());
  bool completed = true;
  for (size_t k = 0; k < tokens.size(); ++k) {
    const float* row = logits + k * static_cast<size_t>(n_vocab);
    int next;
    if (temperature_ == 0.0f) {
      next = static_cast<int>(std::max_element(row, row + n_vocab) - row);  // first maximum, as torch.argmax
    } else {
      next = sample(row, n_vocab);
    }
    const bool finished = tokens[k].back() == eot_;
    if (!finished) sum_logprobs[k] += row[next] - logsumexp(row, n_vocab);
    if (finished) next = eot_;
    tokens[k].push_back(next);
    source[k] = static_cast<int>(k);
    completed = completed && next == eot_;
  }
  return completed;
}

int GreedyDecoder::sample(const float* logits, int n_vocab) {
  // Categorical(logits / T): softmax in double, then inverse-CDF with one uniform draw.
  double m = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < n_vocab; ++i) m = std::max(m, static_cast<double>(logits[i]) / temperature_);
  probs_.resize(static_cast<size_t>(n_vocab));
  double* p = probs_.data();
  double sum = 0.0;
  for (int i = 0; i < n_vocab; ++i) {
    p[i] = std::exp(static_cast<double>(logits[i]) / temperature_ - m);
    sum += p[i];
  }
  std::uniform_real_distribution<double> uniform(0.0, sum);
  const double u = uniform(rng_);
  double acc = 0.0;
  int last_possible = 0;
  for (int i = 0; i < n_vocab; ++i) {
    if (p[i] <= 0.0) continue;
    last_possible = i;
    acc += p[i];
    if (u < acc) return i;
  }
  return last_possible;  // rounding left u just above the total
}

Candidates GreedyDecoder::finalize(const Sequences& tokens, const std::vector<float>& sum_logprobs) {
  Candidates c;
  for (const auto& seq : tokens) {
    c.sequences.push_back(seq);
    c.sequences.back().push_back(eot_);  // every sequence ends with at least one EOT
  }
  c.sum_logprobs = sum_logprobs;
  return c;
}

int BeamSearchDecoder::max_candidates(int beam_size, double patience) {
  // Python's round(): halves go to the even neighbour (nearbyint in the default rounding mode).
  // DecodingOptions::check() refuses what is out of range; the clamp keeps the cast defined
  // (inf or NaN patience) for any caller that skipped it.
  const double c = std::nearbyint(beam_size * patience);
  if (!(c >= 0.0)) return 0;
  return c > kMaxBeamCandidates ? kMaxBeamCandidates : static_cast<int>(c);
}

BeamSearchDecoder::BeamSearchDecoder(int beam_size, int eot, double patience, size_t max_length)
    : beam_size_(beam_size),
      eot_(eot),
      max_candidates_(max_candidates(beam_size, patience)) {
  // finalize() may add up to beam_size live beams on top of the finished candidates.
  finished_.resize(static_cast<size_t>(std::max(max_candidates_, 0) + beam_size));
  for (auto& f : finished_) f.reserve(max_length);
  finished_scores_.resize(finished_.size());
  next_.resize(static_cast<size_t>(beam_size));
  for (auto& n : next_) n.reserve(max_length);
  next_scores_.reserve(static_cast<size_t>(beam_size));
}

// STEP 1: the beam_size + 1 best continuations of every beam. Identical sequences (beams are
// identical at the first step) collapse into one entry that keeps its first position and takes
// the later score and parent, like assigning into a Python dict.
void BeamSearchDecoder::collect_candidates(const Sequences& tokens, const float* logits, int n_vocab,
                                           const std::vector<float>& sum_logprobs) {
  logprobs_.resize(static_cast<size_t>(n_vocab));
  order_.resize(static_cast<size_t>(n_vocab));
  cands_.clear();
  for (int j = 0; j < static_cast<int>(tokens.size()); ++j) {
    const float* row = logits + static_cast<size_t>(j) * n_vocab;
    const float lse = logsumexp(row, n_vocab);
    for (int i = 0; i < n_vocab; ++i) logprobs_[static_cast<size_t>(i)] = row[i] - lse;
    std::iota(order_.begin(), order_.end(), 0);
    const int k = std::min(beam_size_ + 1, n_vocab);
    std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), [&](int a, int b) {
      return logprobs_[a] > logprobs_[b] || (logprobs_[a] == logprobs_[b] && a < b);
    });
    for (int t = 0; t < k; ++t) {
      const int token = order_[static_cast<size_t>(t)];
      const float score = sum_logprobs[static_cast<size_t>(j)] + logprobs_[static_cast<size_t>(token)];
      bool merged = false;
      for (Candidate& c : cands_) {
        if (c.token == token && tokens[static_cast<size_t>(c.parent)] == tokens[static_cast<size_t>(j)]) {
          c.score = score;
          c.parent = j;
          merged = true;
          break;
        }
      }
      if (!merged) cands_.push_back({j, token, score});
    }
  }
}

int BeamSearchDecoder::find_finished(const std::vector<int>& parent, int token) const {
  for (int i = 0; i < n_finished_; ++i) {
    const std::vector<int>& f = finished_[static_cast<size_t>(i)];
    if (f.size() == parent.size() + 1 && f.back() == token && std::equal(parent.begin(), parent.end(), f.begin())) {
      return i;
    }
  }
  return -1;
}

// The newly finished candidates (already in descending score order) join the finished ones.
void BeamSearchDecoder::keep_finished(const Sequences& tokens) {
  for (int ci : newly_finished_) {
    if (n_finished_ >= max_candidates_) break;
    const Candidate& c = cands_[static_cast<size_t>(ci)];
    const std::vector<int>& parent = tokens[static_cast<size_t>(c.parent)];
    const int found = find_finished(parent, c.token);
    if (found >= 0) {
      finished_scores_[static_cast<size_t>(found)] = c.score;
      continue;
    }
    std::vector<int>& slot = finished_[static_cast<size_t>(n_finished_)];
    slot.assign(parent.begin(), parent.end());
    slot.push_back(c.token);
    finished_scores_[static_cast<size_t>(n_finished_++)] = c.score;
  }
}

bool BeamSearchDecoder::update(Sequences& tokens, const float* logits, int n_vocab, std::vector<float>& sum_logprobs,
                               std::vector<int>& source) {
  collect_candidates(tokens, logits, n_vocab, sum_logprobs);
  // STEP 2: keep the best beam_size unfinished sequences; collect the finished ones.
  // Stable by score, best first: an insertion sort, because std::stable_sort takes a temporary
  // buffer from the heap at every call and there are at most beam_size * (beam_size + 1) candidates.
  for (size_t i = 1; i < cands_.size(); ++i) {
    const Candidate c = cands_[i];
    size_t j = i;
    for (; j > 0 && cands_[j - 1].score < c.score; --j) cands_[j] = cands_[j - 1];
    cands_[j] = c;
  }
  source.clear();
  next_scores_.clear();
  newly_finished_.clear();
  for (int ci = 0; ci < static_cast<int>(cands_.size()); ++ci) {
    const Candidate& c = cands_[static_cast<size_t>(ci)];
    if (c.token == eot_) {
      newly_finished_.push_back(ci);
      continue;
    }
    std::vector<int>& seq = next_[source.size()];
    const std::vector<int>& parent = tokens[static_cast<size_t>(c.parent)];
    seq.assign(parent.begin(), parent.end());
    seq.push_back(c.token);
    next_scores_.push_back(c.score);
    source.push_back(c.parent);
    if (static_cast<int>(source.size()) == beam_size_) break;
  }
  keep_finished(tokens);  // before the swap: candidates point into the current sequences
  tokens.swap(next_);
  tokens.resize(source.size());  // every beam continues in practice (beam_size + 1 > finished per row)
  next_.resize(static_cast<size_t>(beam_size_));
  for (size_t i = 0; i < next_scores_.size(); ++i) sum_logprobs[i] = next_scores_[i];
  return n_finished_ >= max_candidates_;
}

Candidates BeamSearchDecoder::finalize(const Sequences& tokens, const std::vector<float>& sum_logprobs) {
  if (n_finished_ < beam_size_) {
    // Not enough finished: add the live beams, best first. Same order as openai-whisper's
    // np.argsort(scores)[::-1]: ascending (stable for these few beams), then reversed, so
    // equal scores come highest index first.
    std::vector<int> idx(tokens.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return sum_logprobs[a] < sum_logprobs[b]; });
    std::reverse(idx.begin(), idx.end());
    for (int j : idx) {
      const std::vector<int>& seq = tokens[static_cast<size_t>(j)];
      const int found = find_finished(seq, eot_);
      if (found >= 0) {
        finished_scores_[static_cast<size_t>(found)] = sum_logprobs[static_cast<size_t>(j)];
      } else {
        std::vector<int>& slot = finished_[static_cast<size_t>(n_finished_)];
        slot.assign(seq.begin(), seq.end());
        slot.push_back(eot_);
        finished_scores_[static_cast<size_t>(n_finished_++)] = sum_logprobs[static_cast<size_t>(j)];
      }
      if (n_finished_ >= beam_size_) break;
    }
  }
  Candidates out;
  out.sequences.assign(finished_.begin(), finished_.begin() + n_finished_);
  out.sum_logprobs.assign(finished_scores_.begin(), finished_scores_.begin() + n_finished_);
  return out;
}

int rank_candidates(const std::vector<std::vector<int>>& sampled, const std::vector<float>& sum_logprobs,
                    float length_penalty) {
  int best = 0;
  double best_score = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < sampled.size(); ++i) {
    const double length = static_cast<double>(sampled[i].size());
    const double penalty = length_penalty < 0.0f ? length : std::pow((5.0 + length) / 6.0, length_penalty);
    // float division like numpy on float32 sums; a zero length gives +-inf or nan as in Python.
    const double score = static_cast<double>(sum_logprobs[i]) / penalty;
    if (i == 0 || score > best_score) {
      best = static_cast<int>(i);
      best_score = score;
    }
  }
  return best;
}

}  // namespace whisper_genio::decoding
