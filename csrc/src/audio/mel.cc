#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>

#include "whisper_genio/audio.h"

namespace whisper_genio {
namespace {

constexpr int kBins = kNFft / 2 + 1;  // 201
constexpr double kPi = 3.14159265358979323846;

// Slaney mel scale (librosa htk=False).
double hz_to_mel(double f) {
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return f >= min_log_hz ? min_log_mel + std::log(f / min_log_hz) / logstep : f / f_sp;
}

double mel_to_hz(double m) {
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return m >= min_log_mel ? min_log_hz * std::exp(logstep * (m - min_log_mel)) : f_sp * m;
}

using cd = std::complex<double>;

// Complex product written out: std::complex's operator* goes through __muldc3 (inf/nan
// recovery) unless built with -ffast-math, which made it the bulk of the mel's time.
inline cd cmul(cd a, cd b) {
  return cd(a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real());
}

// Mixed-radix decimation-in-time FFT of the 200 = 2 * 4 * 5 * 5 complex points that hold the
// 400 real samples of a frame (even samples real, odd imaginary; split by real_fft_400): each
// level splits into p interleaved sub-sequences and combines them with a p-point DFT.
// tw[j] = exp(-2 pi i j / 400); a level of length n uses every (400 / n)-th entry (tw_stride).
constexpr int kFactors[] = {2, 4, 5, 5};

void fft_level(const cd* in, cd* out, int n, int stride, int level, const cd* tw, int tw_stride) {
  if (n == 1) {
    out[0] = in[0];
    return;
  }
  const int p = kFactors[level];
  const int m = n / p;
  for (int r = 0; r < p; ++r) fft_level(in + r * stride, out + r * m, m, stride * p, level + 1, tw, tw_stride * p);
  // The p-point DFT's roots exp(-2 pi i (r q mod p) / p) = tw[(r q mod p) * m * tw_stride]
  // (m * tw_stride * p == N); r * k * tw_stride < N needs no reduction.
  cd roots[5];
  for (int j = 0; j < p; ++j) roots[j] = tw[j * m * tw_stride];
  cd t[5];
  for (int k = 0; k < m; ++k) {
    t[0] = out[k];
    for (int r = 1; r < p; ++r) t[r] = cmul(out[r * m + k], tw[r * k * tw_stride]);
    for (int q = 0; q < p; ++q) {
      double re = t[0].real(), im = t[0].imag();
      for (int r = 1, j = q; r < p; ++r, j = (j + q) % p) {
        const cd w = roots[j];
        re += t[r].real() * w.real() - t[r].imag() * w.imag();
        im += t[r].real() * w.imag() + t[r].imag() * w.real();
      }
      out[q * m + k] = cd(re, im);
    }
  }
}

// Spectrum bins 0..200 of 400 real samples through one 200-point complex FFT: with
// Z = FFT(x[2n] + i x[2n+1]), X[k] = E[k] + W^k O[k], E = (Z[k] + conj Z[M-k]) / 2,
// O = (Z[k] - conj Z[M-k]) / 2i, W = exp(-2 pi i / 400). Half the work of a 400-point FFT.
void real_fft_400(const double* x, cd* bins, const cd* tw) {
  constexpr int M = kNFft / 2;
  cd z[M], Z[M];
  for (int j = 0; j < M; ++j) z[j] = cd(x[2 * j], x[2 * j + 1]);
  fft_level(z, Z, M, 1, 0, tw, 2);
  for (int k = 0; k <= M; ++k) {
    const cd a = Z[k % M], b = std::conj(Z[(M - k) % M]);
    const cd e = cd(0.5 * (a.real() + b.real()), 0.5 * (a.imag() + b.imag()));
    const cd o = cd(0.5 * (a.imag() - b.imag()), -0.5 * (a.real() - b.real()));  // (a - b) / 2i
    bins[k] = cd(e.real(), e.imag()) + cmul(tw[k], o);
  }
}

}  // namespace

StatusOr<std::vector<float>> mel_filters(int n_mels) {
  if (n_mels != 80 && n_mels != 128) {
    return invalid_argument("n_mels must be 80 or 128, got " + std::to_string(n_mels));
  }
  std::vector<double> fft_freqs(kBins);
  for (int i = 0; i < kBins; ++i) fft_freqs[i] = (kSampleRate / 2.0) * i / (kBins - 1);
  const double mel_max = hz_to_mel(kSampleRate / 2.0);
  std::vector<double> mel_f(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i) mel_f[i] = mel_to_hz(mel_max * i / (n_mels + 1));
  std::vector<float> weights(static_cast<size_t>(n_mels) * kBins);
  for (int i = 0; i < n_mels; ++i) {
    const double fdiff_lo = mel_f[i + 1] - mel_f[i];
    const double fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
    const double enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
    for (int b = 0; b < kBins; ++b) {
      const double lower = -(mel_f[i] - fft_freqs[b]) / fdiff_lo;
      const double upper = (mel_f[i + 2] - fft_freqs[b]) / fdiff_hi;
      const double w = std::max(0.0, std::min(lower, upper));
      weights[static_cast<size_t>(i) * kBins + b] = static_cast<float>(w * enorm);
    }
  }
  return weights;
}

StatusOr<std::shared_ptr<const MelFrontEnd>> MelFrontEnd::create(int n_mels) {
  auto filters = mel_filters(n_mels);
  if (!filters.ok()) return filters.status();
  std::shared_ptr<MelFrontEnd> fe(new MelFrontEnd());
  fe->n_mels_ = n_mels;
  fe->filters_ = std::move(filters).value();
  fe->window_.resize(kNFft);
  for (int i = 0; i < kNFft; ++i) fe->window_[i] = 0.5 - 0.5 * std::cos(2.0 * kPi * i / kNFft);
  fe->twiddles_.resize(2 * kNFft);
  for (int j = 0; j < kNFft; ++j) {
    fe->twiddles_[2 * j] = std::cos(-2.0 * kPi * j / kNFft);
    fe->twiddles_[2 * j + 1] = std::sin(-2.0 * kPi * j / kNFft);
  }
  fe->filter_begin_.resize(n_mels);
  fe->filter_end_.resize(n_mels);
  for (int i = 0; i < n_mels; ++i) {
    const float* w = fe->filters_.data() + static_cast<size_t>(i) * kBins;
    int b0 = 0, b1 = kBins;
    while (b0 < kBins && w[b0] == 0.0f) ++b0;
    while (b1 > b0 && w[b1 - 1] == 0.0f) --b1;
    fe->filter_begin_[i] = b0;
    fe->filter_end_[i] = b1;
  }
  return std::shared_ptr<const MelFrontEnd>(std::move(fe));
}

void MelFrontEnd::mel_power(const float* x, int64_t n, int64_t zero_pad, int64_t f0, int64_t count, float* out,
                            int64_t out_stride, ThreadPool* pool) const {
  const int64_t total = n + zero_pad;  // length of the padded signal
  const cd* tw = reinterpret_cast<const cd*>(twiddles_.data());
  // Sample i of the padded signal, itself reflect-padded by 200 at both ends (torch.stft
  // center=True, pad_mode="reflect").
  auto sample = [&](int64_t i) -> double {
    if (total <= 1) return (n > 0) ? static_cast<double>(x[0]) : 0.0;
    // Reflect until inside (more than once only for signals shorter than the pad).
    while (i < 0 || i >= total) i = i < 0 ? -i : 2 * (total - 1) - i;
    return i < n ? static_cast<double>(x[i]) : 0.0;
  };
  auto body = [&](int64_t c0, int64_t c1) {
    double frame[kNFft];
    cd spec[kBins];
    double power[kBins];
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t start = (f0 + c) * kHopLength - kNFft / 2;
      if (start >= 0 && start + kNFft <= n) {  // interior frame: no reflection, no padding
        for (int j = 0; j < kNFft; ++j) frame[j] = static_cast<double>(x[start + j]) * window_[j];
      } else {
        for (int j = 0; j < kNFft; ++j) frame[j] = sample(start + j) * window_[j];
      }
      // A frame of zeros (the 30 s padding after short clips, digital silence) has zero
      // power in every band: skip its FFT. Exact, and most of the mel work for short clips.
      if (std::all_of(frame, frame + kNFft, [](double v) { return v == 0.0; })) {
        for (int m = 0; m < n_mels_; ++m) out[m * out_stride + c] = 0.0f;
        continue;
      }
      real_fft_400(frame, spec, tw);
      for (int b = 0; b < kBins; ++b) power[b] = spec[b].real() * spec[b].real() + spec[b].imag() * spec[b].imag();
      for (int m = 0; m < n_mels_; ++m) {
        const float* w = filters_.data() + static_cast<size_t>(m) * kBins;
        double s = 0.0;
        for (int b = filter_begin_[m]; b < filter_end_[m]; ++b) s += w[b] * power[b];
        out[m * out_stride + c] = static_cast<float>(s);
      }
    }
  };
  if (pool != nullptr && count >= 64) pool->parallel_for(count, 32, body); else body(0, count);
}

