// Loading a decoder dispatch plan from the subgraphs a bundle (or a caller) offers: which to
// load for a mode, in which order, and what happens when one fails.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../backends/neuron/neuron_library.h"
#include "../backends/neuron/runtime.h"
#include "../backends/tensor_io.h"
#include "decoder_offload.h"

namespace whisper_genio::offload {

// One subgraph offered for the plan: the op it computes (a layer's op, or vocabulary columns
// [col0, col0 + cols)), its fixed batch, and either a DLA with the manifest's tensors or host
// numerics (a callback: LiteRT, ONNX Runtime, a test).
struct SubgraphEntry : OpSlot {
  std::string file;
  std::vector<backends::TensorSpec> inputs, outputs;
  CallbackSubgraph::Fn dense_fn;  // host numerics of a projection or vocabulary chunk
  CallbackLayerStep::Fn step_fn;  // host numerics of a layer step
  std::string name() const;       // "fc1 layer 3 batch 5", "vocab chunk 2 batch 1"
};

struct PlanSettings {
  neuron::ApiChoice api = neuron::ApiChoice::kAuto;
  std::string dma_heap;  // "" = host memory
  neuron::LoadOptions library;
  // A subgraph that fails to load is an error; otherwise its op stays on the CPU, with the reason.
  bool strict = false;
};

// Loads what `mode` wants of `entries` and makes the plan: none loads nothing, linear no layer
// steps; layer steps load first, and a layer whose step loaded needs none of its projections.
StatusOr<std::shared_ptr<DecoderOffload>> load_plan(const ModelDims& dims, Mode mode, std::vector<int> batches,
                                                    const std::vector<SubgraphEntry>& entries,
                                                    const PlanSettings& settings);

}  // namespace whisper_genio::offload
