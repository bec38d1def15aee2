// Log-mel front end (csrc/src/audio/mel.cc): mel filters, STFT power, normalisation, and the
// windowed access MelWindows must give exactly what slicing the full spectrogram gives.
#include <algorithm>
#include <cmath>
#include <complex>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "test_util.h"
#include "whisper_genio/audio.h"
#include "whisper_genio/thread_pool.h"

using namespace whisper_genio;

namespace {

constexpr int kBins = kNFft / 2 + 1;  // 201
constexpr double kPi = 3.14159265358979323846;

std::shared_ptr<const MelFrontEnd> front_end(int n_mels) {
  auto fe = MelFrontEnd::create(n_mels);
  return fe.ok() ? fe.value() : nullptr;
}

// Reference values of librosa.filters.mel(sr=16000, n_fft=400, n_mels) (the arrays openai-whisper
// ships in whisper/assets/mel_filters.npz), summarised: sum of all weights, sum weighted by
// (bin + 1), sum weighted by (row + 1), largest weight, number of non-zero weights, and the
// bin where each row peaks.
struct FilterGolden {
  int n_mels;
  double total, by_bin, by_row, max_value;
  int nonzero;
  std::vector<int> argmax;
};

const FilterGolden kGolden80{
    80, 1.999024092387117, 121.87139585214027, 80.99337223639304, 0.025880683213472366, 391,
    {1,  2,  3,  4,  5,  6,  7,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
     20, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 32, 33, 34, 36, 37, 38, 40, 41,
     43, 45, 46, 48, 50, 52, 54, 56, 59, 61, 63, 66, 68, 71, 74, 77, 80, 83, 86, 89,
     93, 96, 100, 104, 108, 112, 117, 121, 126, 131, 136, 142, 147, 153, 159, 165, 172, 178, 185, 192}};

const FilterGolden kGolden128{
    128, 3.1909855409403463, 195.50630400101636, 206.38006333292924, 0.04168175160884857, 394,
    {1,   1,   2,   2,   3,   4,   4,   5,   5,   6,   6,   7,   8,   8,   9,   9,   10,  11,  11,  12,  12,  13,
     13,  14,  15,  15,  16,  16,  17,  18,  18,  19,  19,  20,  20,  21,  22,  22,  23,  23,  24,  25,  25,  26,
     26,  27,  28,  28,  29,  30,  30,  31,  32,  33,  34,  34,  35,  36,  37,  38,  39,  40,  41,  42,  43,  44,
     45,  46,  47,  48,  49,  51,  52,  53,  54,  56,  57,  58,  60,  61,  63,  64,  66,  68,  69,  71,  73,  74,
     76,  78,  80,  82,  84,  86,  88,  90,  92,  95,  97,  99,  102, 104, 107, 109, 112, 115, 118, 121, 123, 126,
     130, 133, 136, 139, 143, 146, 150, 153, 157, 161, 165, 169, 173, 177, 182, 186, 191, 195}};

void check_filters(const FilterGolden& g) {
  auto f = mel_filters(g.n_mels);
  ASSERT_OK(f);
  const std::vector<float>& w = f.value();
  ASSERT_EQ(w.size(), static_cast<size_t>(g.n_mels) * kBins);
  double total = 0, by_bin = 0, by_row = 0, max_value = 0;
  int nonzero = 0;
  int previous_peak = -1;
  for (int m = 0; m < g.n_mels; ++m) {
    const float* row = w.data() + static_cast<size_t>(m) * kBins;
    int peak = 0;
    double row_sum = 0;
    for (int b = 0; b < kBins; ++b) {
      EXPECT_GE(row[b], 0.0f) << "row " << m << " bin " << b;
      total += row[b];
      row_sum += row[b];
      by_bin += row[b] * (b + 1.0);
      by_row += row[b] * (m + 1.0);
      max_value = std::max(max_value, static_cast<double>(row[b]));
      nonzero += row[b] > 0.0f;
      if (row[b] > row[peak]) peak = b;
    }
    EXPECT_GT(row_sum, 0.0) << "row " << m << " is empty";
    EXPECT_EQ(peak, g.argmax[static_cast<size_t>(m)]) << "peak bin of row " << m;
    EXPECT_GE(peak, previous_peak) << "peaks must not move down with the row index (row " << m << ")";
    previous_peak = peak;
    if (g.n_mels == 80) {
      // Slaney normalisation: each triangle has unit area in Hz; with 40 Hz per bin the
      // discrete row sums are close to 1/40 at this resolution.
      EXPECT_NEAR(row_sum * 40.0, 1.0, 0.1) << "row " << m;
    }
  }
  EXPECT_NEAR(total, g.total, 1e-6 * g.total);
  EXPECT_NEAR(by_bin, g.by_bin, 1e-6 * g.by_bin);
  EXPECT_NEAR(by_row, g.by_row, 1e-6 * g.by_row);
  EXPECT_NEAR(max_value, g.max_value, 1e-7 * g.max_value);
  EXPECT_EQ(nonzero, g.nonzero);
}

// STFT power of frame f by definition: torch.stft(center=True, pad_mode="reflect") of x
// followed by `zero_pad` zeros, periodic Hann window, |X[b]|^2 by a direct DFT in double,
// then the mel filters. Written independently of mel.cc's FFT and index arithmetic.
std::vector<double> reference_mel_power(const std::vector<float>& filters, int n_mels, const std::vector<float>& x,
                                        int64_t zero_pad, int64_t f) {
  std::vector<double> sig(x.begin(), x.end());
  sig.resize(x.size() + static_cast<size_t>(zero_pad), 0.0);
  const int64_t total = static_cast<int64_t>(sig.size());
  const int64_t pad = kNFft / 2;
  // Explicit reflect padding: [s[pad] .. s[1]] + s + [s[total-2] .. s[total-1-pad]].
  std::vector<double> padded;
  for (int64_t i = pad; i >= 1; --i) padded.push_back(sig[static_cast<size_t>(i)]);
  padded.insert(padded.end(), sig.begin(), sig.end());
  for (int64_t i = total - 2; i >= total - 1 - pad; --i) padded.push_back(sig[static_cast<size_t>(i)]);
  std::vector<double> power(kBins);
  for (int b = 0; b < kBins; ++b) {
    std::complex<double> acc = 0.0;
    for (int j = 0; j < kNFft; ++j) {
      const double hann = 0.5 - 0.5 * std::cos(2.0 * kPi * j / kNFft);
      const double v = padded[static_cast<size_t>(f * kHopLength + j)] * hann;
      acc += v * std::polar(1.0, -2.0 * kPi * b * j / kNFft);
    }
    power[b] = std::norm(acc);
  }
  std::vector<double> mel(static_cast<size_t>(n_mels), 0.0);
  for (int m = 0; m < n_mels; ++m) {
    for (int b = 0; b < kBins; ++b) mel[m] += filters[static_cast<size_t>(m) * kBins + b] * power[b];
  }
  return mel;
}

std::vector<float> test_signal(int64_t n, uint64_t seed) {
  wg_test::Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    x[static_cast<size_t>(i)] = static_cast<float>(0.3 * std::sin(2.0 * kPi * 440.0 * i / kSampleRate) +
                                                   0.05 * rng.uniform(-1.0, 1.0));
  }
  return x;
}

}  // namespace

