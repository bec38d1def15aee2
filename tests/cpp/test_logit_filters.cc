// Logit filters (csrc/src/decoder/logit_filters.h) against the rules of openai-whisper's
// decoding.py (SuppressBlank, SuppressTokens, ApplyTimestampRules). Each test quotes the
// rule it checks.
//
// Vocabulary layout used throughout (the filters take ids, never hard-code them):
//   0..9 text, 10 <|endoftext|>, 11 <|startoftranscript|>, 12 <|notimestamps|>,
//   13..19 timestamps <|0.00|> .. <|0.12|>.
// Initial tokens are 3 long (sample_begin = 3).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "decoder/logit_filters.h"
#include "whisper_genio/decoding.h"
#include "test_util.h"

using namespace whisper_genio::decoding;

namespace {

constexpr int V = 20;
constexpr int kEot = 10, kSot = 11, kNoTs = 12, kTb = 13;
constexpr int kSampleBegin = 3;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
const std::vector<int> kInitial = {kSot, 4, 7};

std::vector<int> seq(std::vector<int> sampled) {
  std::vector<int> s = kInitial;
  s.insert(s.end(), sampled.begin(), sampled.end());
  return s;
}

// Logits where text token 0 clearly dominates (so the forced-timestamp rule stays out of
// the way unless a test wants it): text 0 -> 8, other text and specials 0, timestamps -1.
std::vector<float> text_heavy_row() {
  std::vector<float> r(V, 0.0f);
  r[0] = 8.0f;
  for (int t = kTb; t < V; ++t) r[t] = -1.0f;
  return r;
}

// Which tokens a row still allows.
std::string allowed(const std::vector<float>& row) {
  std::string s;
  for (int t = 0; t < V; ++t) {
    if (row[t] != kNegInf) s += (s.empty() ? "" : ",") + std::to_string(t);
  }
  return s;
}

std::string range(int begin, int end, std::string prefix = "") {
  std::string s = prefix;
  for (int t = begin; t < end; ++t) s += (s.empty() ? "" : ",") + std::to_string(t);
  return s;
}

std::vector<float> apply_ts(const std::vector<int>& sampled, std::vector<float> row, int max_initial = -1) {
  ApplyTimestampRules f(kSampleBegin, kEot, kNoTs, kTb, max_initial);
  f.apply(row.data(), V, {seq(sampled)});
  return row;
}

}  // namespace

// SuppressBlank: `if tokens.shape[1] == self.sample_begin: logits[:, encode(" ") + [eot]] = -inf`
// -- only at the first sampled position, on every row; later positions untouched.
TEST(LogitFilters, SuppressBlankOnlyAtSampleBegin) {
  SuppressBlank f({5, kEot}, kSampleBegin);
  std::vector<float> logits(2 * V, 1.0f);
  f.apply(logits.data(), V, {seq({}), seq({})});
  for (int r = 0; r < 2; ++r) {
    for (int t = 0; t < V; ++t) {
      EXPECT_EQ(logits[r * V + t], (t == 5 || t == kEot) ? kNegInf : 1.0f) << "row " << r << " token " << t;
    }
  }
  std::vector<float> later(2 * V, 1.0f);
  f.apply(later.data(), V, {seq({3}), seq({3})});
  for (float v : later) EXPECT_EQ(v, 1.0f) << "after the first sampled token nothing is suppressed";
  // Ids outside the vocabulary are ignored, not written.
  SuppressBlank odd({-1, V, 3}, kSampleBegin);
  std::vector<float> row(V, 1.0f);
  odd.apply(row.data(), V, {seq({})});
  EXPECT_EQ(allowed(row), "0,1,2,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19");
}

// SuppressTokens: `logits[:, self.suppress_tokens] = -inf` at every position, every row.
TEST(LogitFilters, SuppressTokensEverywhere) {
  SuppressTokens f({1, 3, 19, kNoTs});
  for (const auto& tokens : {Sequences{seq({}), seq({})}, Sequences{seq({14, 2, 16}), seq({5, 6})}}) {
    std::vector<float> logits(2 * V, 0.5f);
    f.apply(logits.data(), V, tokens);
    for (int r = 0; r < 2; ++r) {
      std::vector<float> row(logits.begin() + r * V, logits.begin() + (r + 1) * V);
      EXPECT_EQ(allowed(row), "0,2,4,5,6,7,8,9,10,11,13,14,15,16,17,18") << "row " << r;
    }
  }
}

