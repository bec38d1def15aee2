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

  // Where the caller writes the next mel window: [n_mels, 3000] float32, row-major. Null when
  // reads_mel() is false.
  virtual float* mel_buffer() = 0;

  // Encodes the mel currently in mel_buffer(). Not re-entrant: one run at a time.
  virtual StatusOr<EncoderStates> run() = 0;

  // Where the next window starts in the recording, in mel frames, told before the mel is
  // written. Backends that encode the mel ignore it; "replay", which answers run() from a
  // device's output files, picks the file here and refuses a window it does not hold.
  virtual Status seek(int64_t frame) {
    (void)frame;
    return Status::Ok();
  }
  // False for backends whose run() does not read mel_buffer() (replay): no mel is computed.
  virtual bool reads_mel() const { return true; }
  // Frames between the starts of the windows this backend can encode: 0 = any start (the
  // seek pointer moves freely); replay: 3000, one whole 30 s window per file.
  virtual int64_t window_stride() const { return 0; }
  // Windows the backend holds (replay: its files); -1 = as many as the audio has.
  virtual int64_t window_count() const { return -1; }

  // How many encoder positions the following run()s compute: n_audio_ctx (a whole 30 s window,
  // the default), or fewer where variable_positions() (the window's start only, see
  // trimmed_positions). Backends compiled for one shape (an NPU, an exported graph) refuse.
  virtual bool variable_positions() const { return false; }
  virtual Status set_positions(int64_t positions) {
    if (positions == dims().n_audio_ctx) return Status::Ok();
    return invalid_argument("the " + name() + " encoder runs whole 30 s windows (" + std::to_string(dims().n_audio_ctx) +
                            " positions) only: a trimmed window needs the cpu encoder");
  }
};

}  // namespace whisper_genio