TEST(LogMel, MelFilters80MatchLibrosa) { check_filters(kGolden80); }

TEST(LogMel, MelFilters128MatchLibrosa) { check_filters(kGolden128); }

TEST(LogMel, MelFiltersRejectOtherSizes) {
  for (int n : {-1, 0, 1, 40, 79, 81, 127, 129, 256}) {
    EXPECT_STATUS(mel_filters(n), StatusCode::kInvalidArgument) << "n_mels " << n;
    EXPECT_NOT_OK(MelFrontEnd::create(n)) << "n_mels " << n;
  }
}

TEST(LogMel, FrameCountIsSamplesOverHop) {
  auto fe = front_end(80);
  ASSERT_TRUE(fe != nullptr);
  for (int64_t n : {0, 1, 159, 160, 161, 399, 400, 401, 1000, 16000, 16159}) {
    EXPECT_EQ(MelFrontEnd::frame_count(n), n / 160);
    for (int64_t pad : {0, 37, 1000}) {  // openai's 480000 is covered by the MelWindows tests
      std::vector<float> x = test_signal(n, 1);
      auto mel = log_mel_spectrogram(*fe, x.data(), n, pad, nullptr);
      ASSERT_OK(mel);
      EXPECT_EQ(mel.value().size(), static_cast<size_t>(80 * ((n + pad) / 160))) << "n " << n << " pad " << pad;
      for (float v : mel.value()) {
        if (!std::isfinite(v)) {
          EXPECT_TRUE(std::isfinite(v)) << "n " << n << " pad " << pad;
          break;
        }
      }
    }
  }
  EXPECT_NOT_OK(log_mel_spectrogram(*fe, nullptr, -1, 0, nullptr));
  EXPECT_NOT_OK(log_mel_spectrogram(*fe, nullptr, 0, -1, nullptr));
}

