#include "whisper_genio/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>

namespace whisper_genio {
namespace {

double process_cpu_seconds() {
  timespec ts{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0.0;
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Adds the wall and CPU time since construction to two counters when stopped.
class StageClock {
 public:
  StageClock() : wall_(std::chrono::steady_clock::now()), cpu_(process_cpu_seconds()) {}
  void stop(double* wall, double* cpu) const {
    *wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count();
    *cpu += process_cpu_seconds() - cpu_;
  }

 private:
  std::chrono::steady_clock::time_point wall_;
  double cpu_;
};

Status write_mel(const MelSource& source, int64_t seek, int64_t size, EncoderBackend& encoder, ThreadPool* pool) {
  const ModelDims& dims = encoder.dims();
  if (2 * static_cast<int64_t>(dims.n_audio_ctx) != kNFrames) {
    return invalid_argument("the encoder takes " + std::to_string(2 * dims.n_audio_ctx) +
                            " mel frames per window, not the " + std::to_string(kNFrames) + " of a 30 s window");
  }
  float* dst = encoder.mel_buffer();
  if (dst == nullptr) return internal_error(encoder.name() + " reads a mel but has no mel buffer");
  if (source.mel != nullptr) {
    std::memcpy(dst, source.mel, static_cast<size_t>(dims.n_mels) * kNFrames * sizeof(float));
    return Status::Ok();
  }
  if (source.windows == nullptr) return invalid_argument("the " + encoder.name() + " encoder needs audio (a mel)");
  if (source.windows->n_mels() != dims.n_mels) {
    return invalid_argument("mel has " + std::to_string(source.windows->n_mels()) + " bins, the encoder expects " +
                            std::to_string(dims.n_mels));
  }
  return source.windows->window(seek, size, dst, pool);
}

}  // namespace

int64_t trimmed_positions(int64_t size, int64_t min_frames, const ModelDims& dims) {
  const int64_t all = dims.n_audio_ctx;
  if (min_frames < 0) return all;
  const int64_t frames = std::max(std::clamp<int64_t>(size, 0, 2 * all) + kTrimPadFrames,
                                  std::min<int64_t>(min_frames, 2 * all));
  const int64_t positions = (frames + 1) / 2;
  const int64_t rounded = (positions + kTrimPositions - 1) / kTrimPositions * kTrimPositions;
  return std::clamp<int64_t>(rounded, std::min<int64_t>(kTrimPositions, all), all);
}

StatusOr<EncoderStates> encode_window(const MelSource& source, int64_t seek, int64_t size, EncoderBackend& encoder,
                                      ThreadPool* pool, WindowTimings* timings, int64_t trim_min_frames) {
  WindowTimings scratch;
  WindowTimings* t = timings != nullptr ? timings : &scratch;
  WG_RETURN_IF_ERROR(encoder.seek(seek));
  WG_RETURN_IF_ERROR(encoder.set_positions(trimmed_positions(size, trim_min_frames, encoder.dims())));
  if (encoder.reads_mel()) {
    StageClock mel_clock;
    WG_RETURN_IF_ERROR(write_mel(source, seek, size, encoder, pool));
    mel_clock.stop(&t->mel_seconds, &t->mel_cpu_seconds);
  }
  StageClock encoder_clock;
  auto states = encoder.run();
  encoder_clock.stop(&t->encoder_seconds, &t->encoder_cpu_seconds);
  return states;
}

Status prepare_window(const MelSource& source, int64_t seek, int64_t size, EncoderBackend& encoder, Decoder& decoder,
                      ThreadPool* pool, WindowTimings* timings, int64_t trim_min_frames) {
  WindowTimings scratch;
  WindowTimings* t = timings != nullptr ? timings : &scratch;
  auto states = encode_window(source, seek, size, encoder, pool, t, trim_min_frames);
  if (!states.ok()) return states.status();
  StageClock cross_clock;
  WG_RETURN_IF_ERROR(decoder.set_audio(states.value()));
  cross_clock.stop(&t->cross_kv_seconds, &t->cross_kv_cpu_seconds);
  return Status::Ok();
}

}  // namespace whisper_genio