namespace {

inline float normalise(float power, float max_log10) {
  float v = std::log10(std::max(power, 1e-10f));
  v = std::max(v, max_log10 - 8.0f);
  return (v + 4.0f) / 4.0f;
}

}  // namespace

StatusOr<std::vector<float>> log_mel_spectrogram(const MelFrontEnd& fe, const float* x, int64_t n,
                                                 int64_t zero_pad, ThreadPool* pool) {
  if (n < 0 || zero_pad < 0) return invalid_argument("negative signal length");
  if (n > kMaxMelSamples || zero_pad > kMaxMelSamples - n) {
    return invalid_argument("log-mel spectrogram of " + std::to_string(n) + " samples plus " + std::to_string(zero_pad) +
                            " samples of padding: at most " + std::to_string(kMaxMelSamples) +
                            " in all (4 hours at 16 kHz) are computed at once; longer recordings go through "
                            "MelWindows (transcribe)");
  }
  const int64_t frames = MelFrontEnd::frame_count(n + zero_pad);
  std::vector<float> out;
  try {
    out.resize(static_cast<size_t>(fe.n_mels()) * static_cast<size_t>(frames));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "log-mel spectrogram of " + std::to_string(frames) + " frames");
  }
  if (frames == 0) return out;
  fe.mel_power(x, n, zero_pad, 0, frames, out.data(), frames, pool);
  float max_power = 0.0f;
  for (float v : out) max_power = std::max(max_power, v);
  const float max_log10 = std::log10(std::max(max_power, 1e-10f));
  for (float& v : out) v = normalise(v, max_log10);
  return out;
}

