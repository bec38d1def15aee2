// The Whisper text decoder, one step at a time over a KV cache: openai-whisper's TextDecoder with
// its kv_cache hooks. Its layers run on executors (executor.h): the CPU kernels unless a dispatch
// plan (offload/decoder_offload.h) puts an op of a step of its batch on a subgraph.
#pragma once

#include <memory>
#include <vector>

#include "../offload/decoder_offload.h"
#include "attention.h"
#include "decoder_layer.h"
#include "executor.h"
#include "weights.h"
#include "whisper_genio/encoder_backend.h"
#include "whisper_genio/kv_cache.h"
#include "whisper_genio/model.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio::layers {

class TextDecoder {
 public:
  static StatusOr<std::unique_ptr<TextDecoder>> create(const ModelDims& dims, const TensorMap& tensors,
                                                     ComputeType type);

  const ModelDims& dims() const { return dims_; }
  size_t weight_bytes() const { return w_.bytes(); }

  // This window's cross-attention keys/values (and the layer-step subgraphs' copies of them).
  Status compute_cross_kv(const EncoderStates& states, CrossKV* out, ThreadPool* pool) const;
  // Whether the window's states must have all n_audio_ctx positions (NPU layer steps planned).
  bool fixed_window() const;

  // Sizes the activations for steps of up to `rows` rows (beams x new tokens) now, so that no
  // later step allocates.
  Status reserve(int64_t rows);

  // Runs n_new tokens for each of `beams` sequences at positions [cache.length(),
  // cache.length() + n_new), appending their keys/values to the cache (beams must equal
  // cache.beams()). tokens is [beams, n_new]. For every (beam, position) pair listed in
  // logit_rows (as beam * n_new + i) writes the vocabulary logits, in that order, to
  // logits [logit_rows.size(), n_vocab].
  Status forward(const int* tokens, int beams, int n_new, KVCache* cache, const CrossKV& cross,
                 const std::vector<int>& logit_rows, float* logits, ThreadPool* pool);

  // forward() in two halves: the layers over a step (the rows' states stay in the scratch), then
  // the final LayerNorm and the vocabulary for some of that step's rows (any number of calls).
  Status run_layers(const int* tokens, int beams, int n_new, KVCache* cache, const CrossKV& cross, ThreadPool* pool);
  Status project(const std::vector<int>& rows, float* logits, ThreadPool* pool);

  // Records the pre-softmax cross-attention scores of (layer, head) pairs during the following
  // steps on the CPU (prompt-like steps: several tokens of one sequence); empty: stop.
  void set_attention_probes(const std::vector<std::pair<int, AttentionProbe>>& probes);

  // Installs a dispatch plan (null: everything on the CPU): builds the executors of each of its
  // batches. Single-token steps with a planned batch of rows run on those; every other step on the CPU.
  void set_offload(std::shared_ptr<offload::DecoderOffload> plan);
  const offload::DecoderOffload* offload() const { return offload_.get(); }
  // KV cache storage for `beams` beams: the cache inputs of the layer-step subgraphs of that batch
  // (empty when there are none), for KVCache::reset.
  std::vector<KVCache::External> cache_storage(int beams) const;
  const ExecutionStats& stats() const { return *stats_; }
  void reset_stats() { *stats_ = ExecutionStats(); }

 private:
  // Every op's executor for the steps of one batch (batch 0: the CPU executors, for every step
  // no plan covers).
  struct Executors {
    int batch = 0;
    std::vector<std::unique_ptr<LinearExecutor>> linears;
    std::vector<std::unique_ptr<LayerExecutor>> layers;
    std::unique_ptr<VocabularyExecutor> vocabulary;
  };
  TextDecoder() = default;
  Executors cpu_executors();
  Executors planned_executors(int batch);
  LinearExecutor* planned_linear(Executors& ex, offload::OpKind kind, int layer, LinearExecutor* cpu);
  const Executors& executors_for(const Step& step) const;
  Status check_step(const int* tokens, const Step& step, const KVCache& cache, const CrossKV& cross) const;
  void embed(const int* tokens, const Step& step, float* x) const;

  ModelDims dims_;
  DecoderWeights w_;
  CrossKV::Type cross_type_ = CrossKV::Type::kF32;
  // Heap-held so that executors keep valid references when the decoder moves.
  std::unique_ptr<DecoderScratch> scratch_ = std::make_unique<DecoderScratch>();
  std::unique_ptr<ExecutionStats> stats_ = std::make_unique<ExecutionStats>();
  Executors cpu_;
  std::vector<DecoderLayer*> cpu_layers_;  // cpu_.layers as what they are, for probes
  std::vector<Executors> planned_;
  const Executors* last_ = nullptr;  // the executors of the last run_layers
  Step last_step_;
  std::shared_ptr<offload::DecoderOffload> offload_;
};

}  // namespace whisper_genio::layers
