// "neuron" encoder backend: a Whisper encoder compiled to a DLA (ncc-tflite), run on the
// MDLA through the Neuron runtime (V2 `run` where the runtime has it, else the V1 API).
//
// Memory: the DLA's input and output buffers are allocated once per model, from a dma-heap
// when the board has one (the fd goes to the runtime) and from ordinary memory otherwise.
//   - float32 input in the host layout: mel_buffer() IS the DLA input buffer (the mel is
//     written there once, in place);
//   - float16/int8/uint8/int16 (or transposed) input: mel_buffer() is a float staging buffer
//     that run() quantizes into the DLA input buffer (one native pass per window);
//   - float32 output in the host layout: the EncoderStates view points at the DLA output
//     buffer itself: the decoder reads it in place, no copy;
//   - any other output dtype/layout: run() dequantizes once into a model-owned float buffer.
// Nothing is allocated per call. The DLA's byte sizes are checked against the manifest's
// shapes and dtypes at creation; a mismatch is refused with what differs.
#pragma once

#include <memory>
#include <string>

#include "../tensor_io.h"
#include "dma_buffer.h"
#include "neuron_library.h"
#include "runtime.h"
#include "whisper_genio/buffer.h"
#include "whisper_genio/encoder_backend.h"

namespace whisper_genio::backends {

struct NeuronEncoderConfig {
  using Api = neuron::ApiChoice;

  std::string dla_path;
  ModelDims dims;
  TensorSpec input;   // mel: [1, n_mels, 3000] (or [n_mels, 3000]); transposed = [1, 3000, n_mels]
  TensorSpec output;  // states: [1, n_ctx, d]; transposed = [1, d, n_ctx]
  Api api = Api::kAuto;
  bool set_qos = false;
  neuron::QoS qos;
  std::string dma_heap;       // "" = host memory only (see default_dma_heap())
  bool rebind_each_run = true;  // V1: setInput/setOutput (same buffers) before every inference
  int cpu_threads = 1;          // EnvOptions.CPUThreadNum (ignored from NP7 on)
  bool self_test = true;        // at creation: a changed input must change the output
  neuron::LoadOptions library;

  // The float32, host-layout specs a model of these dims takes (the --relax-fp32 DLA's I/O).
  static TensorSpec default_input(const ModelDims& dims);
  static TensorSpec default_output(const ModelDims& dims);
};

class NeuronEncoderBackend final : public EncoderBackend {
 public:
  static StatusOr<std::unique_ptr<NeuronEncoderBackend>> create(const NeuronEncoderConfig& config);
  ~NeuronEncoderBackend() override;

  std::string name() const override { return "neuron"; }
  const ModelDims& dims() const override { return config_.dims; }
  float* mel_buffer() override;
  StatusOr<EncoderStates> run() override;

  // Two different inputs must give two different outputs (guards against a runtime that
  // latches its input at the first inference). Leaves the mel buffer zeroed.
  Status self_test();

  const char* api_name() const { return rt_->api_name(); }
  const neuron::NeuronLibrary& library() const { return rt_->library(); }
  const NeuronEncoderConfig& config() const { return config_; }
  const DmaBuffer& input_buffer() const { return input_; }
  const DmaBuffer& output_buffer() const { return output_; }
  bool input_zero_copy() const { return mel_staging_.empty(); }
  bool output_zero_copy() const { return states_.empty(); }
  const float* states_data() const { return output_zero_copy() ? static_cast<const float*>(output_.data()) : states_.data(); }
  uint64_t runs() const { return runs_; }
  const std::string& notes() const { return notes_; }
  std::string describe() const;

 private:
  NeuronEncoderBackend() = default;
  Status check_sizes();
  Status allocate_and_bind();
  Status bind_v1();

  NeuronEncoderConfig config_;
  DmaBuffer input_;
  DmaBuffer output_;
  Buffer<float> mel_staging_;  // only when the input needs a conversion
  Buffer<float> states_;       // only when the output needs a conversion
  neuron::abi::IOBuffer v2_in_{};
  neuron::abi::IOBuffer v2_out_{};
  bool input_cpu_open_ = false;
  bool output_cpu_open_ = false;
  Status pending_;  // a failure of mel_buffer()'s cache bracket, reported by run()
  uint64_t runs_ = 0;
  std::string notes_;
  std::unique_ptr<neuron::Runtime> rt_;  // declared last: released before the buffers bound to it
};

}  // namespace whisper_genio::backends