namespace {

Status check_signal_length(int64_t n) {
  if (n < 0) return invalid_argument("negative signal length");
  if (n > kMaxSignalSamples) {
    return invalid_argument("signal of " + std::to_string(n) + " samples: at most " + std::to_string(kMaxSignalSamples) +
                            " are taken");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<MelWindows> MelWindows::create(std::shared_ptr<const MelFrontEnd> fe, const float* x, int64_t n,
                                        ThreadPool* pool) {
  WG_RETURN_IF_ERROR(check_signal_length(n));
  return build(std::move(fe), x, n, kNSamples, MelFrontEnd::frame_count(n + kNSamples) - kNFrames, pool);
}

StatusOr<MelWindows> MelWindows::one_window(std::shared_ptr<const MelFrontEnd> fe, const float* x, int64_t n,
                                            ThreadPool* pool) {
  WG_RETURN_IF_ERROR(check_signal_length(n));
  const int64_t kept = std::min<int64_t>(n, kNSamples);
  return build(std::move(fe), x, kept, kNSamples - kept, kNFrames, pool);
}

StatusOr<MelWindows> MelWindows::build(std::shared_ptr<const MelFrontEnd> fe, const float* x, int64_t n,
                                       int64_t zero_pad, int64_t content_frames, ThreadPool* pool) {
  if (!fe) return invalid_argument("no mel front end");
  MelWindows w;
  w.fe_ = std::move(fe);
  w.x_ = x;
  w.n_ = n;
  w.zero_pad_ = zero_pad;
  const int64_t frames = MelFrontEnd::frame_count(n + zero_pad);
  w.total_frames_ = frames;
  w.content_frames_ = content_frames;
  // log10 is monotonic, so the global maximum of the log spectrum is log10 of the maximum
  // power: one streaming pass in blocks, nothing kept.
  const int64_t block = 4 * kNFrames;
  std::vector<float> buf(static_cast<size_t>(w.fe_->n_mels()) * block);
  float max_power = 0.0f;
  for (int64_t f0 = 0; f0 < frames; f0 += block) {
    const int64_t count = std::min(block, frames - f0);
    w.fe_->mel_power(x, n, zero_pad, f0, count, buf.data(), block, pool);
    for (int m = 0; m < w.fe_->n_mels(); ++m) {
      const float* row = buf.data() + static_cast<size_t>(m) * block;
      for (int64_t c = 0; c < count; ++c) max_power = std::max(max_power, row[c]);
    }
  }
  w.max_log10_ = std::log10(std::max(max_power, 1e-10f));
  return w;
}

Status MelWindows::window(int64_t seek, int64_t size, float* out, ThreadPool* pool) const {
  if (!fe_) return invalid_argument("MelWindows is empty");
  if (seek < 0 || size < 0 || size > kNFrames) {
    return invalid_argument("mel window out of range: seek " + std::to_string(seek) + ", size " + std::to_string(size));
  }
  const int64_t valid = std::max<int64_t>(0, std::min(size, total_frames_ - seek));
  const int n_mels = fe_->n_mels();
  if (valid > 0) fe_->mel_power(x_, n_, zero_pad_, seek, valid, out, kNFrames, pool);
  for (int m = 0; m < n_mels; ++m) {
    float* row = out + static_cast<size_t>(m) * kNFrames;
    for (int64_t c = 0; c < valid; ++c) row[c] = normalise(row[c], max_log10_);
    for (int64_t c = valid; c < kNFrames; ++c) row[c] = 0.0f;
  }
  return Status::Ok();
}

}  // namespace whisper_genio
