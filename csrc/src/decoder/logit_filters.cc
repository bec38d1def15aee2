#include "logit_filters.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../kernels/cpu/kernel_table.h"
#include "whisper_genio/decoding.h"

namespace whisper_genio::decoding {
namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void fill(float* row, int begin, int end, int n_vocab) {
  begin = std::max(begin, 0);
  end = std::min(end, n_vocab);
  for (int i = begin; i < end; ++i) row[i] = kNegInf;
}
}  // namespace

float logsumexp(const float* x, int n) {
  if (n <= 0) return kNegInf;
  const cpu::KernelTable& kt = cpu::kernels();
  const float m = kt.max(x, n);
  if (m == kNegInf) return kNegInf;
  thread_local std::vector<float> scratch;
  if (scratch.size() < static_cast<size_t>(n)) scratch.resize(static_cast<size_t>(n));
  std::copy(x, x + n, scratch.begin());
  const float sum = kt.exp_shift_sum(scratch.data(), n, m);
  return m + std::log(sum);
}

void log_softmax(const float* logits, int n, float* out) {
  const float lse = logsumexp(logits, n);
  for (int i = 0; i < n; ++i) out[i] = lse == kNegInf ? kNegInf : logits[i] - lse;
}

void SuppressBlank::apply(float* logits, int n_vocab, const Sequences& tokens) const {
  for (size_t k = 0; k < tokens.size(); ++k) {
    if (static_cast<int>(tokens[k].size()) != sample_begin_) continue;
    float* row = logits + k * static_cast<size_t>(n_vocab);
    for (int t : blank_) {
      if (t >= 0 && t < n_vocab) row[t] = kNegInf;
    }
  }
}

void SuppressTokens::apply(float* logits, int n_vocab, const Sequences& tokens) const {
  for (size_t k = 0; k < tokens.size(); ++k) {
    float* row = logits + k * static_cast<size_t>(n_vocab);
    for (int t : tokens_) {
      if (t >= 0 && t < n_vocab) row[t] = kNegInf;
    }
  }
}

void ApplyTimestampRules::apply(float* logits, int n_vocab, const Sequences& tokens) const {
  const int tb = timestamp_begin_;
  for (size_t k = 0; k < tokens.size(); ++k) {
    float* row = logits + k * static_cast<size_t>(n_vocab);
    const std::vector<int>& seq = tokens[k];
    // <|notimestamps|> is what without_timestamps uses; never sample it here.
    if (no_timestamps_ >= 0 && no_timestamps_ < n_vocab) row[no_timestamps_] = kNegInf;

    const int n_sampled = static_cast<int>(seq.size()) - sample_begin_;
    const bool last_was_ts = n_sampled >= 1 && seq.back() >= tb;
    const bool penultimate_was_ts = n_sampled < 2 || seq[seq.size() - 2] >= tb;
    if (last_was_ts) {
      if (penultimate_was_ts) {
        fill(row, tb, n_vocab, n_vocab);  // a pair just closed: text or EOT must follow
      } else {
        fill(row, 0, eot_, n_vocab);      // an opened pair must close: no text tokens
      }
    }
    int last_ts = -1;
    for (int i = sample_begin_; i < static_cast<int>(seq.size()); ++i) {
      if (seq[i] >= tb) last_ts = seq[i];
    }
    if (last_ts >= 0) {
      // Timestamps never decrease, and a closed segment must have non-zero length.
      const int limit = (last_was_ts && !penultimate_was_ts) ? last_ts : last_ts + 1;
      fill(row, tb, limit, n_vocab);
    }
    if (n_sampled == 0) {
      fill(row, 0, tb, n_vocab);  // the first sampled token is a timestamp
      // Compared before adding: an index near INT_MAX must not overflow tb + index + 1.
      if (max_initial_timestamp_index_ >= 0 && max_initial_timestamp_index_ < n_vocab - tb - 1) {
        fill(row, tb + max_initial_timestamp_index_ + 1, n_vocab, n_vocab);
      }
    }
    // If all timestamps together outweigh the best text token, a timestamp it is. Both sides
    // are log-probabilities with the same normaliser, so it cancels: compare raw logits.
    const float ts_logsumexp = tb < n_vocab ? logsumexp(row + tb, n_vocab - tb) : kNegInf;
    const float text_max = tb > 0 ? cpu::kernels().max(row, std::min(tb, n_vocab)) : kNegInf;
    if (ts_logsumexp > text_max) fill(row, 0, tb, n_vocab);
  }
}