// The FFT, the reflect padding (first and last frames, with and without trailing zeros) and
// the filters, against a direct DFT.
TEST(LogMel, MelPowerMatchesDirectDft) {
  for (int n_mels : {80, 128}) {
    auto fe = front_end(n_mels);
    ASSERT_TRUE(fe != nullptr);
    auto filters = mel_filters(n_mels);
    ASSERT_OK(filters);
    const std::vector<float> x = test_signal(4000, 7);
    for (int64_t zero_pad : {0, 1000}) {
      const int64_t frames = MelFrontEnd::frame_count(4000 + zero_pad);
      std::vector<float> out(static_cast<size_t>(n_mels) * frames);
      fe->mel_power(x.data(), 4000, zero_pad, 0, frames, out.data(), frames, nullptr);
      for (int64_t f = 0; f < frames; f += (f < 3 || f > frames - 4) ? 1 : 5) {
        const std::vector<double> ref = reference_mel_power(filters.value(), n_mels, x, zero_pad, f);
        const double scale = *std::max_element(ref.begin(), ref.end());
        for (int m = 0; m < n_mels; ++m) {
          EXPECT_NEAR(out[static_cast<size_t>(m) * frames + f], ref[m], 1e-5 * ref[m] + 1e-7 * scale)
              << "n_mels " << n_mels << " pad " << zero_pad << " frame " << f << " mel " << m;
        }
        if (wg_test::failure_count() > 10) return;
      }
    }
  }
}

// A sine exactly on FFT bin k (f = k * 40 Hz) through a periodic Hann window has power only in
// bins k-1, k, k+1, in the ratio 1 : 4 : 1, with |X[k]| = a * N / 4. So every full frame has
// mel power 2500 a^2 (w[m][k] + (w[m][k-1] + w[m][k+1]) / 4) exactly, and the log-mel
// spectrogram peaks in the row where that is largest.
TEST(LogMel, SinePeaksInTheRightMelBin) {
  const double a = 0.5;
  for (int n_mels : {80, 128}) {
    auto fe = front_end(n_mels);
    ASSERT_TRUE(fe != nullptr);
    auto filters = mel_filters(n_mels);
    ASSERT_OK(filters);
    const std::vector<float>& w = filters.value();
    for (int k : {25, 75, 150}) {  // 1000 Hz, 3000 Hz, 6000 Hz
      const int64_t n = kSampleRate;  // 1 s
      std::vector<float> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = static_cast<float>(a * std::sin(2.0 * kPi * k * i / kNFft));
      std::vector<double> expected(static_cast<size_t>(n_mels));
      int expected_bin = 0;
      for (int m = 0; m < n_mels; ++m) {
        const float* row = w.data() + static_cast<size_t>(m) * kBins;
        expected[m] = (a * kNFft / 4) * (a * kNFft / 4) * (row[k] + 0.25 * (row[k - 1] + row[k + 1]));
        if (expected[m] > expected[expected_bin]) expected_bin = m;
      }
      const double peak = expected[expected_bin];
      ASSERT_GT(peak, 0.0);

      const int64_t frames = MelFrontEnd::frame_count(n);
      std::vector<float> power(static_cast<size_t>(n_mels) * frames);
      fe->mel_power(x.data(), n, 0, 0, frames, power.data(), frames, nullptr);
      auto log_mel = log_mel_spectrogram(*fe, x.data(), n, 0, nullptr);
      ASSERT_OK(log_mel);
      // Frames 2 .. frames - 3 lie entirely inside the signal (no reflect padding).
      for (int64_t f = 2; f < frames - 2; ++f) {
        int got_bin = 0;
        for (int m = 0; m < n_mels; ++m) {
          EXPECT_NEAR(power[static_cast<size_t>(m) * frames + f], expected[m], 2e-5 * expected[m] + 1e-6 * peak)
              << "n_mels " << n_mels << " k " << k << " frame " << f << " mel " << m;
          if (log_mel.value()[static_cast<size_t>(m) * frames + f] > log_mel.value()[static_cast<size_t>(got_bin) * frames + f]) {
            got_bin = m;
          }
        }
        EXPECT_EQ(got_bin, expected_bin) << "n_mels " << n_mels << " k " << k << " frame " << f;
        if (wg_test::failure_count() > 10) return;
      }
      // Normalisation: the peak is log10(max power), and nothing is below max - 8.
      const float top = *std::max_element(log_mel.value().begin(), log_mel.value().end());
      const float bottom = *std::min_element(log_mel.value().begin(), log_mel.value().end());
      // Far from the tone only rounding noise is left (> 8 decades down): the floor is reached.
      EXPECT_NEAR(bottom, top - 2.0f, 1e-5);  // (max - 8 + 4) / 4 = top - 2
      EXPECT_NEAR(top, (std::log10(peak) + 4.0) / 4.0, 1e-3);
    }
  }
}

