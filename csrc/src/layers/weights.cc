#include "weights.h"

#include <cstring>
#include <sstream>

#include "../kernels/cpu/ops.h"

namespace whisper_genio::layers {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

// Checks a tensor against its expected shape and converts it into float32 storage.
class Reader {
 public:
  explicit Reader(const TensorMap& t) : tensors_(t) {}

  Status copy(const std::string& name, const std::vector<int64_t>& shape, float* dst) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) return bad_model("missing tensor '" + name + "'");
    const TensorRef& t = it->second;
    if (t.shape != shape) {
      return bad_model("tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " + shape_str(shape));
    }
    if (t.data == nullptr) return bad_model("tensor '" + name + "' has no data");
    const int64_t n = t.numel();
    if (t.dtype == DType::kFloat32) {
      std::memcpy(dst, t.data, static_cast<size_t>(n) * sizeof(float));
    } else {
      const uint16_t* h = static_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(h[i]);
    }
    return Status::Ok();
  }

  Status alloc(Buffer<float>* b, int64_t n) const {
    if (!b->reset(static_cast<size_t>(n))) return Status(StatusCode::kOutOfMemory, "allocating model weights");
    return Status::Ok();
  }

  Status vector(const std::string& name, int64_t d, Buffer<float>* out) const {
    WG_RETURN_IF_ERROR(alloc(out, d));
    return copy(name, {d}, out->data());
  }

  Status matrix(const std::string& name, int64_t rows, int64_t cols, Buffer<float>* out) const {
    WG_RETURN_IF_ERROR(alloc(out, rows * cols));
    return copy(name, {rows, cols}, out->data());
  }

  Status layer_norm(const std::string& prefix, int64_t d, LayerNorm* ln) const {
    ln->d = d;
    WG_RETURN_IF_ERROR(vector(prefix + ".weight", d, &ln->gamma));
    return vector(prefix + ".bias", d, &ln->beta);
  }

  Status linear(const std::string& prefix, int64_t n, int64_t k, Linear* lin) const {
    lin->n = n;
    lin->k = k;
    WG_RETURN_IF_ERROR(matrix(prefix + ".weight", n, k, &lin->w));
    return vector(prefix + ".bias", n, &lin->b);
  }

  // Rows of several [d, d] projections stacked into one [parts * d, d] Linear, so one GEMM
  // serves all of them. Projections without a bias (key) get zeros.
  Status fused(const std::vector<std::pair<std::string, bool>>& parts, int64_t d, Linear* lin) const {
    const int64_t p = static_cast<int64_t>(parts.size());
    lin->n = p * d;
    lin->k = d;
    WG_RETURN_IF_ERROR(alloc(&lin->w, p * d * d));
    WG_RETURN_IF_ERROR(alloc(&lin->b, p * d));
    for (int64_t i = 0; i < p; ++i) {
      const auto& [prefix, has_bias] = parts[static_cast<size_t>(i)];
      WG_RETURN_IF_ERROR(copy(prefix + ".weight", {d, d}, lin->w.data() + i * d * d));
      if (has_bias) {
        WG_RETURN_IF_ERROR(copy(prefix + ".bias", {d}, lin->b.data() + i * d));
      } else {
        std::memset(lin->b.data() + i * d, 0, static_cast<size_t>(d) * sizeof(float));
      }
    }
    return Status::Ok();
  }

  Status conv(const std::string& prefix, int64_t out_ch, int64_t in_ch, Linear* lin) const {
    lin->n = out_ch;
    lin->k = in_ch * 3;
    WG_RETURN_IF_ERROR(alloc(&lin->w, out_ch * in_ch * 3));
    WG_RETURN_IF_ERROR(copy(prefix + ".weight", {out_ch, in_ch, 3}, lin->w.data()));
    return vector(prefix + ".bias", out_ch, &lin->b);
  }

  Status block(const std::string& p, int64_t d, bool cross, Block* b) const {
    WG_RETURN_IF_ERROR(layer_norm(p + ".attn_ln", d, &b->attn_ln));
    WG_RETURN_IF_ERROR(fused({{p + ".attn.query", true}, {p + ".attn.key", false}, {p + ".attn.value", true}}, d,
                             &b->attn_qkv));
    WG_RETURN_IF_ERROR(linear(p + ".attn.out", d, d, &b->attn_out));
    b->has_cross = cross;
    if (cross) {
      WG_RETURN_IF_ERROR(layer_norm(p + ".cross_attn_ln", d, &b->cross_ln));
      WG_RETURN_IF_ERROR(linear(p + ".cross_attn.query", d, d, &b->cross_q));
      WG_RETURN_IF_ERROR(fused({{p + ".cross_attn.key", false}, {p + ".cross_attn.value", true}}, d, &b->cross_kv));
      WG_RETURN_IF_ERROR(linear(p + ".cross_attn.out", d, d, &b->cross_out));
    }
    WG_RETURN_IF_ERROR(layer_norm(p + ".mlp_ln", d, &b->mlp_ln));
    WG_RETURN_IF_ERROR(linear(p + ".mlp.0", 4 * d, d, &b->fc1));
    return linear(p + ".mlp.2", d, 4 * d, &b->fc2);
  }

 private:
  const TensorMap& tensors_;
};

