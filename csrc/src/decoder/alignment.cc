// Word-timestamp alignment: a forced pass recording the alignment heads' cross-attention, and
// the dynamic time warping that turns it into token-to-frame jumps.
#include <algorithm>
#include <cmath>
#include <limits>

#include "../layers/text_decoder.h"
#include "logit_filters.h"
#include "whisper_genio/decoding.h"
#include "whisper_genio/kv_cache.h"

namespace whisper_genio {

namespace {

Status check_alignment_request(const ModelDims& dims, const std::vector<int>& tokens,
                               const std::vector<std::pair<int, int>>& heads, int n_frames, int text_vocab) {
  if (tokens.size() < 2 || static_cast<int>(tokens.size()) > dims.n_text_ctx) {
    return invalid_argument("alignment needs 2 to " + std::to_string(dims.n_text_ctx) + " tokens, got " +
                            std::to_string(tokens.size()));
  }
  for (int t : tokens) {
    if (t < 0 || t >= dims.n_vocab) return invalid_argument("token " + std::to_string(t) + " outside the vocabulary");
  }
  if (heads.empty()) return invalid_argument("alignment needs at least one (layer, head)");
  for (const auto& [layer, head] : heads) {
    if (layer < 0 || layer >= dims.n_text_layer || head < 0 || head >= dims.n_text_head) {
      return invalid_argument("alignment head (" + std::to_string(layer) + ", " + std::to_string(head) +
                              ") outside the decoder's " + std::to_string(dims.n_text_layer) + " layers x " +
                              std::to_string(dims.n_text_head) + " heads");
    }
  }
  if (n_frames <= 0 || n_frames > dims.n_audio_ctx) {
    return invalid_argument("alignment frames must be 1.." + std::to_string(dims.n_audio_ctx) + ", got " +
                            std::to_string(n_frames));
  }
  if (text_vocab <= 0 || text_vocab > dims.n_vocab) return invalid_argument("text vocabulary size out of range");
  return Status::Ok();
}

}  // namespace

StatusOr<Alignment> Decoder::alignment(const std::vector<int>& tokens, const std::vector<std::pair<int, int>>& heads,
                                       int n_frames, int text_vocab) {
  if (!has_audio_) return invalid_argument("no audio set: call set_audio first");
  const ModelDims& d = dims();
  WG_RETURN_IF_ERROR(check_alignment_request(d, tokens, heads, n_frames, text_vocab));
  if (n_frames > cross_->n_ctx) {
    return invalid_argument("alignment over " + std::to_string(n_frames) + " frames, but the window's encoder states hold " +
                            std::to_string(cross_->n_ctx) + " positions");
  }
  const int L = static_cast<int>(tokens.size()), V = d.n_vocab;
  Alignment a;
  a.n_heads = static_cast<int>(heads.size());
  a.n_tokens = L;
  a.n_frames = n_frames;
  a.qk.assign(static_cast<size_t>(a.n_heads) * L * n_frames, 0.0f);
  std::vector<std::pair<int, layers::AttentionProbe>> probes;
  for (int i = 0; i < a.n_heads; ++i) {
    probes.push_back({heads[static_cast<size_t>(i)].first,
                      layers::AttentionProbe{heads[static_cast<size_t>(i)].second, n_frames,
                                             a.qk.data() + static_cast<size_t>(i) * L * n_frames}});
  }
  WG_RETURN_IF_ERROR(cache_->reset(d.n_text_layer, 1, d.n_text_ctx, d.n_text_state));
  decoder_->set_attention_probes(probes);
  const Status run = decoder_->run_layers(tokens.data(), 1, L, cache_.get(), *cross_, pool_.get());
  decoder_->set_attention_probes({});
  WG_RETURN_IF_ERROR(run);
  // Each row's next-token probability among the text tokens, a few rows at a time.
  constexpr int kRows = 16;
  std::vector<float> logits(static_cast<size_t>(kRows) * V);
  a.token_probs.assign(static_cast<size_t>(L - 1), std::numeric_limits<float>::quiet_NaN());
  for (int r0 = 0; r0 < L - 1; r0 += kRows) {
    std::vector<int> rows;
    for (int r = r0; r < std::min(L - 1, r0 + kRows); ++r) rows.push_back(r);
    WG_RETURN_IF_ERROR(decoder_->project(rows, logits.data(), pool_.get()));
    for (size_t i = 0; i < rows.size(); ++i) {
      const int next = tokens[static_cast<size_t>(rows[i] + 1)];
      if (next >= text_vocab) continue;
      const float* row = logits.data() + i * static_cast<size_t>(V);
      a.token_probs[static_cast<size_t>(rows[i])] = std::exp(row[next] - decoding::logsumexp(row, text_vocab));
    }
  }
  forward_calls_ += 1;
  forward_tokens_ += L;
  return a;
}

void dtw(const float* x, int n, int m, std::vector<int>* rows, std::vector<int>* columns) {
  rows->clear();
  columns->clear();
  if (n <= 0 || m <= 0) return;
  const size_t W = static_cast<size_t>(m) + 1;
  std::vector<float> cost((static_cast<size_t>(n) + 1) * W, std::numeric_limits<float>::infinity());
  std::vector<signed char> trace((static_cast<size_t>(n) + 1) * W, -1);
  cost[0] = 0.0f;
  // Cell (i, j) continues the cheapest of diagonal (0), up (1) and left (2); a tie goes left,
  // then up, as strict comparisons do.
  for (int j = 1; j <= m; ++j) {
    for (int i = 1; i <= n; ++i) {
      const float c0 = cost[(i - 1) * W + (j - 1)], c1 = cost[(i - 1) * W + j], c2 = cost[i * W + (j - 1)];
      float c;
      signed char t;
      if (c0 < c1 && c0 < c2) {
        c = c0, t = 0;
      } else if (c1 < c0 && c1 < c2) {
        c = c1, t = 1;
      } else {
        c = c2, t = 2;
      }
      cost[i * W + j] = x[static_cast<size_t>(i - 1) * m + (j - 1)] + c;
      trace[i * W + j] = t;
    }
  }
  // Back from (n, m): on the first row the path can only come from the left, on the first column from above.
  int i = n, j = m;
  while (i > 0 || j > 0) {
    rows->push_back(i - 1);
    columns->push_back(j - 1);
    const signed char t = i == 0 ? 2 : j == 0 ? 1 : trace[static_cast<size_t>(i) * W + j];
    if (t == 0) {
      --i, --j;
    } else if (t == 1) {
      --i;
    } else {
      --j;
    }
  }
  std::reverse(rows->begin(), rows->end());
  std::reverse(columns->begin(), columns->end());
}

}  // namespace whisper_genio
