// The encoder-backend contract: mel window in, encoder states out.
//
// Backends: "cpu" (native, the correctness oracle), and the accelerator backends that plug
// in later ("onnxruntime", "neuron", "replay"). A backend owns its input and output memory
// so that an accelerator can share it with the device: the caller writes the mel straight
// into mel_buffer() and the decoder reads the states where run() left them.
#pragma once

#include <cstdint>
#include <string>

#include "whisper_genio/model.h"
#include "whisper_genio/status.h"

namespace whisper_genio {

struct Availability {
  bool ok = false;
  std::string reason;  // why not, and what to do about it (empty when ok)
};

// A view of encoder states [n_ctx, d] in backend memory, valid until the backend's next
// run() or its destruction. Only float32 today; quantized device outputs will carry their
// dtype, scale and zero point here.
struct EncoderStates {
  const float* data = nullptr;
  int64_t n_ctx = 0;
  int64_t d = 0;
};

class EncoderBackend {
 public:
  virtual ~EncoderBackend() = default;

  virtual std::string name() const = 0;
  // The dimensions this backend was built for.
  virtual const ModelDims& dims() const = 0;

  // Where the caller writes the next mel window: [n_mels, 3000] float32, row-major.
  virtual float* mel_buffer() = 0;

  // Encodes the mel currently in mel_buffer(). Not re-entrant: one run at a time.
  virtual StatusOr<EncoderStates> run() = 0;
};

}  // namespace whisper_genio
