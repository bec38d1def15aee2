#include "plan_loader.h"

#include <algorithm>
#include <utility>

#include "neuron_runners.h"

namespace whisper_genio::offload {

std::string SubgraphEntry::name() const {
  return std::string(op_kind_name(kind)) +
         (kind == OpKind::kVocab ? " chunk " + std::to_string(chunk) : " layer " + std::to_string(layer)) + " batch " +
         std::to_string(batch);
}

namespace {

// The runner of one entry; a DLA that fails to load gives an error status (callers decide).
Status load_runner(const ModelDims& dims, const SubgraphEntry& e, const PlanSettings& settings, Candidate* c) {
  const int64_t d = dims.n_text_state;
  int64_t out = 0, in = 0;
  linear_shape(e.kind, d, e.cols, &out, &in);
  if (e.kind == OpKind::kLayerStep && e.step_fn) {
    WG_ASSIGN_OR_RETURN(c->step, CallbackLayerStep::create(e.batch, d, dims.n_text_ctx, dims.n_audio_ctx, e.step_fn,
                                                           e.name()));
    return Status::Ok();
  }
  if (e.dense_fn) {
    WG_ASSIGN_OR_RETURN(c->dense, CallbackSubgraph::create(e.batch, in, out, e.dense_fn, e.name()));
    return Status::Ok();
  }
  neuron::SubgraphConfig cfg;
  cfg.name = e.name();
  cfg.dla_path = e.file;
  cfg.inputs = e.inputs;
  cfg.outputs = e.outputs;
  cfg.api = settings.api;
  cfg.dma_heap = settings.dma_heap;
  cfg.library = settings.library;
  cfg.allow_row_stride = e.kind == OpKind::kVocab;  // ChunkedVocabulary copies row by row; the projections do not
  if (e.kind == OpKind::kLayerStep) {
    WG_ASSIGN_OR_RETURN(c->step, NeuronLayerStep::create(cfg, e.batch, d, dims.n_text_ctx, dims.n_audio_ctx));
  } else {
    WG_ASSIGN_OR_RETURN(c->dense, NeuronDense::create(cfg, e.batch, in, out));
  }
  return Status::Ok();
}

bool wanted(Mode mode, const SubgraphEntry& e) {
  return mode != Mode::kNone && !(e.kind == OpKind::kLayerStep && mode == Mode::kLinear);
}

}  // namespace

StatusOr<std::shared_ptr<DecoderOffload>> load_plan(const ModelDims& dims, Mode mode, std::vector<int> batches,
                                                    const std::vector<SubgraphEntry>& entries,
                                                    const PlanSettings& settings) {
  for (const SubgraphEntry& e : entries) {
    if (e.batch <= 0) return invalid_argument(e.name() + ": batch must be positive");
  }
  std::vector<Candidate> candidates;
  std::vector<std::pair<int, int>> stepped;  // (layer, batch) whose layer step loaded
  for (const bool steps : {true, false}) {
    for (const SubgraphEntry& e : entries) {
      if ((e.kind == OpKind::kLayerStep) != steps || !wanted(mode, e)) continue;
      if (e.kind != OpKind::kVocab &&
          std::find(stepped.begin(), stepped.end(), std::make_pair(e.layer, e.batch)) != stepped.end()) {
        continue;
      }
      const bool callback = e.dense_fn || e.step_fn;
      if (!callback && (e.file.empty() || e.inputs.empty() || e.outputs.empty())) {  // a malformed entry: always an error
        return invalid_argument(e.name() + ": an entry needs 'file', 'inputs' and 'outputs' (or a 'callback')");
      }
      Candidate c;
      static_cast<OpSlot&>(c) = e;
      const Status s = load_runner(dims, e, settings, &c);
      if (!s.ok() && (settings.strict || callback)) return s;  // a callback that cannot be built is a caller's bug
      if (!s.ok()) c.error = s.message();
      if (c.step) stepped.emplace_back(c.layer, c.batch);
      candidates.push_back(std::move(c));
    }
  }
  return DecoderOffload::create(dims, mode, std::move(batches), std::move(candidates));
}

}  // namespace whisper_genio::offload
