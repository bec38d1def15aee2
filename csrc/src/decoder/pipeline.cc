#include "whisper_genio/pipeline.h"

#include <chrono>

namespace whisper_genio {
namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Status prepare_window(const MelWindows& mel, int64_t seek, int64_t size, EncoderBackend& encoder, Decoder& decoder,
                      ThreadPool* pool, WindowTimings* timings) {
  if (mel.n_mels() != encoder.dims().n_mels) {
    return invalid_argument("mel has " + std::to_string(mel.n_mels()) + " bins, the encoder expects " +
                            std::to_string(encoder.dims().n_mels));
  }
  if (2 * static_cast<int64_t>(encoder.dims().n_audio_ctx) != kNFrames) {
    return invalid_argument("the encoder takes " + std::to_string(2 * encoder.dims().n_audio_ctx) +
                            " mel frames per window, not the " + std::to_string(kNFrames) + " of a 30 s window");
  }
  auto t0 = std::chrono::steady_clock::now();
  WG_RETURN_IF_ERROR(mel.window(seek, size, encoder.mel_buffer(), pool));
  if (timings) timings->mel_seconds += since(t0);
  t0 = std::chrono::steady_clock::now();
  auto states = encoder.run();
  if (!states.ok()) return states.status();
  if (timings) timings->encoder_seconds += since(t0);
  t0 = std::chrono::steady_clock::now();
  WG_RETURN_IF_ERROR(decoder.set_audio(states.value()));
  if (timings) timings->cross_kv_seconds += since(t0);
  return Status::Ok();
}

}  // namespace whisper_genio
