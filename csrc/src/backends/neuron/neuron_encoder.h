// "neuron" encoder backend: a Whisper encoder compiled to a DLA (ncc-tflite), run on the
// MDLA through the Neuron runtime (V2 `run` where the runtime has it, else the V1 API): a
// neuron::Subgraph (subgraph.h) with one input, the mel, and one output, the states.
//
// Memory: the DLA's input and output buffers are allocated once per model, from a dma-heap
// when the board has one (the fd goes to the runtime) and from ordinary memory otherwise.
//   - float32 input in the host layout: mel_buffer() IS the DLA input buffer (the mel is
//     written there once, in place);
//   - float16/int8/uint8/int16 (or transposed) input: mel_buffer() is a float staging buffer
//     that run() quantizes into the DLA input buffer (one native pass per window);
//   - float32 output in the host layout: the EncoderStates view points at the DLA output
//     buffer itself: the decoder reads it in place, no copy;
//   - any other output dtype/layout: run() dequantizes once into a model-owned float buffer;
//   - padded I/O (the runtime's padded size differs from the logical one, e.g. a DLA compiled
//     with --suppress-input/--suppress-output): the mel and the states go through the float
//     buffers, copied row by row into / out of the padded device rows (the decoder takes
//     contiguous states). Float16 native I/O is converted here.
// Nothing is allocated per call. The DLA's byte sizes are checked against the manifest's
// shapes and dtypes at creation; a mismatch is refused with what differs.
#pragma once

#include <memory>
#include <string>

#include "../tensor_io.h"
#include "dma_buffer.h"
#include "neuron_library.h"
#include "runtime.h"
#include "subgraph.h"
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
  float* mel_buffer() override { return g_->input(0); }
  StatusOr<EncoderStates> run() override;

  // Two different inputs must give two different outputs (guards against a runtime that
  // latches its input at the first inference). Leaves the mel buffer zeroed.
  Status self_test();

  const char* api_name() const { return g_->api_name(); }
  const neuron::NeuronLibrary& library() const { return g_->library(); }
  const NeuronEncoderConfig& config() const { return config_; }
  const DmaBuffer& input_buffer() const { return g_->input_buffer(0); }
  const DmaBuffer& output_buffer() const { return g_->output_buffer(0); }
  bool input_zero_copy() const { return g_->input_direct(0); }
  bool output_zero_copy() const { return g_->output_direct(0); }
  const float* states_data() const { return g_->output(0); }
  // The I/O as loaded: the manifest's tensors with the runtime's padded shapes.
  const TensorSpec& input_spec() const { return g_->input_spec(0); }
  const TensorSpec& output_spec() const { return g_->output_spec(0); }
  uint64_t runs() const { return g_->runs(); }
  const std::string& notes() const { return g_->notes(); }
  std::string describe() const;

 private:
  NeuronEncoderBackend() = default;
  NeuronEncoderConfig config_;
  std::unique_ptr<neuron::Subgraph> g_;  // one input (mel), one output (states)
};

}  // namespace whisper_genio::backends
