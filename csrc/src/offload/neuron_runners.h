// Decoder subgraph runners on the NPU: a neuron::Subgraph (one DLA, its buffers bound once) seen
// as a projection [B, in] -> [B, out] or as a whole layer step (subgraph.h's interfaces).
#pragma once

#include <memory>

#include "../backends/neuron/subgraph.h"
#include "subgraph.h"

namespace whisper_genio::offload {

// [B, in] -> [B, out] on a subgraph with one input and one output. A padded DLA is staged (copied
// row by row) unless config.allow_row_stride says the caller reads at input/output_stride().
class NeuronDense final : public SubgraphRunner {
 public:
  static StatusOr<std::unique_ptr<NeuronDense>> create(const neuron::SubgraphConfig& config, int rows, int64_t in,
                                                       int64_t out);
  int rows() const override { return rows_; }
  int64_t in_features() const override { return in_f_; }
  int64_t out_features() const override { return out_f_; }
  float* input() override { return g_->input(0); }
  Status run() override { return g_->run(); }
  const float* output() const override { return g_->output(0); }
  std::string describe() const override { return g_->describe(); }
  int64_t input_stride() const override { return g_->input_stride(0); }
  int64_t output_stride() const override { return g_->output_stride(0); }
  const neuron::Subgraph& subgraph() const { return *g_; }

 private:
  std::unique_ptr<neuron::Subgraph> g_;
  int rows_ = 0;
  int64_t in_f_ = 0, out_f_ = 0;
};

// The layer step on a subgraph with 6 inputs and 3 outputs (order in subgraph.h). The cache
// inputs must be float32 and unpadded: they are the KV cache itself, written by the CPU in place.
// The other tensors may be padded: the executor reads and writes them at their row strides.
class NeuronLayerStep final : public LayerStepRunner {
 public:
  static StatusOr<std::unique_ptr<NeuronLayerStep>> create(const neuron::SubgraphConfig& config, int rows, int64_t d,
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
  int64_t input_stride(int i) const override { return g_->input_stride(static_cast<size_t>(i)); }
  int64_t output_stride(int i) const override { return g_->output_stride(static_cast<size_t>(i)); }

 private:
  std::unique_ptr<neuron::Subgraph> g_;
  int rows_ = 0, n_ctx_ = 0;
};

}  // namespace whisper_genio::offload
