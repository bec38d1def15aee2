// "replay" encoder backend: encoder states a device already computed, read back from the raw
// output files `neuronrt` writes on a board (headerless bytes of the DLA's output tensor, C
// order, little-endian). One file is one 30-second window's states, in order. Their dtype,
// scale, zero point and layout come from the model bundle's manifest or from arguments; each
// file's byte size is checked against them up front, and a mismatch says what the size would
// mean instead.
//
// The mel is ignored (mel_buffer() is scratch): select(i) chooses which file run() returns.
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
  float* mel_buffer() override { return mel_scratch_.data(); }
  // States of the selected window (file), read and dequantized now.
  StatusOr<EncoderStates> run() override;

  Status select(int64_t window);
  int64_t window() const { return window_; }
  int64_t window_count() const { return static_cast<int64_t>(config_.files.size()); }
  const ReplayConfig& config() const { return config_; }
  const float* states_data() const { return states_.data(); }

 private:
  ReplayEncoderBackend() = default;
  ReplayConfig config_;
  int64_t window_ = 0;
  Buffer<float> mel_scratch_;
  Buffer<float> states_;
  Buffer<unsigned char> raw_;  // only when the file's dtype/layout needs a conversion
};

}  // namespace whisper_genio::backends