// `if tokens.shape[1] == self.sample_begin: logits[:, :timestamp_begin] = -inf` -- the first
// sampled token is a timestamp; with max_initial_timestamp_index set,
// `logits[:, timestamp_begin + max_initial_timestamp_index + 1:] = -inf`. <|notimestamps|>
// is always -inf ("handled by without_timestamps").
TEST(LogitFilters, TimestampRulesFirstToken) {
  EXPECT_EQ(allowed(apply_ts({}, std::vector<float>(V, 0.0f))), range(kTb, V));
  EXPECT_EQ(allowed(apply_ts({}, std::vector<float>(V, 0.0f), /*max_initial=*/2)), "13,14,15");
  EXPECT_EQ(allowed(apply_ts({}, std::vector<float>(V, 0.0f), /*max_initial=*/0)), "13");
  EXPECT_EQ(allowed(apply_ts({}, std::vector<float>(V, 0.0f), /*max_initial=*/100)), range(kTb, V));
  // Even when text is far more likely, the first token is a timestamp.
  EXPECT_EQ(allowed(apply_ts({}, text_heavy_row(), 3)), "13,14,15,16");
}

// Timestamps in the prompt (before sample_begin) are not "sampled tokens": only
// `tokens[k, self.sample_begin:]` feeds the pairing and monotonicity rules.
TEST(LogitFilters, TimestampRulesIgnorePromptTokens) {
  ApplyTimestampRules f(kSampleBegin, kEot, kNoTs, kTb, -1);
  std::vector<float> row = text_heavy_row();
  f.apply(row.data(), V, {{kSot, 18, 17, 14, 2}});  // prompt holds 18, 17
  EXPECT_EQ(allowed(row), range(0, kNoTs, "") + "," + range(15, V)) << "only 13, 14 (<= the sampled 14) forbidden";
}

// seq = [14] (sampled): last_was_timestamp and penultimate_was_timestamp (`len(seq) < 2`)
// -> `logits[k, timestamp_begin:] = -inf`: the opening timestamp is followed by text.
TEST(LogitFilters, TimestampRulesAfterOpeningTimestamp) {
  EXPECT_EQ(allowed(apply_ts({14}, text_heavy_row())), range(0, kNoTs));
}

// seq = [14, 2, 16]: the last timestamp follows text (an unpaired timestamp) ->
// `logits[k, :eot] = -inf`: no text, the pair must close (or EOT). Timestamps before it are
// forbidden, but it may repeat: `timestamp_last = timestamps[-1]` (not + 1).
TEST(LogitFilters, TimestampRulesSingleTimestampAfterTextForbidsText) {
  std::vector<float> row(V, 0.0f);
  row[kEot] = 5.0f;  // keeps the forced-timestamp rule out of the way
  EXPECT_EQ(allowed(apply_ts({14, 2, 16}, row)), "10,11,16,17,18,19");
  // With EOT (and <|startoftranscript|>) at 0 the four timestamps left (logsumexp ln 4) beat
  // every remaining non-timestamp token: only timestamps remain.
  EXPECT_EQ(allowed(apply_ts({14, 2, 16}, std::vector<float>(V, 0.0f))), "16,17,18,19");
}

// seq = [14, 2, 16, 16]: a pair of timestamps just closed -> `logits[k, timestamp_begin:] = -inf`.
TEST(LogitFilters, TimestampRulesAfterPairForbidsTimestamps) {
  EXPECT_EQ(allowed(apply_ts({14, 2, 16, 16}, text_heavy_row())), range(0, kNoTs));
  EXPECT_EQ(allowed(apply_ts({14, 2, 15, 17}, text_heavy_row())), range(0, kNoTs));
}

