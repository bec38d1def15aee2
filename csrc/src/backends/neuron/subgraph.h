// One DLA on the Neuron runtime with its I/O buffers: what the encoder backend (one input, one
// output) and every decoder subgraph run on.
//
// Every input and output gets a device buffer (dma-heap when the board has one, host memory
// otherwise) allocated once and bound once: V1 setInput/setOutput at load (again before each run
// with rebind_each_run), V2 IOBuffer arrays built at load and handed to every run. A run therefore
// only writes the inputs' bytes and reads the outputs' bytes. Float32 tensors in the host layout
// are used in place (host view == device buffer); other dtypes and layouts go through a float
// staging buffer quantized/dequantized per run with the manifest's scale and zero point. The
// buffers belong to the CPU between runs (cache sync around each run). Byte sizes are checked
// against the manifest at load.
//
// Padded I/O: where the runtime's padded size (get*PaddedSize / get*PaddedDimensions) differs from
// the logical one - a DLA compiled with --suppress-input/--suppress-output takes its tensors in
// the device layout, rows rounded up to the hardware alignment - the buffers have the padded
// size, and each tensor's padded shape is read from the runtime (a padded shape the manifest
// declares must agree). A float32 tensor padded only in its last dimension stays in place when
// the caller can take a row stride (allow_row_stride: input_stride()/output_stride() elements
// between rows); otherwise it is staged and copied row by row. Float16 native I/O is converted
// here, never by the runtime.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../tensor_io.h"
#include "dma_buffer.h"
#include "neuron_library.h"
#include "runtime.h"
#include "whisper_genio/buffer.h"

namespace whisper_genio::neuron {

struct SubgraphConfig {
  std::string dla_path;
  std::string name;  // for messages: "layer 3 fc1 (batch 5)", "encoder"
  std::vector<backends::TensorSpec> inputs;
  std::vector<backends::TensorSpec> outputs;
  ApiChoice api = ApiChoice::kAuto;
  std::string dma_heap;  // "" = host memory
  int cpu_threads = 1;   // EnvOptions.CPUThreadNum (ignored from NP7 on)
  // V1: setInput/setOutput (the same buffers) before every inference, a guard against runtimes
  // that latch the input of their first inference.
  bool rebind_each_run = false;
  std::optional<QoS> qos;
  LoadOptions library;
  // The caller reads and writes the float32 views row by row at input_stride()/output_stride(),
  // so a tensor padded in its last dimension needs no copy.
  bool allow_row_stride = false;
};

class Subgraph {
 public:
  static StatusOr<std::unique_ptr<Subgraph>> create(const SubgraphConfig& config);
  ~Subgraph();
  Subgraph(const Subgraph&) = delete;
  Subgraph& operator=(const Subgraph&) = delete;

  // Float views of input/output i: the device buffer itself (float32, host layout) or staging.
  float* input(size_t i);
  const float* output(size_t i) const;
  bool input_direct(size_t i) const { return in_stage_[i].empty(); }
  bool output_direct(size_t i) const { return out_stage_[i].empty(); }
  // Elements between rows of the float views (the padded row of a direct padded tensor).
  int64_t input_stride(size_t i) const;
  int64_t output_stride(size_t i) const;
  // The tensors as loaded: the manifest's, with padded_shape from the runtime.
  const backends::TensorSpec& input_spec(size_t i) const { return config_.inputs[i]; }
  const backends::TensorSpec& output_spec(size_t i) const { return config_.outputs[i]; }
  const backends::DmaBuffer& input_buffer(size_t i) const { return in_[i]; }
  const backends::DmaBuffer& output_buffer(size_t i) const { return out_[i]; }
  Status run();
  uint64_t runs() const { return runs_; }
  const SubgraphConfig& config() const { return config_; }
  const char* api_name() const { return rt_->api_name(); }
  const NeuronLibrary& library() const { return rt_->library(); }
  const std::string& notes() const { return notes_; }
  std::string describe() const;

 private:
  Subgraph() = default;
  Status check_sizes();
  Status allocate(const std::string& heap);
  Status allocate_and_bind();
  Status stage();
  Status bind_v1();

  SubgraphConfig config_;
  std::vector<backends::DmaBuffer> in_, out_;
  std::vector<Buffer<float>> in_stage_, out_stage_;  // empty where the device buffer is used in place
  std::vector<abi::IOBuffer> v2_in_, v2_out_;
  uint64_t runs_ = 0;
  std::string notes_;
  std::unique_ptr<Runtime> rt_;  // declared last: released before the buffers bound to it
};

}  // namespace whisper_genio::neuron
