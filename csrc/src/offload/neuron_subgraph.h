// Decoder subgraphs on the NPU: one Neuron runtime per DLA, loaded once per model.
//
// Every input and output gets a device buffer (dma-heap when the board has one, host memory
// otherwise) allocated once and bound ONCE: V1 setInput/setOutput at load, V2 IOBuffer arrays
// built at load and handed to every run. A token step therefore only writes the inputs' bytes
// and reads the outputs' bytes. Float32 tensors are used in place (host view == device
// buffer); other dtypes go through a float staging buffer quantized/dequantized per run with
// the manifest's scale and zero point. Byte sizes are checked against the manifest at load.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../backends/neuron/dma_buffer.h"
#include "../backends/neuron/neuron_library.h"
#include "../backends/neuron/runtime.h"
#include "../backends/tensor_io.h"
#include "subgraph.h"

namespace whisper_genio::offload {

struct NeuronSubgraphConfig {
  using Api = neuron::ApiChoice;
  std::string dla_path;
  std::string name;  // for messages: "layer 3 fc1 (batch 5)"
  std::vector<backends::TensorSpec> inputs;
  std::vector<backends::TensorSpec> outputs;
  Api api = Api::kAuto;
  std::string dma_heap;  // "" = host memory
  int cpu_threads = 1;
  neuron::LoadOptions library;
};

class NeuronSubgraph {
 public:
  static StatusOr<std::unique_ptr<NeuronSubgraph>> create(const NeuronSubgraphConfig& config);
  ~NeuronSubgraph();
  NeuronSubgraph(const NeuronSubgraph&) = delete;
  NeuronSubgraph& operator=(const NeuronSubgraph&) = delete;

  float* input(size_t i);
  const float* output(size_t i) const;
  bool input_direct(size_t i) const { return in_stage_[i].empty(); }
  Status run();
  uint64_t runs() const { return runs_; }
  const NeuronSubgraphConfig& config() const { return config_; }
  const char* api_name() const { return rt_->api_name(); }
  std::string describe() const;

 private:
  NeuronSubgraph() = default;
  Status check_sizes();
  Status allocate_and_bind();
  Status bind_v1();

  NeuronSubgraphConfig config_;
  std::vector<backends::DmaBuffer> in_, out_;
  std::vector<Buffer<float>> in_stage_, out_stage_;  // empty where the device buffer is used in place
  std::vector<neuron::abi::IOBuffer> v2_in_, v2_out_;
  uint64_t runs_ = 0;
  std::string notes_;
  std::unique_ptr<neuron::Runtime> rt_;  // declared last: released before the buffers bound to it
};

// [B, in] -> [B, out] on a NeuronSubgraph with one input and one output.
class NeuronDense final : public SubgraphRunner {
 public:
  static StatusOr<std::unique_ptr<NeuronDense>> create(const NeuronSubgraphConfig& config, int rows, int64_t in,
                                                       int64_t out);
  int rows() const override { return rows_; }
  int64_t in_features() const override { return in_f_; }
  int64_t out_features() const override { return out_f_; }
  float* input() override { return g_->input(0); }
  Status run() override { return g_->run(); }
  const float* output() const override { return g_->output(0); }
  std::string describe() const override { return g_->describe(); }
  const NeuronSubgraph& subgraph() const { return *g_; }

 private:
  std::unique_ptr<NeuronSubgraph> g_;
  int rows_ = 0;
  int64_t in_f_ = 0, out_f_ = 0;
};

// The layer step on a NeuronSubgraph with 6 inputs and 3 outputs (order in subgraph.h). The
// cache inputs must be float32: they are the KV cache itself, written by the CPU in place.
class NeuronLayerStep final : public LayerStepRunner {
 public:
  static StatusOr<std::unique_ptr<NeuronLayerStep>> create(const NeuronSubgraphConfig& config, int rows, int64_t d,
                                                           int n_ctx, int64_t n_audio);
  int rows() const override { return rows_; }
  int n_ctx() const override { return n_ctx_; }
  float* x() override { return g_->input(0); }
  float* self_k() override { return g_->input(1); }
  float* self_v() override { return g_->input(2); }
  float* cross_k() override { return g_->input(3); }
  float* cross_v() override { return g_->input(4); }
  float* mask() override { return g_->input(5); }
  Status run() override { return g_->run(); }
  const float* x_out() const override { return g_->output(0); }
  const float* k_out() const override { return g_->output(1); }
  const float* v_out() const override { return g_->output(2); }
  std::string describe() const override { return g_->describe(); }

 private:
  std::unique_ptr<NeuronSubgraph> g_;
  int rows_ = 0, n_ctx_ = 0;
};

}  // namespace whisper_genio::offload