// Mid-segment (last token text): `timestamp_last = timestamps[-1] + 1` and
// `logits[k, timestamp_begin:timestamp_last] = -inf` -- timestamps never decrease and a
// segment has non-zero length.
TEST(LogitFilters, TimestampRulesMonotonic) {
  EXPECT_EQ(allowed(apply_ts({14, 2}, text_heavy_row())), range(0, kNoTs) + "," + range(15, V));
  EXPECT_EQ(allowed(apply_ts({13, 2, 15, 15, 3}, text_heavy_row())), range(0, kNoTs) + "," + range(16, V));
  EXPECT_EQ(allowed(apply_ts({19, 2}, text_heavy_row())), range(0, kNoTs)) << "after the last timestamp: none";
}

// `if timestamp_logprob > max_text_token_logprob: logits[k, :timestamp_begin] = -inf` where
// timestamp_logprob is the logsumexp over the (already masked) timestamp log-probabilities
// and the max runs over every token below timestamp_begin (EOT and specials included).
TEST(LogitFilters, TimestampRulesForcedTimestamp) {
  // seq [14, 2] masks 13 and 14; 15..19 have logit 2 each: logsumexp = 2 + ln 5 = 3.609.
  auto row_with_best_text = [](float best_text) {
    std::vector<float> r(V, 0.0f);
    r[4] = best_text;
    for (int t = kTb; t < V; ++t) r[t] = 2.0f;
    return r;
  };
  EXPECT_EQ(allowed(apply_ts({14, 2}, row_with_best_text(3.5f))), "15,16,17,18,19") << "3.609 > 3.5: forced";
  // 3.8 beats the 5 unmasked timestamps (3.609) though not all 7 (2 + ln 7 = 3.946): the
  // masked ones must not count.
  EXPECT_EQ(allowed(apply_ts({14, 2}, row_with_best_text(3.8f))), range(0, kNoTs) + "," + range(15, V));
  // EOT counts as a "text" token for the comparison.
  std::vector<float> eot_row = row_with_best_text(0.0f);
  eot_row[kEot] = 3.8f;
  EXPECT_EQ(allowed(apply_ts({14, 2}, eot_row)), range(0, kNoTs) + "," + range(15, V));
  // After a closed pair every timestamp is -inf: logsumexp is -inf, nothing is forced.
  EXPECT_EQ(allowed(apply_ts({14, 2, 16, 16}, row_with_best_text(-5.0f))), range(0, kNoTs));
}

// <|notimestamps|> is -inf at every position; with no such token (id < 0) nothing breaks.
TEST(LogitFilters, TimestampRulesNoTimestampsAlwaysSuppressed) {
  for (const auto& sampled : {std::vector<int>{}, {14}, {14, 2}, {14, 2, 16}, {14, 2, 16, 16}}) {
    std::vector<float> row = apply_ts(sampled, std::vector<float>(V, 0.0f));
    EXPECT_EQ(row[kNoTs], kNegInf) << "sampled " << testing::PrintToString(sampled);
  }
  ApplyTimestampRules f(kSampleBegin, kEot, /*no_timestamps=*/-1, kTb, -1);
  std::vector<float> row = text_heavy_row();
  f.apply(row.data(), V, {seq({14, 2})});
  EXPECT_EQ(row[kNoTs], 0.0f);
}

// Rows of a batch follow their own histories.
TEST(LogitFilters, TimestampRulesPerRow) {
  ApplyTimestampRules f(kSampleBegin, kEot, kNoTs, kTb, -1);
  std::vector<float> logits;
  for (int r = 0; r < 3; ++r) {
    const auto row = text_heavy_row();
    logits.insert(logits.end(), row.begin(), row.end());
  }
  f.apply(logits.data(), V, {seq({14}), seq({14, 2, 16}), seq({14, 2})});
  auto row = [&](int r) { return std::vector<float>(logits.begin() + r * V, logits.begin() + (r + 1) * V); };
  EXPECT_EQ(allowed(row(0)), range(0, kNoTs));
  // Text is masked; EOT and SOT (logit 0) lose to the timestamps 16..19 (-1 + ln 4): forced.
  EXPECT_EQ(allowed(row(1)), "16,17,18,19");
  EXPECT_EQ(allowed(row(2)), range(0, kNoTs) + "," + range(15, V));
}

