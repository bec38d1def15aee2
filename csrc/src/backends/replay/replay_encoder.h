// "replay" encoder backend: encoder states a device already computed, read back from the raw
// output files `neuronrt` writes on a board (headerless bytes of the DLA's output tensor, C
// order, little-endian). One file is one 30-second window's states, in order. Their dtype,
// scale, zero point and layout come from the model bundle's manifest or from arguments; each
// file's byte size is checked against them up front, and a mismatch says what the size would
// mean instead.
//
// No mel is read: seek() picks the window (file) run() returns; windows start every 3000 frames.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../tensor_io.h"
#include "whisper_genio/buffer.h"
#include "whisper_genio/encoder_backend.h"

namespace whisper_genio::backends {

struct ReplayConfig {
  ModelDims dims;
  std::vector<std::string> files;
  TensorSpec output;  // shape [1, n_ctx, d] / [n_ctx, d]; transposed: [1, d, n_ctx]
};

class ReplayEncoderBackend final : public EncoderBackend {
 public:
  static StatusOr<std::unique_ptr<ReplayEncoderBackend>> create(const ReplayConfig& config);

  std::string name() const override { return "replay"; }
  const ModelDims& dims() const override { return config_.dims; }
  float* mel_buffer() override { return nullptr; }
  // States of the window seek() chose (its file), read and dequantized now.
  StatusOr<EncoderStates> run() override;
  // frame must start a 30 s window held here: file frame / 3000.
  Status seek(int64_t frame) override;
  bool reads_mel() const override { return false; }
  int64_t window_stride() const override;
  int64_t window_count() const override { return static_cast<int64_t>(config_.files.size()); }

  int64_t window() const { return window_; }
  const ReplayConfig& config() const { return config_; }
  const float* states_data() const { return states_.data(); }

 private:
  ReplayEncoderBackend() = default;
  ReplayConfig config_;
  int64_t window_ = 0;
  Buffer<float> states_;
  Buffer<unsigned char> raw_;  // only when the file's dtype/layout needs a conversion
};

}  // namespace whisper_genio::backends
