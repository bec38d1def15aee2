#include "decoder_offload.h"

#include <algorithm>

namespace whisper_genio::offload {

namespace {
const char* const kKindNames[kNumOpKinds] = {"self_qkv", "self_out", "cross_q", "cross_out",
                                             "fc1",      "fc2",      "layer_step", "vocab"};
constexpr OpKind kLinearKinds[6] = {OpKind::kSelfQkv, OpKind::kSelfOut, OpKind::kCrossQ,
                                    OpKind::kCrossOut, OpKind::kFc1,    OpKind::kFc2};

}  // namespace

void linear_shape(OpKind k, int64_t d, int64_t cols, int64_t* out, int64_t* in) {
  *in = k == OpKind::kFc2 ? 4 * d : d;
  *out = k == OpKind::kSelfQkv ? 3 * d : k == OpKind::kFc1 ? 4 * d : k == OpKind::kVocab ? cols : d;
}

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

void DecoderOffload::planned_macs(int batch, int64_t* npu, int64_t* cpu) const {
  *npu = *cpu = 0;
  for (const PlanEntry& e : plan_) {
    if (e.batch != batch) continue;
    (e.npu ? *npu : *cpu) += e.macs;
  }
}

namespace {

std::string missing(const Candidate* c) {
  return c == nullptr ? std::string("no subgraph in the bundle") : "failed to load: " + c->error;
}

std::string shape_text(int64_t rows, int64_t in, int64_t out) {
  return "[" + std::to_string(rows) + ", " + std::to_string(in) + "] -> [" + std::to_string(out) + "]";
}

}  // namespace

Candidate* DecoderOffload::find(std::vector<Candidate>& candidates, OpKind kind, int layer, int batch) {
  for (Candidate& c : candidates) {
    if (c.kind == kind && c.layer == layer && c.batch == batch) return &c;
  }
  return nullptr;
}

// A whole-layer step for layer l at batch bi, when one loaded with the right shape; else why not.
bool DecoderOffload::plan_layer_step(size_t bi, int l, Candidate* s, std::string* why) {
  const int B = batches_[bi];
  if (s != nullptr && s->step && (s->step->rows() != B || s->step->n_ctx() != dims_.n_text_ctx)) {
    *why = "layer step compiled for batch " + std::to_string(s->step->rows()) + " and " +
           std::to_string(s->step->n_ctx()) + " positions, needed " + std::to_string(B) + " and " +
           std::to_string(dims_.n_text_ctx);
    return false;
  }
  if (s == nullptr || !s->step) {
    *why = missing(s);
    return false;
  }
  PlanEntry e;
  e.kind = OpKind::kLayerStep;
  e.layer = l;
  e.batch = B;
  e.npu = true;
  e.runner = s->step->describe();
  e.macs = 14 * static_cast<int64_t>(dims_.n_text_state) * dims_.n_text_state;
  plan_.push_back(e);
  step_[bi][static_cast<size_t>(l)] = s->step.get();
  used_.push_back(*s);
  return true;
}

void DecoderOffload::plan_linear(size_t bi, int l, OpKind k, Candidate* c, const std::string& step_note) {
  const int B = batches_[bi];
  int64_t n_out, n_in;
  linear_shape(k, dims_.n_text_state, 0, &n_out, &n_in);
  PlanEntry e;
  e.kind = k;
  e.layer = l;
  e.batch = B;
  e.macs = n_out * n_in;
  if (mode_ == Mode::kNone) {
    e.reason = "decoder_offload='none'";
  } else if (c != nullptr && c->dense &&
             (c->dense->rows() != B || c->dense->in_features() != n_in || c->dense->out_features() != n_out)) {
    e.reason = "subgraph shape " + shape_text(c->dense->rows(), c->dense->in_features(), c->dense->out_features()) +
               " does not match " + shape_text(B, n_in, n_out);
  } else if (c != nullptr && c->dense) {
    e.npu = true;
    e.runner = c->dense->describe();
    dense_[bi][static_cast<size_t>(l)][static_cast<int>(k)] = c->dense.get();
    used_.push_back(*c);
  } else {
    e.reason = missing(c);
  }
  if (!step_note.empty()) e.reason = e.reason.empty() ? step_note : e.reason + "; " + step_note;
  if (!e.npu) e.runner = "cpu";
  plan_.push_back(e);
}

void DecoderOffload::plan_vocab_chunk(size_t bi, int64_t col0, int64_t cols, int chunk, Candidate* c,
                                      const std::string& why) {
  PlanEntry e;
  e.kind = OpKind::kVocab;
  e.chunk = chunk;
  e.batch = batches_[bi];
  e.col0 = col0;
  e.cols = cols;
  e.macs = cols * dims_.n_text_state;
  e.npu = c != nullptr;
  e.runner = c != nullptr ? c->dense->describe() : "cpu";
  e.reason = why;
  plan_.push_back(e);
  vocab_[bi].push_back(VocabChunk{col0, cols, c != nullptr ? c->dense.get() : nullptr});
  if (c != nullptr) {
    vocab_any_[bi] = true;
    used_.push_back(*c);
  }
}

// Vocabulary: chunks must tile [0, V); uncovered ranges and failed chunks stay on the CPU.
Status DecoderOffload::plan_vocabulary(size_t bi, std::vector<Candidate>& candidates) {
  const int B = batches_[bi];
  const int64_t d = dims_.n_text_state, V = dims_.n_vocab;
  std::vector<Candidate*> chunks;
  for (Candidate& c : candidates) {
    if (mode_ != Mode::kNone && c.kind == OpKind::kVocab && c.batch == B) chunks.push_back(&c);
  }
  std::sort(chunks.begin(), chunks.end(), [](const Candidate* a, const Candidate* b) { return a->col0 < b->col0; });
  int64_t next = 0;
  for (Candidate* c : chunks) {
    if (c->cols <= 0 || c->col0 < next || c->col0 + c->cols > V) {
      return invalid_argument("vocabulary chunk " + std::to_string(c->chunk) + " (columns " + std::to_string(c->col0) +
                              " + " + std::to_string(c->cols) + ") overlaps another or leaves the vocabulary [0, " +
                              std::to_string(V) + ")");
    }
    if (c->col0 > next) plan_vocab_chunk(bi, next, c->col0 - next, -1, nullptr, "no subgraph for these columns in the bundle");
    if (c->dense && (c->dense->rows() != B || c->dense->in_features() != d || c->dense->out_features() != c->cols)) {
      plan_vocab_chunk(bi, c->col0, c->cols, c->chunk, nullptr,
                       "subgraph shape does not match " + shape_text(B, d, c->cols));
    } else {
      plan_vocab_chunk(bi, c->col0, c->cols, c->chunk, c->dense ? c : nullptr, c->dense ? "" : missing(c));
    }
    next = c->col0 + c->cols;
  }
  if (next < V) {
    plan_vocab_chunk(bi, next, V - next, -1, nullptr,
                     mode_ == Mode::kNone ? "decoder_offload='none'"
                                          : (chunks.empty() ? "no vocabulary subgraphs in the bundle"
                                                            : "no subgraph for these columns in the bundle"));
  }
  return Status::Ok();
}

StatusOr<std::shared_ptr<DecoderOffload>> DecoderOffload::create(const ModelDims& dims, Mode mode,
                                                                std::vector<int> batches,
                                                                std::vector<Candidate> candidates) {
  WG_RETURN_IF_ERROR(dims.validate());
  const int L = dims.n_text_layer;
  for (int b : batches) {
    if (b <= 0) return invalid_argument("decoder subgraph batch must be positive");
  }
  for (const Candidate& c : candidates) {
    if (c.kind != OpKind::kVocab && (c.layer < 0 || c.layer >= L)) {
      return invalid_argument(std::string("decoder subgraph ") + op_kind_name(c.kind) + " for layer " +
                              std::to_string(c.layer) + ": the model has " + std::to_string(L) + " layers");
    }
    batches.push_back(c.batch);
  }
  std::sort(batches.begin(), batches.end());
  batches.erase(std::unique(batches.begin(), batches.end()), batches.end());
  std::shared_ptr<DecoderOffload> o(new DecoderOffload());
  o->mode_ = mode;
  o->dims_ = dims;
  o->batches_ = batches;
  o->dense_.assign(batches.size(), std::vector<std::vector<SubgraphRunner*>>(
                                       static_cast<size_t>(L), std::vector<SubgraphRunner*>(kNumOpKinds, nullptr)));
  o->step_.assign(batches.size(), std::vector<LayerStepRunner*>(static_cast<size_t>(L), nullptr));
  o->vocab_.assign(batches.size(), {});
  o->vocab_any_.assign(batches.size(), false);
  const bool steps_wanted = mode == Mode::kLayer || mode == Mode::kAuto;
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    for (int l = 0; l < L; ++l) {
      std::string why;
      if (steps_wanted && o->plan_layer_step(bi, l, find(candidates, OpKind::kLayerStep, l, batches[bi]), &why)) continue;
      const std::string step_note = steps_wanted ? "layer step: " + why : std::string();
      for (OpKind k : kLinearKinds) {
        o->plan_linear(bi, l, k, mode == Mode::kNone ? nullptr : find(candidates, k, l, batches[bi]), step_note);
      }
    }
    WG_RETURN_IF_ERROR(o->plan_vocabulary(bi, candidates));
  }
  return o;
}

}  // namespace whisper_genio::offload
