// Token decoders and the ranker (csrc/src/decoder/token_decoders.h) on hand-made logits,
// against the behaviour of openai-whisper's GreedyDecoder, BeamSearchDecoder and
// MaximumLikelihoodRanker (decoding.py). Each test quotes the rule it checks.
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "decoder/token_decoders.h"
#include "whisper_genio/decoding.h"
#include "test_util.h"

using namespace whisper_genio::decoding;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// log_softmax in double, for expected scores.
std::vector<double> logprobs(const std::vector<float>& row) {
  double m = -1e300;
  for (float v : row) m = std::max(m, static_cast<double>(v));
  double z = 0;
  for (float v : row) z += std::exp(v - m);
  std::vector<double> out;
  for (float v : row) out.push_back(v - m - std::log(z));
  return out;
}

// Logits whose softmax is exactly `probs` (up to float rounding).
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> r;
  for (double p : probs) r.push_back(p > 0 ? static_cast<float>(std::log(p)) : kNegInf);
  return r;
}

std::vector<float> concat(const std::vector<std::vector<float>>& rows) {
  std::vector<float> out;
  for (const auto& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// GreedyDecoder

// temperature 0: `next_tokens = logits.argmax(dim=-1)` (first maximum on ties), and
// `sum_logprobs += log_softmax(logits)[next]`.
TEST(BeamSearch, GreedyArgmaxAndLogprob) {
  const int V = 6, eot = 5;
  GreedyDecoder d(0.0f, eot, 1);
  Sequences tokens = {{9}, {9}};
  std::vector<float> sums = {0.0f, -1.0f};
  std::vector<int> source;
  const std::vector<float> r0 = {0.1f, 2.0f, 0.3f, 2.5f, 0.0f, 1.0f};
  const std::vector<float> r1 = {3.0f, 1.0f, 3.0f, 0.0f, -1.0f, 2.0f};  // tie: first maximum wins
  const bool done = d.update(tokens, concat({r0, r1}).data(), V, sums, source);
  EXPECT_FALSE(done);
  EXPECT_EQ(tokens, (Sequences{{9, 3}, {9, 0}}));
  EXPECT_EQ(source, (std::vector<int>{0, 1}));
  EXPECT_NEAR(sums[0], logprobs(r0)[3], 1e-6);
  EXPECT_NEAR(sums[1], -1.0 + logprobs(r1)[0], 1e-6);
}

// `sum_logprobs += current_logprobs * (tokens[:, -1] != eot)` and
// `next_tokens[tokens[:, -1] == eot] = eot`: a finished sequence keeps emitting EOT and its
// score stops changing; `completed = (tokens[:, -1] == eot).all()`.
TEST(BeamSearch, GreedyEotIsSticky) {
  const int V = 6, eot = 5;
  GreedyDecoder d(0.0f, eot, 1);
  Sequences tokens = {{9, eot}, {9, 2}};
  std::vector<float> sums = {-2.0f, -3.0f};
  std::vector<int> source;
  const std::vector<float> prefer4 = {0, 0, 0, 0, 4.0f, 0};
  EXPECT_FALSE(d.update(tokens, concat({prefer4, prefer4}).data(), V, sums, source));
  EXPECT_EQ(tokens, (Sequences{{9, eot, eot}, {9, 2, 4}}));
  EXPECT_EQ(sums[0], -2.0f) << "no log-probability added after EOT";
  EXPECT_NEAR(sums[1], -3.0 + logprobs(prefer4)[4], 1e-6);
  const std::vector<float> prefer_eot = {0, 0, 0, 0, 0, 4.0f};
  EXPECT_TRUE(d.update(tokens, concat({prefer4, prefer_eot}).data(), V, sums, source)) << "all finished";
  EXPECT_EQ(tokens, (Sequences{{9, eot, eot, eot}, {9, 2, 4, eot}}));
  EXPECT_EQ(sums[0], -2.0f);
  // finalize: `F.pad(tokens, (0, 1), value=eot)`, scores unchanged.
  Candidates c = d.finalize(tokens, sums);
  EXPECT_EQ(c.sequences, (Sequences{{9, eot, eot, eot, eot}, {9, 2, 4, eot, eot}}));
  EXPECT_EQ(c.sum_logprobs, sums);
}

// temperature > 0: `Categorical(logits=logits / temperature).sample()`; the log-probability
// added is still that of the untempered logits.
TEST(BeamSearch, GreedySamplingDistribution) {
  const int V = 5, eot = 4;
  const std::vector<float> row = logits_of({0.1, 0.2, 0.7, 0.0, 0.0});
  for (float temperature : {1.0f, 0.5f}) {
    GreedyDecoder d(temperature, eot, 1234);
    std::vector<double> expected = {std::pow(0.1, 1 / temperature), std::pow(0.2, 1 / temperature),
                                    std::pow(0.7, 1 / temperature)};
    const double z = expected[0] + expected[1] + expected[2];
    const int draws = 20000;
    std::vector<int> counts(V, 0);
    std::vector<int> source;
    for (int i = 0; i < draws; ++i) {
      Sequences tokens = {{0}};
      std::vector<float> sums = {0.0f};
      d.update(tokens, row.data(), V, sums, source);
      const int t = tokens[0].back();
      ASSERT_TRUE(t >= 0 && t < V);
      ++counts[t];
      EXPECT_NEAR(sums[0], logprobs(row)[t], 1e-6) << "token " << t;
      if (wg_test::failure_count() > 5) return;
    }
    for (int t = 0; t < 3; ++t) {
      // binomial standard deviation <= 0.0036 here; 0.015 is > 4 sigma
      EXPECT_NEAR(counts[t] / static_cast<double>(draws), expected[t] / z, 0.015) << "T " << temperature << " token " << t;
    }
    EXPECT_EQ(counts[3], 0) << "probability-0 tokens are never sampled";
    EXPECT_EQ(counts[4], 0);
  }
}

TEST(BeamSearch, GreedySamplingIsDeterministicPerSeed) {
  const int V = 50, eot = 49;
  std::vector<float> row(V, 0.0f);  // uniform over 50 tokens
  row[eot] = kNegInf;
  auto run = [&](uint64_t seed) {
    GreedyDecoder d(1.0f, eot, seed);
    Sequences tokens = {{0}, {0}};
    std::vector<float> sums = {0.0f, 0.0f};
    std::vector<int> source;
    const std::vector<float> logits = concat({row, row});
    for (int i = 0; i < 40; ++i) d.update(tokens, logits.data(), V, sums, source);
    return tokens;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
  const Sequences t = run(7);
  EXPECT_NE(t[0], t[1]) << "rows of a batch draw independently";
}

// ---------------------------------------------------------------------------------------
// BeamSearchDecoder

// STEP 1 keys candidates by the whole sequence (`scores[sequence] = new_logprob;
// sources[sequence] = idx`): at the first step every beam holds the same prompt, so their
// candidates collapse into beam_size + 1 distinct ones, sourced from the last beam.
TEST(BeamSearch, BeamFirstStepDuplicatesCollapse) {
  const int V = 6, eot = 5;
  BeamSearchDecoder d(2, eot, 1.0f);
  Sequences tokens = {{0}, {0}};
  std::vector<float> sums = {0.0f, 0.0f};
  std::vector<int> source;
  const std::vector<float> row = logits_of({0.05, 0.3, 0.5, 0.1, 0.03, 0.02});
  EXPECT_FALSE(d.update(tokens, concat({row, row}).data(), V, sums, source));
  EXPECT_EQ(tokens, (Sequences{{0, 2}, {0, 1}})) << "not two copies of the best continuation";
  EXPECT_EQ(source, (std::vector<int>{1, 1}));
  EXPECT_NEAR(sums[0], std::log(0.5), 1e-6);
  EXPECT_NEAR(sums[1], std::log(0.3), 1e-6);
}

// STEP 2: candidates sorted by score; EOT-ending ones go to `finished`, the others fill the
// beams until beam_size are saved (`break`): EOT candidates ranked below that point are
// dropped. `completed` once len(finished) >= max_candidates = round(beam_size * patience).
TEST(BeamSearch, BeamCollectsFinishedCandidates) {
  const int V = 6, eot = 5;
  // Beam A = [0, 1] (score -1), beam B = [0, 2] (score -2). Candidate scores:
  //   A+eot -1.5 | A+3 -2.0 | B+eot -2.3 | B+1 -3.4 | A+4 -3.6 | B+3 -5.0
  // -> finished: A+eot, B+eot; beams: A+3, B+1 (then break).
  const std::vector<float> a = logits_of({0.02, 0.02, 0.02, std::exp(-1.0), std::exp(-2.6), std::exp(-0.5)});
  const std::vector<float> b = logits_of({0.01, std::exp(-1.4), 0.01, std::exp(-3.0), 0.005, std::exp(-0.3)});
  // (the probabilities need not sum to 1: the expected scores use the actual log_softmax)
  const std::vector<double> la = logprobs(a), lb = logprobs(b);
  for (float patience : {1.0f, 2.0f, 0.5f}) {
    BeamSearchDecoder d(2, eot, patience);
    Sequences tokens = {{0, 1}, {0, 2}};
    std::vector<float> sums = {-1.0f, -2.0f};
    std::vector<int> source;
    const bool done = d.update(tokens, concat({a, b}).data(), V, sums, source);
    EXPECT_EQ(tokens, (Sequences{{0, 1, 3}, {0, 2, 1}})) << "patience " << patience;
    EXPECT_EQ(source, (std::vector<int>{0, 1}));
    EXPECT_NEAR(sums[0], -1.0 + la[3], 1e-5);
    EXPECT_NEAR(sums[1], -2.0 + lb[1], 1e-5);
    // max_candidates: round(2 * 1.0) = 2, round(2 * 2.0) = 4, round(2 * 0.5) = 1.
    EXPECT_EQ(done, patience != 2.0f) << "patience " << patience;
    Candidates c = d.finalize(tokens, sums);
    if (patience == 0.5f) {
      // The list was full after the best one (`if len(previously_finished) >= max_candidates:
      // break`); finalize then adds the best live beam to reach beam_size.
      EXPECT_EQ(c.sequences, (Sequences{{0, 1, 5}, {0, 1, 3, 5}}));
      ASSERT_EQ(c.sum_logprobs.size(), 2u);
      EXPECT_NEAR(c.sum_logprobs[0], -1.0 + la[5], 1e-5);
      EXPECT_NEAR(c.sum_logprobs[1], sums[0], 1e-6);
    } else {
      EXPECT_EQ(c.sequences, (Sequences{{0, 1, 5}, {0, 2, 5}})) << "patience " << patience;
      ASSERT_EQ(c.sum_logprobs.size(), 2u);
      EXPECT_NEAR(c.sum_logprobs[0], -1.0 + la[5], 1e-5);
      EXPECT_NEAR(c.sum_logprobs[1], -2.0 + lb[5], 1e-5);
    }
  }
}

// Finished candidates accumulate over steps in the order they finished, until
// max_candidates; later ones are ignored.
TEST(BeamSearch, BeamFinishedListCapsAtMaxCandidates) {
  const int V = 5, eot = 4;
  BeamSearchDecoder d(2, eot, 1.5f);  // max_candidates = 3
  Sequences tokens = {{7, 0}, {7, 1}};
  std::vector<float> sums = {-1.0f, -1.2f};
  std::vector<int> source;
  // Step 1: only beam 0's EOT makes it above the cut.
  const std::vector<float> s1a = logits_of({0.3, 0.25, 0.05, 0.05, 0.35});
  const std::vector<float> s1b = logits_of({0.45, 0.4, 0.05, 0.05, 0.05});
  EXPECT_FALSE(d.update(tokens, concat({s1a, s1b}).data(), V, sums, source));
  // Scores: 0+eot -2.05, 0+0 -2.20, 0+1 -2.39, 1+0 -2.00, 1+1 -2.12 -> sorted:
  // 1+0 (-2.00) live, 0+eot (-2.05) finished, 1+1 (-2.12) live -> break.
  EXPECT_EQ(tokens, (Sequences{{7, 1, 0}, {7, 1, 1}}));
  EXPECT_EQ(source, (std::vector<int>{1, 1}));
  // Step 2: both beams strongly prefer EOT: 2 more finished -> 3 = max_candidates.
  const std::vector<float> s2 = logits_of({0.05, 0.05, 0.05, 0.05, 0.8});
  EXPECT_TRUE(d.update(tokens, concat({s2, s2}).data(), V, sums, source));
  // Step 3 (the caller would have stopped): further EOTs are not added.
  d.update(tokens, concat({s2, s2}).data(), V, sums, source);
  Candidates c = d.finalize(tokens, sums);
  ASSERT_EQ(c.sequences.size(), 3u);
  EXPECT_EQ(c.sequences[0], (std::vector<int>{7, 0, eot}));
  EXPECT_EQ(c.sequences[1], (std::vector<int>{7, 1, 0, eot}));
  EXPECT_EQ(c.sequences[2], (std::vector<int>{7, 1, 1, eot}));
  EXPECT_NEAR(c.sum_logprobs[0], -1.0 + std::log(0.35), 1e-5);
  EXPECT_NEAR(c.sum_logprobs[1], -1.2 + std::log(0.45) + std::log(0.8), 1e-5);
  EXPECT_NEAR(c.sum_logprobs[2], -1.2 + std::log(0.4) + std::log(0.8), 1e-5);
}

// finalize: `if len(sequences) < beam_size:` add the live beams best first
// (`np.argsort(sum_logprobs)[::-1]`) with EOT appended, until beam_size candidates exist;
// with enough finished ones (patience > 1 may give more than beam_size), just those.
TEST(BeamSearch, BeamFinalizeFillsFromLiveBeams) {
  const int V = 6, eot = 5;
  BeamSearchDecoder d(3, eot, 1.0f);
  Sequences tokens = {{0, 1}, {0, 2}, {0, 3}};
  std::vector<float> sums = {-1.0f, -1.1f, -1.2f};
  std::vector<int> source;
  // Beam 0's EOT is the best candidate; the rest continue.
  const std::vector<float> r0 = logits_of({0.02, 0.02, 0.02, 0.02, 0.02, 0.9});
  const std::vector<float> r = logits_of({0.2, 0.2, 0.2, 0.2, 0.19, 0.01});
  d.update(tokens, concat({r0, r, r}).data(), V, sums, source);
  ASSERT_EQ(tokens.size(), 3u);
  const Sequences live = tokens;
  // Make the live scores distinct and out of order to see the sort.
  std::vector<float> final_sums = {-9.0f, -3.0f, -5.0f};
  Candidates c = d.finalize(tokens, final_sums);
  ASSERT_EQ(c.sequences.size(), 3u);
  EXPECT_EQ(c.sequences[0], (std::vector<int>{0, 1, eot}));
  std::vector<int> best_live = live[1], second_live = live[2];
  best_live.push_back(eot);
  second_live.push_back(eot);
  EXPECT_EQ(c.sequences[1], best_live);
  EXPECT_EQ(c.sequences[2], second_live);
  EXPECT_EQ(c.sum_logprobs[1], -3.0f);
  EXPECT_EQ(c.sum_logprobs[2], -5.0f);
}

// `max_candidates = round(beam_size * patience)` is Python's round(): halves go to even, so
// beam 5 x patience 0.5 = 2.5 -> 2 candidates complete the search. token_decoders.cc uses
// std::lround (halves away from zero -> 3). Disabled until fixed (see the test report).
TEST(BeamSearch, BeamMaxCandidatesRoundsHalfToEven) {
  const int V = 8, eot = 7;
  BeamSearchDecoder d(5, eot, 0.5f);
  Sequences tokens = {{0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}};
  std::vector<float> sums = {-1.0f, -1.1f, -1.2f, -1.3f, -1.4f};
  std::vector<int> source;
  std::vector<float> eot_row = logits_of({0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.65});
  std::vector<float> text_row = logits_of({0.14, 0.14, 0.14, 0.14, 0.14, 0.14, 0.15, 0.01});
  // Beams 0 and 1 finish this step: 2 finished = round(2.5) under Python's rounding.
  const bool done = d.update(tokens, concat({eot_row, eot_row, text_row, text_row, text_row}).data(), V, sums, source);
  EXPECT_TRUE(done);
}

// np.argsort is stable for these sizes; reversed, equal scores come out highest index first.
// token_decoders.cc's stable descending sort gives lowest index first. Disabled until fixed.
TEST(BeamSearch, BeamFinalizeTiesFollowNumpyOrder) {
  const int eot = 5;
  BeamSearchDecoder d(2, eot, 1.0f);
  Sequences tokens = {{0, 1}, {0, 2}};
  Candidates c = d.finalize(tokens, {-2.0f, -2.0f});
  ASSERT_EQ(c.sequences.size(), 2u);
  EXPECT_EQ(c.sequences[0], (std::vector<int>{0, 2, eot}));
  EXPECT_EQ(c.sequences[1], (std::vector<int>{0, 1, eot}));
}

// ---------------------------------------------------------------------------------------
// rank_candidates (MaximumLikelihoodRanker)

// `penalty = length if length_penalty is None else ((5 + length) / 6) ** length_penalty`,
// score = sum_logprob / penalty, `np.argmax` (first maximum). Lengths exclude EOT.
TEST(BeamSearch, RankCandidatesWithAndWithoutLengthPenalty) {
  const Sequences sampled = {{1}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}};
  const std::vector<float> lp = {-1.0f, -2.2f};
  // None (< 0 here): -1.0 / 1 vs -2.2 / 10 -> the long one.
  EXPECT_EQ(rank_candidates(sampled, lp, -1.0f), 1);
  // alpha 0: penalty 1, raw log-probabilities -> the short one.
  EXPECT_EQ(rank_candidates(sampled, lp, 0.0f), 0);
  // alpha 1: -1.0 / 1 vs -2.2 / 2.5 = -0.88 -> the long one.
  EXPECT_EQ(rank_candidates(sampled, lp, 1.0f), 1);
  // alpha 0.5: -1.0 vs -2.2 / sqrt(2.5) = -1.39 -> the short one.
  EXPECT_EQ(rank_candidates(sampled, lp, 0.5f), 0);
  // Ties: the first.
  EXPECT_EQ(rank_candidates({{1, 2}, {3, 4}, {5, 6}}, {-3.0f, -1.0f, -1.0f}, -1.0f), 1);
  EXPECT_EQ(rank_candidates({{1}}, {-7.0f}, 0.3f), 0);
}

// The penalty formula exactly: candidate 1's log-probability is set 1% better, then 1% worse,
// than candidate 0's score under the formula; any other formula flips at least one case.
TEST(BeamSearch, RankCandidatesPenaltyFormula) {
  for (const auto& [l0, l1] : {std::pair<int, int>{2, 8}, {1, 30}, {12, 3}}) {
    for (float alpha : {-1.0f, 0.0f, 0.3f, 0.6f, 1.0f}) {
      auto penalty = [&](int length) {
        return alpha < 0 ? static_cast<double>(length) : std::pow((5.0 + length) / 6.0, static_cast<double>(alpha));
      };
      const Sequences sampled = {std::vector<int>(static_cast<size_t>(l0), 1), std::vector<int>(static_cast<size_t>(l1), 2)};
      const double s0 = -1.0 / penalty(l0);
      for (double factor : {0.99, 1.01}) {
        const float lp1 = static_cast<float>(s0 * factor * penalty(l1));
        const int expected = factor < 1.0 ? 1 : 0;  // scores are negative: closer to 0 wins
        EXPECT_EQ(rank_candidates(sampled, {-1.0f, lp1}, alpha), expected)
            << "lengths " << l0 << ", " << l1 << " alpha " << alpha << " factor " << factor;
      }
    }
  }
}

// Hostile patience (issue 16): DecodingOptions::check() refuses inf/NaN, but the decoder itself
// must not cast an out-of-range double to int (UBSan) for a caller that skipped the check.
TEST(BeamSearch, MaxCandidatesStaysDefinedForHostilePatience) {
  EXPECT_EQ(BeamSearchDecoder::max_candidates(5, 1.0), 5);
  EXPECT_EQ(BeamSearchDecoder::max_candidates(5, 0.5), 2);  // round half to even
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(BeamSearchDecoder::max_candidates(5, inf), whisper_genio::kMaxBeamCandidates);
  EXPECT_EQ(BeamSearchDecoder::max_candidates(5, 1e300), whisper_genio::kMaxBeamCandidates);
  EXPECT_EQ(BeamSearchDecoder::max_candidates(5, std::nan("")), 0);
  EXPECT_EQ(BeamSearchDecoder::max_candidates(5, -inf), 0);
  BeamSearchDecoder d(5, 7, inf, 4);  // constructs without UB or a huge allocation
}
