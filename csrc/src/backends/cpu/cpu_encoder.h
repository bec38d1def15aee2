// "cpu" encoder backend: the native float32 encoder. Always available; the reference that
// every other backend is validated against.
#pragma once

#include <memory>

#include "../../layers/encoder.h"
#include "whisper_genio/encoder_backend.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio::backends {

class CpuEncoderBackend final : public EncoderBackend {
 public:
  static StatusOr<std::unique_ptr<CpuEncoderBackend>> create(const ModelDims& dims, const TensorMap& tensors,
                                                             std::shared_ptr<ThreadPool> pool,
                                                             ComputeType type = ComputeType::kFloat32);
  std::string name() const override { return "cpu"; }
  const ModelDims& dims() const override { return encoder_->dims(); }
  float* mel_buffer() override { return mel_.data(); }
  StatusOr<EncoderStates> run() override;
  bool variable_positions() const override { return true; }
  Status set_positions(int64_t positions) override {
    positions_ = positions;
    return Status::Ok();
  }
  size_t weight_bytes() const { return encoder_->weight_bytes(); }

 private:
  CpuEncoderBackend() = default;
  std::unique_ptr<layers::AudioEncoder> encoder_;
  std::shared_ptr<ThreadPool> pool_;
  Buffer<float> mel_;
  Buffer<float> states_;
  int64_t positions_ = 0;  // what run() encodes: n_audio_ctx unless set_positions said fewer
};

}  // namespace whisper_genio::backends
