// An encoder backend whose run() is supplied from outside the core (the Python "onnxruntime"
// backend): the core owns the mel and states buffers, the hook reads the mel and writes the
// states in place (ONNX Runtime binds both buffers with IOBinding), so the decoder reads the
// states where the hook left them, as with every other backend.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "whisper_genio/buffer.h"
#include "whisper_genio/encoder_backend.h"

namespace whisper_genio::backends {

class ExternalEncoderBackend final : public EncoderBackend {
 public:
  using RunHook = std::function<Status()>;

  static StatusOr<std::unique_ptr<ExternalEncoderBackend>> create(std::string name, const ModelDims& dims, RunHook hook);

  std::string name() const override { return name_; }
  const ModelDims& dims() const override { return dims_; }
  float* mel_buffer() override { return mel_.data(); }
  StatusOr<EncoderStates> run() override;

  float* states_buffer() { return states_.data(); }
  size_t mel_size() const { return mel_.size(); }
  size_t states_size() const { return states_.size(); }

 private:
  ExternalEncoderBackend() = default;
  std::string name_;
  ModelDims dims_;
  RunHook hook_;
  Buffer<float> mel_;
  Buffer<float> states_;
};

}  // namespace whisper_genio::backends
