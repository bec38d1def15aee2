// Glue of the native data path for one window: mel straight into the encoder backend's
// input buffer, encoder states straight into the decoder's cross-attention. No copies in
// between; the caller (Python's transcribe loop) only chooses seek and size.
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

// Writes the mel window [seek, seek + size) into encoder.mel_buffer(), runs the encoder and
// hands its states to the decoder.
Status prepare_window(const MelWindows& mel, int64_t seek, int64_t size, EncoderBackend& encoder, Decoder& decoder,
                      ThreadPool* pool, WindowTimings* timings);

}  // namespace whisper_genio
