#include "replay_encoder.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace whisper_genio::backends {

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f != nullptr) std::fclose(f);
  }
};

}  // namespace

StatusOr<std::unique_ptr<ReplayEncoderBackend>> ReplayEncoderBackend::create(const ReplayConfig& config) {
  WG_RETURN_IF_ERROR(config.dims.validate());
  WG_RETURN_IF_ERROR(config.output.validate());
  if (config.files.empty()) return invalid_argument("replay needs at least one encoder output file");
  const int64_t state_elems = static_cast<int64_t>(config.dims.n_audio_ctx) * config.dims.n_audio_state;
  if (config.output.numel() != state_elems) {
    return invalid_argument("encoder output shape " + shape_string(config.output.shape) + " does not hold the states [" +
                            std::to_string(config.dims.n_audio_ctx) + ", " + std::to_string(config.dims.n_audio_state) +
                            "] this model's decoder takes");
  }
  for (size_t i = 0; i < config.files.size(); ++i) {
    const std::string& f = config.files[i];
    struct stat st;
    if (::stat(f.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return not_found("encoder output file not found: '" + f + "'");
    const size_t got = static_cast<size_t>(st.st_size);
    if (got != config.output.bytes()) {
      return invalid_argument("encoder output file " + f + " (window " + std::to_string(i) +
                              ") has the wrong size for " + config.output.describe() + ": " +
                              describe_size_mismatch(got, config.output) +
                              ". Pass the dtype/shape the DLA really outputs (--encoder-output-dtype, --layout) or the "
                              "model that matches it (--model)");
    }
  }
  std::unique_ptr<ReplayEncoderBackend> b(new ReplayEncoderBackend());
  b->config_ = config;
  if (!b->states_.reset(static_cast<size_t>(state_elems))) {
    return Status(StatusCode::kOutOfMemory, "allocating replay buffers");
  }
  const bool direct = config.output.dtype == IoDType::kFloat32 && !config.output.transposed;
  if (!direct && !b->raw_.reset(config.output.bytes())) return Status(StatusCode::kOutOfMemory, "allocating replay buffers");
  b->states_.zero();
  return b;
}

int64_t ReplayEncoderBackend::window_stride() const { return 2 * static_cast<int64_t>(config_.dims.n_audio_ctx); }

Status ReplayEncoderBackend::seek(int64_t frame) {
  const int64_t stride = window_stride();
  const int64_t window = frame >= 0 ? frame / stride : -1;
  if (frame < 0 || frame % stride != 0 || window >= window_count()) {
    return invalid_argument("a replay of " + std::to_string(window_count()) +
                            " encoder output file(s) holds the 30 s windows starting at frames 0, " +
                            std::to_string(stride) + ", ... (one file each); asked for frame " + std::to_string(frame));
  }
  window_ = window;
  return Status::Ok();
}

StatusOr<EncoderStates> ReplayEncoderBackend::run() {
  const std::string& path = config_.files[static_cast<size_t>(window_)];
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return not_found("cannot open encoder output file '" + path + "'");
  const size_t bytes = config_.output.bytes();
  void* dst = raw_.empty() ? static_cast<void*>(states_.data()) : static_cast<void*>(raw_.data());
  const size_t got = std::fread(dst, 1, bytes, f.get());
  if (got != bytes || std::fgetc(f.get()) != EOF) {
    return invalid_argument("encoder output file " + path + " changed size since it was checked (expected " +
                            std::to_string(bytes) + " bytes for " + config_.output.describe() + ")");
  }
  const ModelDims& d = config_.dims;
  if (!raw_.empty()) dequantize_to_float(raw_.data(), d.n_audio_ctx, d.n_audio_state, config_.output, states_.data());
  // The decoder refuses non-finite states too; here the message can name the file.
  const int64_t n = static_cast<int64_t>(d.n_audio_ctx) * d.n_audio_state;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(states_[static_cast<size_t>(i)])) {
      return runtime_error("encoder output file " + path + " (window " + std::to_string(window_) +
                           ") holds a non-finite value at frame " + std::to_string(i / d.n_audio_state) + ", channel " +
                           std::to_string(i % d.n_audio_state) + ": a broken device output, or read as the wrong " +
                           "format (" + config_.output.describe() + ")");
    }
  }
  return EncoderStates{states_.data(), d.n_audio_ctx, d.n_audio_state};
}

}  // namespace whisper_genio::backends
