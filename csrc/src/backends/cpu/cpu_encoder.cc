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
  return b;
}

Status CpuEncoderBackend::set_positions(int64_t positions) {
  const int64_t all = encoder_->dims().n_audio_ctx;
  if (positions < 1 || positions > all) {
    return invalid_argument("encoder positions must be 1.." + std::to_string(all) + ", got " + std::to_string(positions));
  }
  positions_ = positions;
  return Status::Ok();
}

StatusOr<EncoderStates> CpuEncoderBackend::run() {
  const int64_t positions = positions_ > 0 ? positions_ : encoder_->dims().n_audio_ctx;
  WG_RETURN_IF_ERROR(encoder_->forward(mel_.data(), positions, states_.data(), pool_.get()));
  return EncoderStates{states_.data(), positions, encoder_->dims().n_audio_state};
}

}  // namespace whisper_genio::backends
