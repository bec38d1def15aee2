#include "decoder_offload.h"

#include <algorithm>

namespace whisper_genio::offload {

namespace {
const char* const kKindNames[kNumOpKinds] = {"self_qkv", "self_out", "cross_q", "cross_out",
                                             "fc1",      "fc2",      "layer_step", "vocab"};
constexpr OpKind kLinearKinds[6] = {OpKind::kSelfQkv, OpKind::kSelfOut, OpKind::kCrossQ,
                                    OpKind::kCrossOut, OpKind::kFc1,    OpKind::kFc2};

// [out, in] of a linear op for width d.
void op_shape(OpKind k, int64_t d, int64_t* out, int64_t* in) {
  switch (k) {
    case OpKind::kSelfQkv: *out = 3 * d; *in = d; return;
    case OpKind::kFc1: *out = 4 * d; *in = d; return;
    case OpKind::kFc2: *out = d; *in = 4 * d; return;
    default: *out = d; *in = d; return;
  }
}
}  // namespace

const char* op_kind_name(OpKind k) { return kKindNames[static_cast<int>(k)]; }

StatusOr<OpKind> parse_op_kind(const std::string& name) {
  for (int i = 0; i < kNumOpKinds; ++i) {
    if (name == kKindNames[i]) return static_cast<OpKind>(i);
  }
  return invalid_argument("unknown decoder op '" + name +
                          "' (self_qkv, self_out, cross_q, cross_out, fc1, fc2, layer_step, vocab)");
}

namespace {
const char* const kModeNames[] = {"none", "linear", "layer", "auto"};  // in Mode's order
}  // namespace

const char* mode_name(Mode m) { return kModeNames[static_cast<int>(m)]; }

std::vector<std::string> mode_names() { return {std::begin(kModeNames), std::end(kModeNames)}; }

StatusOr<Mode> parse_mode(const std::string& name) {
  for (int i = 0; i < 4; ++i) {
    if (name == kModeNames[i]) return static_cast<Mode>(i);
  }
  return invalid_argument("decoder_offload must be one of none, linear, layer, auto; got '" + name + "'");
}

StatusOr<CallbackSubgraph::Ptr> CallbackSubgraph::create(int rows, int64_t in, int64_t out, Fn fn, std::string name) {
  if (rows <= 0 || in <= 0 || out <= 0) return invalid_argument("callback subgraph: sizes must be positive");
  if (!fn) return invalid_argument("callback subgraph: no function");
  Ptr c(new CallbackSubgraph());
  c->rows_ = rows;
  c->in_ = in;
  c->out_ = out;
  c->fn_ = std::move(fn);
  c->name_ = std::move(name);
  if (!c->x_.reset(static_cast<size_t>(rows * in)) || !c->y_.reset(static_cast<size_t>(rows * out))) {
    return Status(StatusCode::kOutOfMemory, "allocating callback subgraph buffers");
  }
  c->x_.zero();
  c->y_.zero();
  return c;
}

StatusOr<CallbackLayerStep::Ptr> CallbackLayerStep::create(int rows, int64_t d, int n_ctx, int64_t n_audio, Fn fn,
                                                          std::string name) {
  if (rows <= 0 || d <= 0 || n_ctx <= 0 || n_audio <= 0) return invalid_argument("callback layer step: sizes must be positive");
  if (!fn) return invalid_argument("callback layer step: no function");
  Ptr c(new CallbackLayerStep());
  c->rows_ = rows;
  c->n_ctx_ = n_ctx;
  c->fn_ = std::move(fn);
  c->name_ = std::move(name);
  const int64_t B = rows;
  const int64_t in_sizes[6] = {B * d, B * n_ctx * d, B * n_ctx * d, n_audio * d, n_audio * d, B * n_ctx};
  for (int i = 0; i < 6; ++i) {
    if (!c->in_[i].reset(static_cast<size_t>(in_sizes[i]))) return Status(StatusCode::kOutOfMemory, "callback layer step");
    c->in_[i].zero();
  }
  for (auto& o : c->out_) {
    if (!o.reset(static_cast<size_t>(B * d))) return Status(StatusCode::kOutOfMemory, "callback layer step");
    o.zero();
  }
  return c;
}

Status CallbackLayerStep::run() {
  std::vector<float*> in, out;
  for (auto& b : in_) in.push_back(b.data());
  for (auto& b : out_) out.push_back(b.data());
  return fn_(in, out);
}

int DecoderOffload::batch_index(int rows) const {
  for (size_t i = 0; i < batches_.size(); ++i) {
    if (batches_[i] == rows) return static_cast<int>(i);
  }
  return -1;
}

SubgraphRunner* DecoderOffload::dense(OpKind kind, int layer, int rows) const {
  const int b = batch_index(rows);
  if (b < 0 || layer < 0 || layer >= static_cast<int>(dense_[b].size())) return nullptr;
  return dense_[b][layer][static_cast<int>(kind)];
}

LayerStepRunner* DecoderOffload::step(int layer, int rows) const {
  const int b = batch_index(rows);
  if (b < 0 || layer < 0 || layer >= static_cast<int>(step_[b].size())) return nullptr;
  return step_[b][layer];
}

const std::vector<DecoderOffload::VocabChunk>* DecoderOffload::vocab(int rows) const {
  const int b = batch_index(rows);
  return b < 0 || !vocab_any_[b] ? nullptr : &vocab_[b];
}

std::vector<LayerStepRunner*> DecoderOffload::steps_of_layer(int layer) const {
  std::vector<LayerStepRunner*> out;
  for (const auto& per_batch : step_) {
    if (layer < static_cast<int>(per_batch.size()) && per_batch[layer] != nullptr) out.push_back(per_batch[layer]);
  }
  return out;
}

void DecoderOffload::planned_macs(int batch, int64_t* npu, int64_t* cpu) const {
  *npu = *cpu = 0;
  for (const PlanEntry& e : plan_) {
    if (e.batch != batch) continue;
    (e.npu ? *npu : *cpu) += e.macs;
  }
}

StatusOr<std::shared_ptr<DecoderOffload>> DecoderOffload::create(const ModelDims& dims, Mode mode,
                                                                std::vector<int> batches,
                                                                std::vector<Candidate> candidates) {
  WG_RETURN_IF_ERROR(dims.validate());
  std::sort(batches.begin(), batches.end());
  batches.erase(std::unique(batches.begin(), batches.end()), batches.end());
  for (int b : batches) {
    if (b <= 0) return invalid_argument("decoder subgraph batch must be positive");
  }
  const int L = dims.n_text_layer;
  const int64_t d = dims.n_text_state, V = dims.n_vocab;
  for (const Candidate& c : candidates) {
    if (c.kind != OpKind::kVocab && (c.layer < 0 || c.layer >= L)) {
      return invalid_argument(std::string("decoder subgraph ") + op_kind_name(c.kind) + " for layer " +
                              std::to_string(c.layer) + ": the model has " + std::to_string(L) + " layers");
    }
    if (std::find(batches.begin(), batches.end(), c.batch) == batches.end()) batches.push_back(c.batch);
  }
  std::sort(batches.begin(), batches.end());
  std::shared_ptr<DecoderOffload> o(new DecoderOffload());
  o->mode_ = mode;
  o->dims_ = dims;
  o->batches_ = batches;
  o->dense_.assign(batches.size(), std::vector<std::vector<SubgraphRunner*>>(
                                       static_cast<size_t>(L), std::vector<SubgraphRunner*>(kNumOpKinds, nullptr)));
  o->step_.assign(batches.size(), std::vector<LayerStepRunner*>(static_cast<size_t>(L), nullptr));
  o->vocab_.assign(batches.size(), {});
  o->vocab_any_.assign(batches.size(), false);

  auto find = [&](OpKind k, int layer, int batch) -> Candidate* {
    for (Candidate& c : candidates) {
      if (c.kind == k && c.layer == layer && c.batch == batch) return &c;
    }
    return nullptr;
  };
  auto missing = [](const Candidate* c) {
    return c == nullptr ? std::string("no subgraph in the bundle") : "failed to load: " + c->error;
  };
  const bool steps_wanted = mode == Mode::kLayer || mode == Mode::kAuto;
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    const int B = batches[bi];
    for (int l = 0; l < L; ++l) {
      std::string step_note;
      if (steps_wanted) {
        Candidate* s = find(OpKind::kLayerStep, l, B);
        std::string why;
        if (s != nullptr && s->step && (s->step->rows() != B || s->step->n_ctx() != dims.n_text_ctx)) {
          why = "layer step compiled for batch " + std::to_string(s->step->rows()) + " and " +
                std::to_string(s->step->n_ctx()) + " positions, needed " + std::to_string(B) + " and " +
                std::to_string(dims.n_text_ctx);
        } else if (s != nullptr && s->step) {
          PlanEntry e;
          e.kind = OpKind::kLayerStep;
          e.layer = l;
          e.batch = B;
          e.npu = true;
          e.runner = s->step->describe();
          e.macs = 14 * d * d;
          o->plan_.push_back(e);
          o->step_[bi][static_cast<size_t>(l)] = s->step.get();
          o->used_.push_back(*s);
          continue;
        } else {
          why = missing(s);
        }
        step_note = "layer step: " + why;
      }
      for (OpKind k : kLinearKinds) {
        int64_t n_out, n_in;
        op_shape(k, d, &n_out, &n_in);
        PlanEntry e;
        e.kind = k;
        e.layer = l;
        e.batch = B;
        e.macs = n_out * n_in;
        Candidate* c = mode == Mode::kNone ? nullptr : find(k, l, B);
        if (mode == Mode::kNone) {
          e.reason = "decoder_offload='none'";
        } else if (c != nullptr && c->dense &&
                   (c->dense->rows() != B || c->dense->in_features() != n_in || c->dense->out_features() != n_out)) {
          e.reason = "subgraph shape [" + std::to_string(c->dense->rows()) + ", " +
                     std::to_string(c->dense->in_features()) + "] -> [" + std::to_string(c->dense->out_features()) +
                     "] does not match [" + std::to_string(B) + ", " + std::to_string(n_in) + "] -> [" +
                     std::to_string(n_out) + "]";
        } else if (c != nullptr && c->dense) {
          e.npu = true;
          e.runner = c->dense->describe();
          o->dense_[bi][static_cast<size_t>(l)][static_cast<int>(k)] = c->dense.get();
          o->used_.push_back(*c);
        } else {
          e.reason = missing(c);
        }
        if (!step_note.empty()) e.reason = e.reason.empty() ? step_note : e.reason + "; " + step_note;
        if (!e.npu) e.runner = "cpu";
        o->plan_.push_back(e);
      }
    }
    // Vocabulary: chunks must tile [0, V); uncovered ranges and failed chunks stay on the CPU.
    std::vector<Candidate*> chunks;
    if (mode != Mode::kNone) {
      for (Candidate& c : candidates) {
        if (c.kind == OpKind::kVocab && c.batch == B) chunks.push_back(&c);
      }
    }
    std::sort(chunks.begin(), chunks.end(), [](const Candidate* a, const Candidate* b) { return a->col0 < b->col0; });
    int64_t next = 0;
    auto cpu_chunk = [&](int64_t c0, int64_t n, int idx, const std::string& why) {
      PlanEntry e;
      e.kind = OpKind::kVocab;
      e.chunk = idx;
      e.batch = B;
      e.col0 = c0;
      e.cols = n;
      e.macs = n * d;
      e.runner = "cpu";
      e.reason = why;
      o->plan_.push_back(e);
      o->vocab_[bi].push_back(VocabChunk{c0, n, nullptr});
    };
    for (Candidate* c : chunks) {
      if (c->cols <= 0 || c->col0 < next || c->col0 + c->cols > V) {
        return invalid_argument("vocabulary chunk " + std::to_string(c->chunk) + " (columns " + std::to_string(c->col0) +
                                " + " + std::to_string(c->cols) + ") overlaps another or leaves the vocabulary [0, " +
                                std::to_string(V) + ")");
      }
      if (c->col0 > next) cpu_chunk(next, c->col0 - next, -1, "no subgraph for these columns in the bundle");
      if (c->dense && (c->dense->rows() != B || c->dense->in_features() != d || c->dense->out_features() != c->cols)) {
        cpu_chunk(c->col0, c->cols, c->chunk, "subgraph shape does not match [" + std::to_string(B) + ", " +
                                                 std::to_string(d) + "] -> [" + std::to_string(c->cols) + "]");
      } else if (c->dense) {
        PlanEntry e;
        e.kind = OpKind::kVocab;
        e.chunk = c->chunk;
        e.batch = B;
        e.col0 = c->col0;
        e.cols = c->cols;
        e.macs = c->cols * d;
        e.npu = true;
        e.runner = c->dense->describe();
        o->plan_.push_back(e);
        o->vocab_[bi].push_back(VocabChunk{c->col0, c->cols, c->dense.get()});
        o->vocab_any_[bi] = true;
        o->used_.push_back(*c);
      } else {
        cpu_chunk(c->col0, c->cols, c->chunk, missing(c));
      }
      next = c->col0 + c->cols;
    }
    if (next < V) {
      cpu_chunk(next, V - next, -1,
                mode == Mode::kNone ? "decoder_offload='none'"
                                    : (chunks.empty() ? "no vocabulary subgraphs in the bundle"
                                                      : "no subgraph for these columns in the bundle"));
    }
  }
  return o;
}

}  // namespace whisper_genio::offload
