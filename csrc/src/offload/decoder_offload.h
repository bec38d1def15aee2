// The decoder's dispatch plan: for each op of each layer (and each chunk of the vocabulary
// projection), at each fixed batch the bundle offers, whether it runs on a subgraph runner
// or on the CPU kernels, and why.
//
// Subgraphs have a fixed batch B (the beam count: 1 for greedy, 5 for beam search). A
// single-token step with B rows uses them; any other step - the prompt (several tokens of one
// sequence, once per window) or a row count no subgraph was compiled for - runs on the CPU and
// is counted (Stats::cpu_rows_other). The prompt stays on the CPU on purpose: it runs once per
// window, the CPU GEMM reads each weight once for all prompt rows, and padded B-row chunks
// would cost ceil(L / B) device calls per op for that one step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "subgraph.h"
#include "whisper_genio/model.h"

namespace whisper_genio::offload {

enum class Mode { kNone, kLinear, kLayer, kAuto };
const char* mode_name(Mode m);
// [out, in] of a linear op (a vocabulary chunk: [cols, d]) at model width d.
void linear_shape(OpKind kind, int64_t d, int64_t cols, int64_t* out, int64_t* in);
std::vector<std::string> mode_names();  // "none", "linear", "layer", "auto"
StatusOr<Mode> parse_mode(const std::string& name);

// Which op, where in the model, at which batch.
struct OpSlot {
  OpKind kind = OpKind::kFc1;
  int layer = -1;          // -1 for the vocabulary
  int chunk = -1;          // vocabulary chunk index, else -1
  int batch = 1;
  int64_t col0 = 0;        // vocabulary chunk: first logit column
  int64_t cols = 0;        // vocabulary chunk: columns
};

// What the bundle offers for one op at one batch: a loaded runner, or why there is none.
struct Candidate : OpSlot {
  std::shared_ptr<SubgraphRunner> dense;
  std::shared_ptr<LayerStepRunner> step;
  std::string error;       // load failure, when neither runner is set
};

struct PlanEntry : OpSlot {
  bool npu = false;
  std::string runner;  // what runs it: "neuron <file> ..." / "callback ..." / "cpu"
  std::string reason;  // for CPU entries: why not the NPU
  int64_t macs = 0;    // multiply-accumulates per row and token (linear math; a layer step adds attention)
};

class DecoderOffload {
 public:
  static StatusOr<std::shared_ptr<DecoderOffload>> create(const ModelDims& dims, Mode mode, std::vector<int> batches,
                                                         std::vector<Candidate> candidates);

  Mode mode() const { return mode_; }
  const std::vector<PlanEntry>& plan() const { return plan_; }
  const std::vector<int>& batches() const { return batches_; }

  // The runner the plan assigns, or null (CPU).
  SubgraphRunner* dense(OpKind kind, int layer, int rows) const;
  LayerStepRunner* step(int layer, int rows) const;
  struct VocabChunk {
    int64_t col0 = 0, cols = 0;
    SubgraphRunner* runner = nullptr;  // null: this chunk on the CPU
  };
  // Chunks covering the vocabulary at this batch, or null if none is planned on the NPU.
  const std::vector<VocabChunk>* vocab(int rows) const;

  // Per-token MACs of the whole decoder at a batch, split by where the plan puts them
  // (projections and vocabulary; attention is counted by Stats at run time).
  void planned_macs(int batch, int64_t* npu, int64_t* cpu) const;

 private:
  DecoderOffload() = default;
  static Candidate* find(std::vector<Candidate>& candidates, OpKind kind, int layer, int batch);
  bool plan_layer_step(size_t bi, int layer, Candidate* step, std::string* why);
  void plan_linear(size_t bi, int layer, OpKind kind, Candidate* c, const std::string& step_note);
  Status plan_vocabulary(size_t bi, std::vector<Candidate>& candidates);
  void plan_vocab_chunk(size_t bi, int64_t col0, int64_t cols, int chunk, Candidate* c, const std::string& why);
  Mode mode_ = Mode::kNone;
  ModelDims dims_;
  std::vector<int> batches_;
  std::vector<PlanEntry> plan_;
  std::vector<Candidate> used_;  // keeps the runners alive
  // [batch index][layer][kind] -> runner
  std::vector<std::vector<std::vector<SubgraphRunner*>>> dense_;
  std::vector<std::vector<LayerStepRunner*>> step_;
  std::vector<std::vector<VocabChunk>> vocab_;
  std::vector<bool> vocab_any_;
  int batch_index(int rows) const;
};

}  // namespace whisper_genio::offload