TEST(LogitFilters, LogSoftmaxMatchesDoubleReference) {
  wg_test::Rng rng(3);
  for (int n : {1, 2, 7, 51865}) {
    std::vector<float> x = rng.floats(static_cast<size_t>(n), -30.0, 30.0);
    if (n > 3) x[2] = kNegInf;
    std::vector<float> out(static_cast<size_t>(n));
    log_softmax(x.data(), n, out.data());
    double m = -1e300;
    for (float v : x) m = std::max(m, static_cast<double>(v));
    double z = 0;
    for (float v : x) z += std::exp(v - m);
    for (int i = 0; i < n; ++i) {
      if (x[i] == kNegInf) {
        EXPECT_EQ(out[i], kNegInf);
        continue;
      }
      EXPECT_NEAR(out[i], x[i] - m - std::log(z), 1e-5) << "n " << n << " i " << i;
      if (wg_test::failure_count() > 5) return;
    }
  }
  std::vector<float> masked(5, kNegInf), out(5);
  log_softmax(masked.data(), 5, out.data());
  for (float v : out) EXPECT_EQ(v, kNegInf) << "a fully masked row stays -inf (no NaN)";
}

// RepetitionPenalty (CTRL's, as CTranslate2 applies it for faster-whisper): each distinct token
// sampled so far has its logit divided by the penalty where positive, multiplied where negative;
// prompt tokens (before sample_begin) and tokens never sampled are untouched.
TEST(LogitFilters, RepetitionPenaltyOncePerDistinctSampledToken) {
  RepetitionPenalty f(2.0f, kSampleBegin);
  std::vector<float> row(V, 0.0f);
  row[0] = 4.0f;   // sampled twice: divided once
  row[1] = -3.0f;  // sampled: multiplied
  row[4] = 6.0f;   // in the prompt only: untouched
  row[5] = 1.0f;   // never sampled
  f.apply(row.data(), V, {seq({0, 1, 0})});
  EXPECT_EQ(row[0], 2.0f);
  EXPECT_EQ(row[1], -6.0f);
  EXPECT_EQ(row[4], 6.0f);
  EXPECT_EQ(row[5], 1.0f);
}

// NoRepeatNgram: the token that would repeat an n-gram of the sampled tokens is forbidden.
TEST(LogitFilters, NoRepeatNgramForbidsTheCompletingToken) {
  // Sampled 1 2 3 1 2: the 3-gram "1 2 3" would repeat with 3 next.
  NoRepeatNgram trigram(3, kSampleBegin);
  std::vector<float> row(V, 0.0f);
  trigram.apply(row.data(), V, {seq({1, 2, 3, 1, 2})});
  EXPECT_EQ(allowed(row), range(0, 3) + "," + range(4, V));
  // n = 1 forbids every token sampled so far; the prompt's tokens (4, 7) stay allowed.
  NoRepeatNgram unigram(1, kSampleBegin);
  std::vector<float> row1(V, 0.0f);
  unigram.apply(row1.data(), V, {seq({1, 2})});
  EXPECT_EQ(row1[1], kNegInf);
  EXPECT_EQ(row1[2], kNegInf);
  EXPECT_EQ(row1[4], 0.0f);
  EXPECT_EQ(row1[7], 0.0f);
  // Fewer sampled tokens than n: nothing to repeat.
  std::vector<float> row2(V, 0.0f);
  trigram.apply(row2.data(), V, {seq({1, 2})});
  EXPECT_EQ(allowed(row2), range(0, V));
}

