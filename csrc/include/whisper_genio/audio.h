// Log-mel front end, numerically matching openai-whisper's `log_mel_spectrogram`:
// periodic Hann window of 400 samples, hop 160, centred frames with reflect padding, the
// last STFT frame dropped, Slaney-normalised mel filters (librosa's), log10 clamped at
// 1e-10, floor at (global max - 8), then (x + 4) / 4.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "whisper_genio/status.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio {

inline constexpr int kSampleRate = 16000;
inline constexpr int kNFft = 400;
inline constexpr int kHopLength = 160;
inline constexpr int kChunkSeconds = 30;
inline constexpr int kNSamples = kChunkSeconds * kSampleRate;  // 480000
inline constexpr int kNFrames = kNSamples / kHopLength;         // 3000

// The longest signal log_mel_spectrogram takes, padding included: it returns the whole
// spectrogram (n_mels x frames floats; four hours at 128 mels is about 0.7 GiB, most of a Genio
// board's free memory). Longer recordings go through MelWindows, whose memory does not grow with
// the length (transcribe() does).
inline constexpr int64_t kMaxMelSamples = int64_t{4} * 3600 * kSampleRate;
// The longest signal MelWindows takes: no memory grows with it, but frame and sample indices
// (times the hop, plus the padding) must stay far inside int64; 2^40 float samples (4 TiB, 2.2
// years of audio) is beyond any real buffer.
inline constexpr int64_t kMaxSignalSamples = int64_t{1} << 40;

// Mel filter bank [n_mels, 201] as librosa.filters.mel(sr=16000, n_fft=400, n_mels) computes
// it (float64 arithmetic, returned as float32). n_mels must be 80 or 128.
StatusOr<std::vector<float>> mel_filters(int n_mels);

// Computes mel power (before the log) frame by frame. Immutable after construction and
// safe to share between threads.
class MelFrontEnd {
 public:
  static StatusOr<std::shared_ptr<const MelFrontEnd>> create(int n_mels);

  int n_mels() const { return n_mels_; }

  // Number of frames openai-whisper produces for n samples (the last STFT frame dropped).
  static int64_t frame_count(int64_t n_samples) { return n_samples / kHopLength; }

  // Mel power of frames [f0, f0 + count) of signal x[0..n) followed by `zero_pad` zeros
  // (the padding openai-whisper appends before the STFT). out is [n_mels, out_stride],
  // frame f written at column f - f0.
  void mel_power(const float* x, int64_t n, int64_t zero_pad, int64_t f0, int64_t count, float* out,
                 int64_t out_stride, ThreadPool* pool) const;

 private:
  MelFrontEnd() = default;
  int n_mels_ = 0;
  std::vector<double> window_;            // periodic Hann, 400
  std::vector<float> filters_;            // [n_mels, 201]
  std::vector<int> filter_begin_, filter_end_;  // non-zero bin range of each filter
  std::vector<double> twiddles_;          // exp(-2 pi i j / 400) as (re, im)
};

// Full log-mel of x (plus `zero_pad` trailing zeros), normalised with the global maximum:
// returns [n_mels, frame_count(n + zero_pad)] row-major. n + zero_pad <= kMaxMelSamples
// (InvalidArgument otherwise, checked before anything is allocated).
StatusOr<std::vector<float>> log_mel_spectrogram(const MelFrontEnd& fe, const float* x, int64_t n,
                                                 int64_t zero_pad, ThreadPool* pool);

// 30-second windows of a long signal without holding its whole spectrogram: the global
// maximum is found in one pass, then any window is computed on demand. Produces exactly
// what slicing log_mel_spectrogram(x, zero_pad = 480000) and padding with zeros would
// (openai-whisper's transcribe()). The samples are borrowed: they must outlive this object.
class MelWindows {
 public:
  static StatusOr<MelWindows> create(std::shared_ptr<const MelFrontEnd> fe, const float* x, int64_t n,
                                     ThreadPool* pool);
  // One window as openai-whisper's decode() takes it: log_mel_spectrogram(pad_or_trim(x)),
  // normalised by the maximum of those 3000 frames alone; content_frames() is 3000.
  static StatusOr<MelWindows> one_window(std::shared_ptr<const MelFrontEnd> fe, const float* x, int64_t n,
                                         ThreadPool* pool);
  MelWindows() = default;

  // Frames of real audio (what openai-whisper calls content_frames).
  int64_t content_frames() const { return content_frames_; }
  int n_mels() const { return fe_ ? fe_->n_mels() : 0; }
  float global_max_log10() const { return max_log10_; }

  // Writes [n_mels, 3000]: frames [seek, seek + size) normalised, columns >= size zero
  // (openai-whisper's pad_or_trim of the slice). 0 <= seek, 0 <= size <= 3000.
  Status window(int64_t seek, int64_t size, float* out, ThreadPool* pool) const;

 private:
  // x[0..n) followed by zero_pad zeros, total_frames frames, normalised by their maximum.
  static StatusOr<MelWindows> build(std::shared_ptr<const MelFrontEnd> fe, const float* x, int64_t n,
                                    int64_t zero_pad, int64_t content_frames, ThreadPool* pool);
  std::shared_ptr<const MelFrontEnd> fe_;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  int64_t zero_pad_ = 0;
  int64_t total_frames_ = 0;
  int64_t content_frames_ = 0;
  float max_log10_ = 0.0f;
};

}  // namespace whisper_genio
