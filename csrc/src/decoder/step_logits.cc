// Decoder::step_logits: the single-token steps the NPU self-check compares between a dispatch
// plan and the CPU kernels (whisper_genio/backends/npu_check.py).
#include <algorithm>
#include <string>

#include "../layers/text_decoder.h"
#include "whisper_genio/decoding.h"
#include "whisper_genio/kv_cache.h"

namespace whisper_genio {

Status Decoder::step_logits(const std::vector<int>& prompt, int beams, std::vector<int>* tokens,
                            std::vector<float>* logits) {
  if (!has_audio_) return invalid_argument("no audio set: call set_audio first");
  const ModelDims& d = dims();
  const int V = d.n_vocab;
  const int L = static_cast<int>(prompt.size());
  const int steps = static_cast<int>(tokens->size());
  if (beams < 1 || beams > kMaxDecodingGroup) {
    return invalid_argument("beams must be in [1, " + std::to_string(kMaxDecodingGroup) + "], got " + std::to_string(beams));
  }
  if (L < 1) return invalid_argument("step_logits needs a prompt of at least one token");
  if (static_cast<int64_t>(L) + steps > d.n_text_ctx) {
    return invalid_argument("prompt and steps (" + std::to_string(L + steps) + " tokens) exceed n_text_ctx " +
                            std::to_string(d.n_text_ctx));
  }
  for (int t : prompt) {
    if (t < 0 || t >= V) return invalid_argument("prompt token " + std::to_string(t) + " outside the vocabulary");
  }
  for (int t : *tokens) {
    if (t < -1 || t >= V) return invalid_argument("step token " + std::to_string(t) + " outside the vocabulary");
  }
  WG_RETURN_IF_ERROR(cache_->reset(d.n_text_layer, beams, d.n_text_ctx, d.n_text_state, decoder_->cache_storage(beams)));
  WG_RETURN_IF_ERROR(cache_->broadcast_first(1));
  WG_RETURN_IF_ERROR(decoder_->reserve(std::max(L, beams)));
  std::vector<float> last(static_cast<size_t>(V));
  WG_RETURN_IF_ERROR(decoder_->forward(prompt.data(), 1, L, cache_.get(), *cross_, {L - 1}, last.data(), pool_.get()));
  WG_RETURN_IF_ERROR(cache_->broadcast_first(beams));
  logits->assign(static_cast<size_t>(steps) * beams * V, 0.0f);
  std::vector<int> rows(static_cast<size_t>(beams)), fed(static_cast<size_t>(beams));
  for (int b = 0; b < beams; ++b) rows[static_cast<size_t>(b)] = b;
  const float* prev = last.data();
  for (int i = 0; i < steps; ++i) {
    int& t = (*tokens)[static_cast<size_t>(i)];
    if (t < 0) t = static_cast<int>(std::max_element(prev, prev + V) - prev);
    std::fill(fed.begin(), fed.end(), t);
    float* out = logits->data() + static_cast<size_t>(i) * beams * V;
    WG_RETURN_IF_ERROR(decoder_->forward(fed.data(), beams, 1, cache_.get(), *cross_, rows, out, pool_.get()));
    prev = out;
  }
  return Status::Ok();
}

}  // namespace whisper_genio