void RepetitionPenalty::apply(float* logits, int n_vocab, const Sequences& tokens) const {
  for (size_t k = 0; k < tokens.size(); ++k) {
    float* row = logits + k * static_cast<size_t>(n_vocab);
    const std::vector<int>& seq = tokens[k];
    const auto begin = seq.begin() + std::min<size_t>(seq.size(), static_cast<size_t>(sample_begin_));
    for (auto it = begin; it != seq.end(); ++it) {
      const int t = *it;
      if (t < 0 || t >= n_vocab || std::find(begin, it, t) != it) continue;  // once per distinct token
      row[t] = row[t] > 0.0f ? row[t] / penalty_ : row[t] * penalty_;
    }
  }
}

void NoRepeatNgram::apply(float* logits, int n_vocab, const Sequences& tokens) const {
  for (size_t k = 0; k < tokens.size(); ++k) {
    float* row = logits + k * static_cast<size_t>(n_vocab);
    const std::vector<int>& seq = tokens[k];
    const int begin = std::min(static_cast<int>(seq.size()), sample_begin_);
    const int len = static_cast<int>(seq.size()) - begin;
    if (len < n_) continue;
    const int* s = seq.data() + begin;
    const int* tail = s + len - (n_ - 1);  // the n - 1 newest tokens: an n-gram's first n - 1
    for (int j = 0; j + n_ <= len; ++j) {
      if (std::equal(tail, s + len, s + j)) {
        const int t = s[j + n_ - 1];
        if (t >= 0 && t < n_vocab) row[t] = kNegInf;
      }
    }
  }
}

void LoopCutoff::apply(float* logits, int n_vocab, const Sequences& tokens) const {
  if (eot_ < 0 || eot_ >= n_vocab) return;
  for (size_t k = 0; k < tokens.size(); ++k) {
    if (loop_start(tokens[k], static_cast<size_t>(sample_begin_), eot_, repeats_) < 0) continue;
    float* row = logits + k * static_cast<size_t>(n_vocab);
    fill(row, 0, n_vocab, n_vocab);
    row[eot_] = 0.0f;  // log-probability 0: ending costs the sequence nothing
  }
}

}  // namespace whisper_genio::decoding

namespace whisper_genio {

namespace {
// The newest text token of tokens[begin, i), or -1.
int previous_text(const std::vector<int>& tokens, int i, int begin, int text_end) {
  while (--i >= begin) {
    if (tokens[static_cast<size_t>(i)] < text_end) return i;
  }
  return -1;
}
}  // namespace

int loop_start(const std::vector<int>& tokens, size_t begin, int text_end, int repeats) {
  if (repeats < 2) return -1;
  const int b0 = static_cast<int>(std::min(begin, tokens.size()));
  const int newest = previous_text(tokens, static_cast<int>(tokens.size()), b0, text_end);
  if (newest < 0) return -1;
  // Block length p: compare each of the newest p * (repeats - 1) text tokens with the one p
  // text tokens older; walking back in place keeps this allocation-free.
  int lag = newest;  // the text token p older than `newest`
  for (int p = 1; p <= kMaxLoopBlock; ++p) {
    lag = previous_text(tokens, lag, b0, text_end);
    if (lag < 0) return -1;  // fewer than p + 1 text tokens: no longer block can repeat either
    int a = newest, b = lag;
    bool repeated = true;
    for (int c = 0; c < p * (repeats - 1); ++c) {
      if (b < 0 || tokens[static_cast<size_t>(a)] != tokens[static_cast<size_t>(b)]) {
        repeated = false;
        break;
      }
      a = previous_text(tokens, a, b0, text_end);
      b = previous_text(tokens, b, b0, text_end);
    }
    if (repeated) return a + 1;  // `a` is now the first copy's newest token
  }
  return -1;
}

}  // namespace whisper_genio