size_t block_bytes(const Block& b) {
  size_t n = b.attn_qkv.bytes() + b.attn_out.bytes() + b.fc1.bytes() + b.fc2.bytes();
  if (b.has_cross) n += b.cross_q.bytes() + b.cross_kv.bytes() + b.cross_out.bytes();
  return n;
}

}  // namespace

void Linear::forward(const float* x, int64_t m, float* y, ThreadPool* pool, int64_t ldy) const {
  cpu::linear(x, m, k, w.data(), b.empty() ? nullptr : b.data(), n, y, ldy > 0 ? ldy : n, pool);
}

void LayerNorm::forward(const float* x, int64_t rows, float* y, ThreadPool* pool) const {
  cpu::layer_norm(x, rows, d, gamma.data(), beta.data(), y, pool);
}

size_t EncoderWeights::bytes() const {
  size_t n = conv1.bytes() + conv2.bytes() + position.size() * sizeof(float);
  for (const Block& b : blocks) n += block_bytes(b);
  return n;
}

size_t DecoderWeights::bytes() const {
  size_t n = (token_embedding.size() + position.size()) * sizeof(float);
  for (const Block& b : blocks) n += block_bytes(b);
  return n;
}

StatusOr<EncoderWeights> load_encoder_weights(const ModelDims& dims, const TensorMap& tensors) {
  WG_RETURN_IF_ERROR(dims.validate());
  Reader r(tensors);
  EncoderWeights w;
  const int64_t d = dims.n_audio_state;
  WG_RETURN_IF_ERROR(r.conv("encoder.conv1", d, dims.n_mels, &w.conv1));
  WG_RETURN_IF_ERROR(r.conv("encoder.conv2", d, d, &w.conv2));
  WG_RETURN_IF_ERROR(r.matrix("encoder.positional_embedding", dims.n_audio_ctx, d, &w.position));
  w.blocks.resize(static_cast<size_t>(dims.n_audio_layer));
  for (int i = 0; i < dims.n_audio_layer; ++i) {
    WG_RETURN_IF_ERROR(r.block("encoder.blocks." + std::to_string(i), d, false, &w.blocks[static_cast<size_t>(i)]));
  }
  WG_RETURN_IF_ERROR(r.layer_norm("encoder.ln_post", d, &w.ln_post));
  return w;
}

StatusOr<DecoderWeights> load_decoder_weights(const ModelDims& dims, const TensorMap& tensors) {
  WG_RETURN_IF_ERROR(dims.validate());
  Reader r(tensors);
  DecoderWeights w;
  const int64_t d = dims.n_text_state;
  WG_RETURN_IF_ERROR(r.matrix("decoder.token_embedding.weight", dims.n_vocab, d, &w.token_embedding));
  WG_RETURN_IF_ERROR(r.matrix("decoder.positional_embedding", dims.n_text_ctx, d, &w.position));
  w.blocks.resize(static_cast<size_t>(dims.n_text_layer));
  for (int i = 0; i < dims.n_text_layer; ++i) {
    WG_RETURN_IF_ERROR(r.block("decoder.blocks." + std::to_string(i), d, true, &w.blocks[static_cast<size_t>(i)]));
  }
  WG_RETURN_IF_ERROR(r.layer_norm("decoder.ln", d, &w.ln));
  return w;
}

}  // namespace whisper_genio::layers
