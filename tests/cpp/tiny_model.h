// A tiny random-weight Whisper with openai-whisper's state-dict names, for tests that need a
// whole model (test_decoder_tiny.cc, test_allocations.cc).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "test_util.h"
#include "whisper_genio/model.h"

namespace whisper_genio::testing {

// Vocabulary layout of the tiny model: 0..47 text, then the specials, then 10 timestamps.
inline constexpr int kEot = 48, kSot = 49, kLang = 50, kTranscribe = 51, kNoTimestamps = 52, kNoSpeech = 53,
              kTimestampBegin = 54;

inline ModelDims tiny_dims() {
  ModelDims d;
  d.n_mels = 80;
  d.n_audio_ctx = 16;
  d.n_audio_state = 8;
  d.n_audio_head = 2;
  d.n_audio_layer = 1;
  d.n_vocab = 64;
  d.n_text_ctx = 16;
  d.n_text_state = 8;
  d.n_text_head = 2;
  d.n_text_layer = 2;  // two layers: per-layer cache indexing is exercised
  return d;
}

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Weights are multiples of 1/256 (of 1/128 for embeddings) small enough to be exact in
// float16, so a float16 copy of the model is the same model.
class TinyModel {
 public:
  explicit TinyModel(uint64_t seed, ModelDims dims = tiny_dims()) : dims_(dims), rng_(seed) {
    const int64_t d = dims.n_text_state, da = dims.n_audio_state;
    add("encoder.conv1.weight", {da, dims.n_mels, 3}, kMatrix);
    add("encoder.conv1.bias", {da}, kBias);
    add("encoder.conv2.weight", {da, da, 3}, kMatrix);
    add("encoder.conv2.bias", {da}, kBias);
    add("encoder.positional_embedding", {dims.n_audio_ctx, da}, kBias);
    for (int i = 0; i < dims.n_audio_layer; ++i) block("encoder.blocks." + std::to_string(i), da, false);
    add("encoder.ln_post.weight", {da}, kGamma);
    add("encoder.ln_post.bias", {da}, kBias);
    add("decoder.token_embedding.weight", {dims.n_vocab, d}, kEmbedding);
    add("decoder.positional_embedding", {dims.n_text_ctx, d}, kBias);
    for (int i = 0; i < dims.n_text_layer; ++i) block("decoder.blocks." + std::to_string(i), d, true);
    add("decoder.ln.weight", {d}, kGamma);
    add("decoder.ln.bias", {d}, kBias);
  }

  const ModelDims& dims() const { return dims_; }
  const std::vector<float>& w(const std::string& name) const { return tensors_.at(name).data; }
  std::map<std::string, Tensor>& tensors() { return tensors_; }

  TensorMap map() const {
    TensorMap m;
    for (const auto& [name, t] : tensors_) m[name] = TensorRef{DType::kFloat32, t.shape, t.data.data()};
    return m;
  }

  // The same weights as IEEE half; `every` = 2 converts every other tensor only (mixed dtypes).
  TensorMap map_f16(std::map<std::string, std::vector<uint16_t>>& storage, int every = 1) const {
    TensorMap m = map();
    int i = 0;
    for (const auto& [name, t] : tensors_) {
      if (i++ % every != 0) continue;
      std::vector<uint16_t>& h = storage[name];
      h.clear();
      for (float v : t.data) h.push_back(exact_half(v));
      m[name] = TensorRef{DType::kFloat16, t.shape, h.data()};
    }
    return m;
  }

  // float -> half for values known to be exactly representable (normal range or zero).
  static uint16_t exact_half(float v) {
    if (v == 0.0f) return std::signbit(v) ? 0x8000 : 0;
    int e = 0;
    const double m = std::frexp(std::fabs(static_cast<double>(v)), &e);  // |v| = m 2^e, m in [0.5, 1)
    const int exponent = e - 1 + 15;
    const double mant = (2.0 * m - 1.0) * 1024.0;
    if (exponent < 1 || exponent > 30 || mant != std::floor(mant)) std::abort();  // test bug: not exact
    return static_cast<uint16_t>((v < 0 ? 0x8000 : 0) | (exponent << 10) | static_cast<int>(mant));
  }

 private:
  enum Kind { kMatrix, kBias, kGamma, kEmbedding };

  void add(const std::string& name, std::vector<int64_t> shape, Kind kind) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    Tensor t{std::move(shape), std::vector<float>(static_cast<size_t>(n))};
    for (float& v : t.data) {
      switch (kind) {
        case kMatrix: v = rng_.uniform_int(-128, 128) / 256.0f; break;
        case kBias: v = rng_.uniform_int(-64, 64) / 256.0f; break;
        case kGamma: v = 1.0f + rng_.uniform_int(-64, 64) / 256.0f; break;
        case kEmbedding: v = rng_.uniform_int(-128, 128) / 128.0f; break;
      }
    }
    tensors_[name] = std::move(t);
  }

  void block(const std::string& p, int64_t d, bool cross) {
    add(p + ".attn_ln.weight", {d}, kGamma);
    add(p + ".attn_ln.bias", {d}, kBias);
    for (const char* proj : {"query", "key", "value", "out"}) {
      add(p + ".attn." + proj + ".weight", {d, d}, kMatrix);
      if (std::string(proj) != "key") add(p + ".attn." + proj + ".bias", {d}, kBias);
    }
    if (cross) {
      add(p + ".cross_attn_ln.weight", {d}, kGamma);
      add(p + ".cross_attn_ln.bias", {d}, kBias);
      for (const char* proj : {"query", "key", "value", "out"}) {
        add(p + ".cross_attn." + proj + ".weight", {d, d}, kMatrix);
        if (std::string(proj) != "key") add(p + ".cross_attn." + proj + ".bias", {d}, kBias);
      }
    }
    add(p + ".mlp_ln.weight", {d}, kGamma);
    add(p + ".mlp_ln.bias", {d}, kBias);
    add(p + ".mlp.0.weight", {4 * d, d}, kMatrix);
    add(p + ".mlp.0.bias", {4 * d}, kBias);
    add(p + ".mlp.2.weight", {d, 4 * d}, kMatrix);
    add(p + ".mlp.2.bias", {d}, kBias);
  }

  ModelDims dims_;
  wg_test::Rng rng_;
  std::map<std::string, Tensor> tensors_;
};

}  // namespace whisper_genio::testing
