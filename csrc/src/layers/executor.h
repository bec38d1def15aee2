// Where each op of the text decoder runs. The dispatch plan decides once, when it is installed
// (csrc/src/offload/decoder_offload.h), which executor serves each op at each batch: the CPU
// kernels on the model's weights, or an NPU subgraph. The layers call these interfaces and
// never ask which one they got (the way ggml's scheduler keeps placement out of model code).
#pragma once

#include <cstdint>

#include "whisper_genio/kv_cache.h"
#include "whisper_genio/status.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio::layers {

struct CrossKV;

// The decoder's work by where it ran, since the last reset.
struct ExecutionStats {
  int64_t npu_calls = 0;          // subgraph runner invocations
  int64_t npu_macs = 0;           // MACs done by runners (projections, vocabulary, whole layer steps)
  int64_t cpu_macs = 0;           // MACs done by CPU kernels (projections, vocabulary, attention)
  int64_t cpu_rows_other = 0;     // rows of steps no subgraph can take (prompts, other batches)
  double runner_seconds = 0;      // wall time inside runners
  double runner_cpu_seconds = 0;  // calling thread's CPU time inside runners (the stand-in computes here)
  int64_t tokens = 0;             // rows of single-token steps a plan's batch covered
};

// One decoder step: `beams` sequences of `n_new` new tokens at positions [offset, offset + n_new).
// Rows are beam-major: row r is beam r / n_new, position offset + r % n_new.
struct Step {
  int beams = 1;
  int n_new = 1;
  int offset = 0;
  int64_t rows() const { return static_cast<int64_t>(beams) * n_new; }
};

// y [rows, out] = x [rows, in] W^T + b, wherever it runs.
class LinearExecutor {
 public:
  virtual ~LinearExecutor() = default;
  // Where the caller writes x before run(): an NPU subgraph's own input buffer (nothing is
  // copied on the way in) or a CPU scratch buffer.
  virtual float* input() = 0;
  // y from the first `rows` rows of input(); returns where y is (valid until the next run).
  virtual StatusOr<const float*> run(int64_t rows, ThreadPool* pool) = 0;
};

// One decoder layer (self-attention, cross-attention, MLP) for every row of x [rows, d], in place.
class LayerExecutor {
 public:
  virtual ~LayerExecutor() = default;
  virtual Status forward(float* x, const Step& step, KVCache* cache, const CrossKV& cross, ThreadPool* pool) = 0;
  // This window's cross-attention keys and values, [n_audio, 2d] (K | V per row): once per window.
  virtual void set_window(const float* kv, int64_t n_audio) {
    (void)kv;
    (void)n_audio;
  }
  // Whether set_window takes exactly n_audio_ctx positions (a subgraph compiled for one shape).
  virtual bool fixed_window() const { return false; }
  // The KV-cache storage this executor reads in place (an NPU step's buffers), or none.
  virtual KVCache::External cache_storage() { return {}; }
};

// logits [rows, n_vocab] of the final LayerNorm's output h [rows, d] (the tied output projection).
class VocabularyExecutor {
 public:
  virtual ~VocabularyExecutor() = default;
  virtual Status forward(const float* h, int64_t rows, float* logits, ThreadPool* pool) = 0;
};

}  // namespace whisper_genio::layers
