// The decoder's executors on subgraph runners (NPU DLAs, callbacks): what the dispatch plan puts
// behind the layers' executor interfaces (csrc/src/layers/executor.h) for the ops it offloads.
#pragma once

#include <vector>

#include "../layers/decoder_layer.h"
#include "decoder_offload.h"

namespace whisper_genio::offload {

// A projection on a runner of fixed batch: x is written into the runner's input buffer and y
// read from its output buffer, both in place.
class SubgraphLinear final : public layers::LinearExecutor {
 public:
  SubgraphLinear(SubgraphRunner& runner, layers::ExecutionStats& stats) : runner_(runner), stats_(stats) {}
  float* input() override { return runner_.input(); }
  StatusOr<const float*> run(int64_t rows, ThreadPool* pool) override;

 private:
  SubgraphRunner& runner_;
  layers::ExecutionStats& stats_;
};

// A whole layer step on a runner whose KV-cache inputs are the cache itself: the step writes only
// the new position's keys and values. A cache that is not bound to the runner's buffers (reset
// without TextDecoder::cache_storage()) runs the layer on `fallback` instead.
class SubgraphLayerStep final : public layers::LayerExecutor {
 public:
  SubgraphLayerStep(LayerStepRunner& runner, int layer, int64_t d, layers::LayerExecutor& fallback,
                    layers::ExecutionStats& stats)
      : runner_(runner), layer_(layer), d_(d), fallback_(fallback), stats_(stats) {}
  Status forward(float* x, const layers::Step& step, KVCache* cache, const layers::CrossKV& cross,
                 ThreadPool* pool) override;
  void set_window(const float* kv, int64_t n_audio) override;
  bool fixed_window() const override { return true; }
  KVCache::External cache_storage() override { return {runner_.self_k(), runner_.self_v()}; }

 private:
  LayerStepRunner& runner_;
  int layer_;
  int64_t d_;
  layers::LayerExecutor& fallback_;
  layers::ExecutionStats& stats_;
};

// The output projection in column chunks, each on its runner or, where the plan says so, on
// the CPU kernels over the embedding's rows [col0, col0 + cols).
class ChunkedVocabulary final : public layers::VocabularyExecutor {
 public:
  ChunkedVocabulary(std::vector<DecoderOffload::VocabChunk> chunks, const layers::Linear& embedding,
                    layers::ExecutionStats& stats)
      : chunks_(std::move(chunks)), embedding_(embedding), stats_(stats) {}
  Status forward(const float* h, int64_t rows, float* logits, ThreadPool* pool) override;

 private:
  std::vector<DecoderOffload::VocabChunk> chunks_;
  const layers::Linear& embedding_;
  layers::ExecutionStats& stats_;
};

}  // namespace whisper_genio::offload