TEST(LogMel, MelWindowsEqualSlicesOfTheFullSpectrogram) {
  auto fe = front_end(80);
  ASSERT_TRUE(fe != nullptr);
  ThreadPool pool(2);
  const int64_t n = 2 * kSampleRate + 123;
  const std::vector<float> x = test_signal(n, 3);
  auto full = log_mel_spectrogram(*fe, x.data(), n, kNSamples, &pool);
  ASSERT_OK(full);
  const int64_t frames = MelFrontEnd::frame_count(n + kNSamples);
  ASSERT_EQ(full.value().size(), static_cast<size_t>(80 * frames));

  auto windows = MelWindows::create(fe, x.data(), n, &pool);
  ASSERT_OK(windows);
  const MelWindows& mw = windows.value();
  EXPECT_EQ(mw.content_frames(), n / kHopLength);
  EXPECT_EQ(mw.n_mels(), 80);
  const float full_max = *std::max_element(full.value().begin(), full.value().end());
  EXPECT_NEAR((mw.global_max_log10() + 4.0f) / 4.0f, full_max, 1e-6);

  const int64_t content = mw.content_frames();
  // (seek, size, with the pool): windows over content and padding, ending in the padding,
  // partly and wholly past the end, and empty.
  const struct {
    int64_t seek, size;
    bool pool;
  } cases[] = {
      {0, kNFrames, true},   {0, 0, false},           {137, 1000, false},         {content - 100, kNFrames, false},
      {content, 50, false},  {frames - 10, kNFrames, true}, {frames - 1, 1, false}, {frames, kNFrames, false},
      {frames + 500, 20, false}, {content - 1, 1, false}, {2999, kNFrames, false},
  };
  std::vector<float> out(80 * static_cast<size_t>(kNFrames));
  for (const auto& [seek, size, use_pool] : cases) {
    ThreadPool* p = use_pool ? &pool : nullptr;
    std::fill(out.begin(), out.end(), 12345.0f);  // must all be overwritten
    ASSERT_OK(mw.window(seek, size, out.data(), p));
    int64_t mismatches = 0;
    for (int m = 0; m < 80; ++m) {
      for (int64_t c = 0; c < kNFrames; ++c) {
        const int64_t f = seek + c;
        const float expected = (c < size && f < frames) ? full.value()[static_cast<size_t>(m * frames + f)] : 0.0f;
        const float got = out[static_cast<size_t>(m * kNFrames + c)];
        if (got != expected) {
          if (++mismatches <= 3) {
            EXPECT_EQ(got, expected) << "seek " << seek << " size " << size << " mel " << m << " column " << c;
          }
        }
      }
    }
    EXPECT_EQ(mismatches, 0) << "seek " << seek << " size " << size << (use_pool ? " with pool" : " without pool");
  }
}

// An empty signal, and out-of-range windows. No frames without padding; with openai's 30 s of padding every value is
// the floor, (log10(1e-10) + 4) / 4 = -1.5.
TEST(LogMel, EmptySignalAndWindowErrors) {
  auto fe = front_end(80);
  ASSERT_TRUE(fe != nullptr);
  auto none = log_mel_spectrogram(*fe, nullptr, 0, 0, nullptr);
  ASSERT_OK(none);
  EXPECT_EQ(none.value().size(), 0u);

  auto windows = MelWindows::create(fe, nullptr, 0, nullptr);
  ASSERT_OK(windows);
  EXPECT_EQ(windows.value().content_frames(), 0);
  EXPECT_NEAR(windows.value().global_max_log10(), -10.0, 1e-6);
  std::vector<float> out(80 * static_cast<size_t>(kNFrames), 7.0f);
  ASSERT_OK(windows.value().window(0, kNFrames, out.data(), nullptr));
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] != -1.5f) {
      EXPECT_EQ(out[i], -1.5f) << "index " << i;
      break;
    }
  }

  // Out-of-range windows are errors (0 <= seek, 0 <= size <= 3000), as is an empty MelWindows.
  EXPECT_STATUS(windows.value().window(-1, 100, out.data(), nullptr), StatusCode::kInvalidArgument);
  EXPECT_STATUS(windows.value().window(0, -1, out.data(), nullptr), StatusCode::kInvalidArgument);
  EXPECT_STATUS(windows.value().window(0, kNFrames + 1, out.data(), nullptr), StatusCode::kInvalidArgument);
  EXPECT_NOT_OK(MelWindows().window(0, 10, out.data(), nullptr));  // default-constructed: no front end
  EXPECT_NOT_OK(MelWindows::create(nullptr, nullptr, 0, nullptr));
  EXPECT_NOT_OK(MelWindows::create(fe, nullptr, -1, nullptr));
}
