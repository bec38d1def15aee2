// The checkpoint layout: every tensor's name and shape, as openai-whisper's Whisper.state_dict().
#include <string>

#include "whisper_genio/model.h"

namespace whisper_genio {
namespace {

// One ResidualAttentionBlock, in state_dict order. openai-whisper's key projection has no
// bias: a key bias adds the same q.b to every logit of a query row, which softmax cancels.
void add_block(const std::string& p, int64_t d, bool cross, std::vector<TensorSchema>* out) {
  for (const char* attn : {"attn", "cross_attn"}) {
    if (!cross && std::string(attn) == "cross_attn") break;
    const std::string a = p + "." + attn;
    out->push_back({a + ".query.weight", {d, d}});
    out->push_back({a + ".query.bias", {d}});
    out->push_back({a + ".key.weight", {d, d}});
    out->push_back({a + ".value.weight", {d, d}});
    out->push_back({a + ".value.bias", {d}});
    out->push_back({a + ".out.weight", {d, d}});
    out->push_back({a + ".out.bias", {d}});
    out->push_back({a + "_ln.weight", {d}});
    out->push_back({a + "_ln.bias", {d}});
  }
  out->push_back({p + ".mlp.0.weight", {4 * d, d}});
  out->push_back({p + ".mlp.0.bias", {4 * d}});
  out->push_back({p + ".mlp.2.weight", {d, 4 * d}});
  out->push_back({p + ".mlp.2.bias", {d}});
  out->push_back({p + ".mlp_ln.weight", {d}});
  out->push_back({p + ".mlp_ln.bias", {d}});
}

}  // namespace

std::vector<TensorSchema> checkpoint_schema(const ModelDims& dims) {
  const int64_t da = dims.n_audio_state, dt = dims.n_text_state;
  std::vector<TensorSchema> out = {
      {"encoder.positional_embedding", {dims.n_audio_ctx, da}},
      {"encoder.conv1.weight", {da, dims.n_mels, 3}},
      {"encoder.conv1.bias", {da}},
      {"encoder.conv2.weight", {da, da, 3}},
      {"encoder.conv2.bias", {da}},
  };
  for (int i = 0; i < dims.n_audio_layer; ++i) add_block("encoder.blocks." + std::to_string(i), da, false, &out);
  out.push_back({"encoder.ln_post.weight", {da}});
  out.push_back({"encoder.ln_post.bias", {da}});
  out.push_back({"decoder.positional_embedding", {dims.n_text_ctx, dt}});
  out.push_back({"decoder.token_embedding.weight", {dims.n_vocab, dt}});
  for (int i = 0; i < dims.n_text_layer; ++i) add_block("decoder.blocks." + std::to_string(i), dt, true, &out);
  out.push_back({"decoder.ln.weight", {dt}});
  out.push_back({"decoder.ln.bias", {dt}});
  return out;
}

}  // namespace whisper_genio
