#include "cpu_encoder.h"

namespace whisper_genio::backends {

StatusOr<std::unique_ptr<CpuEncoderBackend>> CpuEncoderBackend::create(const ModelDims& dims, const TensorMap& tensors,
                                                                       std::shared_ptr<ThreadPool> pool,
                                                                       ComputeType type) {
  auto enc = layers::AudioEncoder::create(dims, tensors, type);
  if (!enc.ok()) return enc.status();
  std::unique_ptr<CpuEncoderBackend> b(new CpuEncoderBackend());
  b->encoder_ = std::move(enc).value();
  b->pool_ = std::move(pool);
  const size_t mel = static_cast<size_t>(dims.n_mels) * 2 * dims.n_audio_ctx;
  const size_t states = static_cast<size_t>(dims.n_audio_ctx) * dims.n_audio_state;
  if (!b->mel_.reset(mel) || !b->states_.reset(states)) {
    return Status(StatusCode::kOutOfMemory, "allocating encoder buffers");
  }
  b->mel_.zero();
  b->positions_ = dims.n_audio_ctx;
  return b;
}

StatusOr<EncoderStates> CpuEncoderBackend::run() {
  WG_RETURN_IF_ERROR(encoder_->forward(mel_.data(), positions_, states_.data(), pool_.get()));  // checks the count
  return EncoderStates{states_.data(), positions_, encoder_->dims().n_audio_state};
}

}  // namespace whisper_genio::backends
