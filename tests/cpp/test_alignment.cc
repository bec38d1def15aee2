// Word-timestamp alignment: the forced pass's recorded cross-attention scores and dynamic time
// warping (the Python side is checked against openai-whisper in test_word_timestamps.py).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "test_util.h"
#include "tiny_model.h"
#include "whisper_genio/decoding.h"

using namespace whisper_genio;
using namespace whisper_genio::testing;

namespace {

std::unique_ptr<Decoder> decoder_with_audio(const TinyModel& m) {
  auto dec = Decoder::create(m.dims(), m.map(), nullptr, ComputeType::kFloat32);
  if (!dec.ok()) return nullptr;
  std::vector<float> states(static_cast<size_t>(m.dims().n_audio_ctx * m.dims().n_audio_state));
  wg_test::Rng rng(7);
  for (float& v : states) v = rng.uniform_int(-64, 64) / 64.0f;
  if (!dec.value()->set_audio(EncoderStates{states.data(), m.dims().n_audio_ctx, m.dims().n_audio_state}).ok()) {
    return nullptr;
  }
  return std::move(dec).value();
}

}  // namespace

TEST(Alignment, DtwFollowsTheCheapCells) {
  // Zeros on the path (0,0) (0,1) (1,2) (2,3) (2,4), ones elsewhere.
  const std::vector<float> x = {0, 0, 1, 1, 1,  //
                                1, 1, 0, 1, 1,  //
                                1, 1, 1, 0, 0};
  std::vector<int> rows, cols;
  dtw(x.data(), 3, 5, &rows, &cols);
  EXPECT_EQ(rows, (std::vector<int>{0, 0, 1, 2, 2}));
  EXPECT_EQ(cols, (std::vector<int>{0, 1, 2, 3, 4}));
  dtw(x.data(), 0, 5, &rows, &cols);
  EXPECT_TRUE(rows.empty() && cols.empty());
}

TEST(Alignment, ScoresDependOnlyOnEarlierTokens) {
  TinyModel m(21);
  auto dec = decoder_with_audio(m);
  ASSERT_TRUE(dec != nullptr);
  const std::vector<std::pair<int, int>> heads = {{0, 1}, {1, 0}};
  const std::vector<int> a = {kSot, kLang, kTranscribe, kNoTimestamps, 3, 17, 5, kEot};
  const std::vector<int> b = {kSot, kLang, kTranscribe, kNoTimestamps, 3, 17, 9, 30, 2, kEot};
  auto ra = dec->alignment(a, heads, 6, kEot);
  auto rb = dec->alignment(b, heads, 6, kEot);
  ASSERT_OK(ra);
  ASSERT_OK(rb);
  ASSERT_EQ(ra.value().qk.size(), size_t(2 * 8 * 6));
  ASSERT_EQ(ra.value().token_probs.size(), size_t(7));
  // Rows 0..5 see the same tokens in both sequences (causal self-attention): same scores.
  for (int h = 0; h < 2; ++h) {
    for (int r = 0; r < 6; ++r) {
      for (int f = 0; f < 6; ++f) {
        EXPECT_NEAR(ra.value().qk[(h * 8 + r) * 6 + f], rb.value().qk[(h * 10 + r) * 6 + f], 1e-5) << h << " " << r;
      }
    }
  }
  // Text tokens get probabilities in (0, 1); <|endoftext|> is not a text token: NaN.
  for (int i = 0; i < 6; ++i) {
    const float p = ra.value().token_probs[static_cast<size_t>(i)];
    if (a[static_cast<size_t>(i + 1)] < kEot) EXPECT_TRUE(p > 0.0f && p < 1.0f) << i;
  }
  EXPECT_TRUE(std::isnan(ra.value().token_probs[6]));
}

TEST(Alignment, BadRequestsAreStatuses) {
  TinyModel m(22);
  auto dec = decoder_with_audio(m);
  ASSERT_TRUE(dec != nullptr);
  const std::vector<int> tokens = {kSot, kLang, kTranscribe, 4, kEot};
  EXPECT_STATUS(dec->alignment(tokens, {{2, 0}}, 4, kEot), StatusCode::kInvalidArgument);  // no layer 2
  EXPECT_STATUS(dec->alignment(tokens, {{0, 2}}, 4, kEot), StatusCode::kInvalidArgument);  // no head 2
  EXPECT_STATUS(dec->alignment(tokens, {}, 4, kEot), StatusCode::kInvalidArgument);
  EXPECT_STATUS(dec->alignment(tokens, {{0, 0}}, 17, kEot), StatusCode::kInvalidArgument);  // 16 positions
  EXPECT_STATUS(dec->alignment({kSot}, {{0, 0}}, 4, kEot), StatusCode::kInvalidArgument);
  EXPECT_STATUS(dec->alignment(std::vector<int>(17, 4), {{0, 0}}, 4, kEot), StatusCode::kInvalidArgument);
  EXPECT_STATUS(dec->alignment({kSot, 64}, {{0, 0}}, 4, kEot), StatusCode::kInvalidArgument);
  auto fresh = Decoder::create(m.dims(), m.map(), nullptr, ComputeType::kFloat32);
  ASSERT_OK(fresh);
  EXPECT_STATUS(fresh.value()->alignment(tokens, {{0, 0}}, 4, kEot), StatusCode::kInvalidArgument);  // no audio
  // After a refused request the decoder still decodes.
  ASSERT_OK(dec->alignment(tokens, {{0, 0}}, 4, kEot));
}
