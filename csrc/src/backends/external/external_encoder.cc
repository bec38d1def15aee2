#include "external_encoder.h"

namespace whisper_genio::backends {

StatusOr<std::unique_ptr<ExternalEncoderBackend>> ExternalEncoderBackend::create(std::string name,
                                                                                 const ModelDims& dims, RunHook hook) {
  WG_RETURN_IF_ERROR(dims.validate());
  if (!hook) return invalid_argument("an external encoder backend needs a run hook");
  std::unique_ptr<ExternalEncoderBackend> b(new ExternalEncoderBackend());
  b->name_ = std::move(name);
  b->dims_ = dims;
  b->hook_ = std::move(hook);
  if (!b->mel_.reset(static_cast<size_t>(dims.n_mels) * 2 * dims.n_audio_ctx) ||
      !b->states_.reset(static_cast<size_t>(dims.n_audio_ctx) * dims.n_audio_state)) {
    return Status(StatusCode::kOutOfMemory, "allocating encoder buffers");
  }
  b->mel_.zero();
  b->states_.zero();
  return b;
}

StatusOr<EncoderStates> ExternalEncoderBackend::run() {
  WG_RETURN_IF_ERROR(hook_());
  return EncoderStates{states_.data(), dims_.n_audio_ctx, dims_.n_audio_state};
}

}  // namespace whisper_genio::backends
