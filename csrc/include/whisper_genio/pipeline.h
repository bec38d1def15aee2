// The one window path: mel -> encoder backend -> decoder cross-attention, without copies in
// between. The mel is written straight into the backend's input buffer and the decoder reads
// the backend's output buffer. Callers (the long-form loop, decode, detect_language, encode)
// only choose where the mel comes from and where the window starts.
#pragma once

#include "whisper_genio/audio.h"
#include "whisper_genio/decoding.h"
#include "whisper_genio/encoder_backend.h"

namespace whisper_genio {

// Wall seconds, and CPU seconds of the whole process (all threads) spent in each stage.
struct WindowTimings {
  double mel_seconds = 0.0;
  double encoder_seconds = 0.0;
  double cross_kv_seconds = 0.0;
  double mel_cpu_seconds = 0.0;
  double encoder_cpu_seconds = 0.0;
  double cross_kv_cpu_seconds = 0.0;
};

// Where a window's mel comes from: frames [seek, seek + size) of a recording's MelWindows, or
// a ready [n_mels, 3000] array (seek then only tells the backend where the window starts).
// Backends that read no mel (replay) need neither.
struct MelSource {
  MelSource() = default;
  MelSource(const MelWindows& w) : windows(&w) {}  // NOLINT: a recording's windows are the usual source
  explicit MelSource(const float* m) : mel(m) {}
  const MelWindows* windows = nullptr;
  const float* mel = nullptr;
};

// Encoder positions for a window trimmed to its audio: its `size` mel frames and a second of the
// padding after them (the model hears the speech end), but at least `min_frames` (Whisper was
// trained on 30 s windows: a few seconds of context transcribe worse), rounded up to whole
// seconds (kTrimPositions), at most n_audio_ctx. min_frames < 0: no trimming (n_audio_ctx,
// openai-whisper's whole window).
constexpr int64_t kTrimPositions = 50;
constexpr int64_t kTrimPadFrames = 100;
int64_t trimmed_positions(int64_t size, int64_t min_frames, const ModelDims& dims);

// Writes the window's mel into encoder.mel_buffer() (when the backend reads one), tells the
// backend where the window starts (EncoderBackend::seek) and how many positions to encode
// (trimmed_positions(size, trim_min_frames): all by default), and runs it. The states stay in
// the backend's memory until its next run.
StatusOr<EncoderStates> encode_window(const MelSource& source, int64_t seek, int64_t size, EncoderBackend& encoder,
                                      ThreadPool* pool, WindowTimings* timings, int64_t trim_min_frames = -1);

// encode_window, then the decoder's cross-attention keys/values from the states in place.
Status prepare_window(const MelSource& source, int64_t seek, int64_t size, EncoderBackend& encoder, Decoder& decoder,
                      ThreadPool* pool, WindowTimings* timings, int64_t trim_min_frames = -1);

}  // namespace whisper_genio