// loop_start: where the text tokens end with one block repeated `repeats` times, the position
// just past the first copy; timestamps in between are not text and do not break a loop.
TEST(LoopCutoff, LoopStartFindsTheFirstCopy) {
  using whisper_genio::loop_start;
  // 5 6 7 | 5 6 7 (two copies of a 3-token block) after 2 prompt tokens 8 9.
  const std::vector<int> two = {8, 9, 5, 6, 7, 5, 6, 7};
  EXPECT_EQ(loop_start(two, 2, kEot, 2), 5);
  EXPECT_EQ(loop_start(two, 2, kEot, 3), -1) << "only two copies";
  EXPECT_EQ(loop_start(two, 5, kEot, 2), -1) << "the prompt is not searched";
  // Timestamps (>= EOT) between the copies: the copies are compared on text alone.
  const std::vector<int> ts = {kTb, 5, 6, kTb + 2, kTb + 2, 5, 6, kTb + 4, kTb + 4, 5, 6};
  EXPECT_EQ(loop_start(ts, 0, kEot, 3), 3);
  // The same token repeated: a block of one.
  EXPECT_EQ(loop_start({1, 2, 2, 2}, 0, kEot, 3), 2);
  // No repetition at the end (it repeated earlier): no loop.
  EXPECT_EQ(loop_start({5, 6, 5, 6, 1}, 0, kEot, 2), -1);
  EXPECT_EQ(loop_start({}, 0, kEot, 2), -1);
  EXPECT_EQ(loop_start({5, 5}, 0, kEot, 1), -1) << "fewer than two repeats is not a loop";
  // A block of distinct tokens, repeated: found up to kMaxLoopBlock tokens long, not beyond
  // (text_end 1000: every id below it is text here).
  for (int n : {whisper_genio::kMaxLoopBlock, whisper_genio::kMaxLoopBlock + 1}) {
    std::vector<int> block_twice;
    for (int c = 0; c < 2; ++c)
      for (int i = 0; i < n; ++i) block_twice.push_back(i);
    EXPECT_EQ(loop_start(block_twice, 0, 1000, 2), n <= whisper_genio::kMaxLoopBlock ? n : -1) << "block of " << n;
  }
}

// LoopCutoff: a looping row may only end (EOT at log-probability 0); other rows are untouched.
TEST(LoopCutoff, OnlyEndOfTextAfterALoop) {
  LoopCutoff f(2, kSampleBegin, kEot);
  std::vector<float> logits;
  for (int r = 0; r < 2; ++r) {
    const auto row = text_heavy_row();
    logits.insert(logits.end(), row.begin(), row.end());
  }
  f.apply(logits.data(), V, {seq({5, 6, 5, 6}), seq({5, 6, 5})});
  const std::vector<float> looped(logits.begin(), logits.begin() + V);
  const std::vector<float> fine(logits.begin() + V, logits.end());
  EXPECT_EQ(allowed(looped), std::to_string(kEot));
  EXPECT_EQ(looped[kEot], 0.0f);
  EXPECT_EQ(fine, text_heavy_row());
}

// Hostile max_initial_timestamp (issue 16): an index near INT_MAX (42949672 s once reached
// tb + index + 1 as a signed overflow) leaves the first token free among the timestamps.
TEST(LogitFilters, TimestampRulesHugeMaxInitialIndexDoesNotOverflow) {
  const int huge = std::numeric_limits<int>::max();
  EXPECT_EQ(allowed(apply_ts({}, std::vector<float>(V, 0.0f), huge)), range(kTb, V));
  EXPECT_EQ(allowed(apply_ts({}, std::vector<float>(V, 0.0f), huge - 1)), range(kTb, V));
  EXPECT_EQ(allowed(apply_ts({}, std::vector<float>(V, 0.0f), V - kTb - 1)), range(kTb, V));
  EXPECT_EQ(allowed(apply_ts({}, std::vector<float>(V, 0.0f), V - kTb - 2)), range(kTb, V - 1));
}

// DecodingOptions::max_initial_timestamp_index clamps to the last timestamp token before the
// cast, whatever the seconds (the check only asks for a finite number >= 0).
TEST(LogitFilters, MaxInitialTimestampIndexIsClamped) {
  whisper_genio::ModelDims dims;
  dims.n_audio_ctx = 1500;
  whisper_genio::DecodingOptions o;
  for (double seconds : {42949672.0, 1e12, 1e308}) {
    o.max_initial_timestamp = seconds;
    EXPECT_TRUE(o.check().ok()) << seconds;
    EXPECT_EQ(o.max_initial_timestamp_index(dims), 1500) << seconds;
  }
  o.max_initial_timestamp = 1.0;
  EXPECT_EQ(o.max_initial_timestamp_index(dims), 50);
  o.max_initial_timestamp = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(o.check().ok());
  o.max_initial_timestamp = std::nan("");
  EXPECT_FALSE(o.check().ok());
}
