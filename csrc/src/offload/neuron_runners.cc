#include "neuron_runners.h"

namespace whisper_genio::offload {

StatusOr<std::unique_ptr<NeuronDense>> NeuronDense::create(const neuron::SubgraphConfig& config, int rows, int64_t in,
                                                           int64_t out) {
  if (config.inputs.size() != 1 || config.outputs.size() != 1) {
    return bad_model(config.name + ": a linear subgraph has one input and one output; the manifest declares " +
                     std::to_string(config.inputs.size()) + " and " + std::to_string(config.outputs.size()));
  }
  if (config.inputs[0].numel() != rows * in || config.outputs[0].numel() != rows * out) {
    return bad_model(config.name + ": the manifest declares " + config.inputs[0].describe() + " -> " +
                     config.outputs[0].describe() + "; this model needs [" + std::to_string(rows) + ", " +
                     std::to_string(in) + "] -> [" + std::to_string(rows) + ", " + std::to_string(out) + "]");
  }
  auto g = neuron::Subgraph::create(config);
  if (!g.ok()) return g.status();
  std::unique_ptr<NeuronDense> d(new NeuronDense());
  d->g_ = std::move(g).value();
  d->rows_ = rows;
  d->in_f_ = in;
  d->out_f_ = out;
  return d;
}

StatusOr<std::unique_ptr<NeuronLayerStep>> NeuronLayerStep::create(const neuron::SubgraphConfig& config, int rows,
                                                                   int64_t d, int n_ctx, int64_t n_audio) {
  if (config.inputs.size() != 6 || config.outputs.size() != 3) {
    return bad_model(config.name + ": a layer step has 6 inputs (x, self_k, self_v, cross_k, cross_v, mask) and 3 "
                     "outputs (x, k, v); the manifest declares " + std::to_string(config.inputs.size()) + " and " +
                     std::to_string(config.outputs.size()));
  }
  const int64_t B = rows;
  const int64_t want_in[6] = {B * d, B * n_ctx * d, B * n_ctx * d, n_audio * d, n_audio * d, B * n_ctx};
  const char* names[6] = {"x", "self_k", "self_v", "cross_k", "cross_v", "mask"};
  for (int i = 0; i < 6; ++i) {
    if (config.inputs[i].numel() != want_in[i]) {
      return bad_model(config.name + ": input " + names[i] + " is declared " + config.inputs[i].describe() +
                       "; this model needs " + std::to_string(want_in[i]) + " elements");
    }
  }
  for (int i = 1; i < 3; ++i) {
    if (config.inputs[i].dtype != backends::IoDType::kFloat32 || config.inputs[i].transposed) {
      return bad_model(config.name + ": the KV cache inputs must be float32 in the host layout (they are the "
                       "decoder's cache itself); the manifest declares " + config.inputs[i].describe());
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (config.outputs[i].numel() != B * d) {
      return bad_model(config.name + ": output " + std::to_string(i) + " is declared " +
                       config.outputs[i].describe() + "; this model needs [" + std::to_string(B) + ", " +
                       std::to_string(d) + "]");
    }
  }
  neuron::SubgraphConfig c = config;
  c.allow_row_stride = true;  // SubgraphLayerStep copies x, cross K/V, the mask and the outputs row by row
  auto g = neuron::Subgraph::create(c);
  if (!g.ok()) return g.status();
  for (size_t i = 1; i < 3; ++i) {
    const backends::TensorSpec& t = g.value()->input_spec(i);
    if (t.padded()) {
      return bad_model(config.name + ": the runtime pads the KV cache input " + t.describe() +
                       "; the decoder's cache is contiguous [n_ctx, d] rows and is bound in place, so this layer "
                       "step cannot take it (compile the layer with d a multiple of the MDLA alignment)");
    }
  }
  std::unique_ptr<NeuronLayerStep> s(new NeuronLayerStep());
  s->g_ = std::move(g).value();
  s->rows_ = rows;
  s->n_ctx_ = n_ctx;
  return s;
}

}  // namespace whisper_genio::offload
