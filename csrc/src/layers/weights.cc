#include "weights.h"

#include <algorithm>
#include <cstring>
#include <sstream>


namespace whisper_genio::layers {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

// Checks tensors against their expected shapes and converts them, one row at a time, into
// the compute layout. Mapped source tensors are given back to the kernel once converted.
class Reader {
 public:
  Reader(const TensorMap& t, cpu::WeightType type) : tensors_(t), type_(type) {}

  StatusOr<const TensorRef*> find(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) return bad_model("missing tensor '" + name + "'");
    const TensorRef& t = it->second;
    if (t.shape != shape) {
      return bad_model("tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " + shape_str(shape));
    }
    if (t.data == nullptr) return bad_model("tensor '" + name + "' has no data");
    return &t;
  }

  // Elements [first, first + count) of t as float32. memcpy: the source may be unaligned.
  static void read(const TensorRef& t, int64_t first, int64_t count, float* dst) {
    if (t.dtype == DType::kFloat32) {
      std::memcpy(dst, static_cast<const float*>(t.data) + first, static_cast<size_t>(count) * sizeof(float));
      return;
    }
    const unsigned char* src = static_cast<const unsigned char*>(t.data) + first * 2;
    for (int64_t i = 0; i < count; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = half_to_float(h);
    }
  }

  static void release(const TensorRef& t) {
    if (t.file_mapped) {
      release_mapped_pages(t.data, static_cast<size_t>(t.numel()) * (t.dtype == DType::kFloat32 ? 4 : 2));
    }
  }

  Status alloc(Buffer<float>* b, int64_t n) const {
    if (!b->reset(static_cast<size_t>(n))) return Status(StatusCode::kOutOfMemory, "allocating model weights");
    return Status::Ok();
  }

  // A float32 table kept as it is (biases, LayerNorm parameters, positional embeddings).
  Status table(const std::string& name, const std::vector<int64_t>& shape, float* dst) const {
    WG_ASSIGN_OR_RETURN(const TensorRef* t, find(name, shape));
    read(*t, 0, t->numel(), dst);
    release(*t);
    return Status::Ok();
  }

  Status vector(const std::string& name, int64_t d, Buffer<float>* out) const {
    WG_RETURN_IF_ERROR(alloc(out, d));
    return table(name, {d}, out->data());
  }

  Status matrix(const std::string& name, int64_t rows, int64_t cols, Buffer<float>* out) const {
    WG_RETURN_IF_ERROR(alloc(out, rows * cols));
    return table(name, {rows, cols}, out->data());
  }

  Status layer_norm(const std::string& prefix, int64_t d, LayerNorm* ln) const {
    ln->d = d;
    WG_RETURN_IF_ERROR(vector(prefix + ".weight", d, &ln->gamma));
    return vector(prefix + ".bias", d, &ln->beta);
  }

  // Row-major matrices stacked by rows into one Linear weight [sum of rows, k], stored as the
  // model's weight type. Mapped sources are given back every few rows: the vocabulary alone
  // is 53 MB of float16 in whisper-base.
  Status stacked(const std::vector<const TensorRef*>& parts, int64_t rows_per_part, int64_t k, Linear* lin) const {
    lin->n = rows_per_part * static_cast<int64_t>(parts.size());
    lin->k = k;
    const int64_t release_rows = std::max<int64_t>(1, (int64_t{1} << 20) / (k * 4));
    WG_RETURN_IF_ERROR(lin->store(type_, [&](int64_t r, float* out) {
      const TensorRef& t = *parts[static_cast<size_t>(r / rows_per_part)];
      const int64_t row = r % rows_per_part;
      read(t, row * k, k, out);
      if (t.file_mapped && (row + 1) % release_rows == 0) {
        const size_t item = t.dtype == DType::kFloat32 ? 4 : 2;
        const auto* base = static_cast<const unsigned char*>(t.data);
        release_mapped_pages(base + (row + 1 - release_rows) * k * item, static_cast<size_t>(release_rows * k) * item);
      }
    }));
    for (const TensorRef* t : parts) release(*t);
    return Status::Ok();
  }

  // A weight matrix without bias, stored as the model's weight type.
  Status weight(const std::string& name, const std::vector<int64_t>& shape, int64_t n, int64_t k, Linear* lin) const {
    WG_ASSIGN_OR_RETURN(const TensorRef* t, find(name, shape));
    return stacked({t}, n, k, lin);
  }

  Status linear(const std::string& prefix, int64_t n, int64_t k, Linear* lin) const {
    WG_RETURN_IF_ERROR(weight(prefix + ".weight", {n, k}, n, k, lin));
    return vector(prefix + ".bias", n, &lin->b);
  }

  // Rows of several [d, d] projections stacked into one [parts * d, d] Linear, so one GEMM
  // serves all of them. Projections without a bias (key) get zeros.
  Status fused(const std::vector<std::pair<std::string, bool>>& parts, int64_t d, Linear* lin) const {
    const int64_t p = static_cast<int64_t>(parts.size());
    std::vector<const TensorRef*> weights;
    for (const auto& part : parts) {
      WG_ASSIGN_OR_RETURN(const TensorRef* t, find(part.first + ".weight", {d, d}));
      weights.push_back(t);
    }
    WG_RETURN_IF_ERROR(alloc(&lin->b, p * d));
    for (int64_t i = 0; i < p; ++i) {
      const auto& [prefix, has_bias] = parts[static_cast<size_t>(i)];
      if (has_bias) {
        WG_RETURN_IF_ERROR(table(prefix + ".bias", {d}, lin->b.data() + i * d));
      } else {
        std::memset(lin->b.data() + i * d, 0, static_cast<size_t>(d) * sizeof(float));
      }
    }
    return stacked(weights, d, d, lin);
  }

  Status conv(const std::string& prefix, int64_t out_ch, int64_t in_ch, Linear* lin) const {
    WG_RETURN_IF_ERROR(weight(prefix + ".weight", {out_ch, in_ch, 3}, out_ch, in_ch * 3, lin));
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
  cpu::WeightType type_;
};

size_t block_bytes(const Block& b) {
  size_t n = b.attn_qkv.bytes() + b.attn_out.bytes() + b.fc1.bytes() + b.fc2.bytes();
  if (b.has_cross) n += b.cross_q.bytes() + b.cross_kv.bytes() + b.cross_out.bytes();
  return n;
}

}  // namespace

cpu::WeightType weight_type(ComputeType type) {
  switch (type) {
    case ComputeType::kFloat16: return cpu::WeightType::kF16;
    case ComputeType::kInt8: return cpu::WeightType::kI8;
    case ComputeType::kFloat32: break;
  }
  return cpu::WeightType::kF32;
}

Status Linear::store(cpu::WeightType t, const RowSource& row) {
  type = t;
  const size_t count = static_cast<size_t>(n * k);
  const Status oom(StatusCode::kOutOfMemory, "allocating model weights");
  Buffer<float> scratch;
  if (t != cpu::WeightType::kF32 && !scratch.reset(static_cast<size_t>(k))) return oom;
  switch (t) {
    case cpu::WeightType::kF32:
      if (!w32.reset(count)) return oom;
      for (int64_t r = 0; r < n; ++r) row(r, w32.data() + r * k);
      break;
    case cpu::WeightType::kF16:
      if (!w16.reset(count)) return oom;
      for (int64_t r = 0; r < n; ++r) {
        row(r, scratch.data());
        cpu::floats_to_half(scratch.data(), k, w16.data() + r * k);
      }
      break;
    case cpu::WeightType::kI8:
      if (!w8.reset(count) || !scales.reset(static_cast<size_t>(n))) return oom;
      for (int64_t r = 0; r < n; ++r) {
        row(r, scratch.data());
        scales[r] = cpu::quantize_row_i8(scratch.data(), k, w8.data() + r * k);
      }
      break;
  }
  return Status::Ok();
}

Status Linear::store(cpu::WeightType t, const float* src) {
  return store(t, [&](int64_t r, float* out) { std::memcpy(out, src + r * k, static_cast<size_t>(k) * sizeof(float)); });
}

Status Linear::pack_i8(bool keep_rows) {
  if (type != cpu::WeightType::kI8 || !w8_packed.empty()) return Status::Ok();
  if (!w8_packed.reset(static_cast<size_t>(cpu::packed_i8_size(n, k)))) {
    return Status(StatusCode::kOutOfMemory, "allocating model weights");
  }
  cpu::pack_weight_i8(w8.data(), n, k, w8_packed.data());
  if (!keep_rows) w8.reset(0);
  return Status::Ok();
}

Status Linear::pack(bool keep_rows) {
  if (type == cpu::WeightType::kI8) return pack_i8(keep_rows);
  if (type != cpu::WeightType::kF32 || !w32_packed.empty()) return Status::Ok();
  if (!w32_packed.reset(static_cast<size_t>(cpu::sgemm_packed_b_size(n, k)))) {
    return Status(StatusCode::kOutOfMemory, "allocating model weights");
  }
  cpu::sgemm_pack_b(n, k, w32.data(), k, /*b_nk=*/true, w32_packed.data());
  if (!keep_rows) w32.reset(0);
  return Status::Ok();
}

cpu::WeightView Linear::view() const {
  cpu::WeightView v;
  v.type = type;
  v.n = n;
  v.k = k;
  switch (type) {
    case cpu::WeightType::kF32:
      v.data = w32.empty() ? nullptr : w32.data();
      v.packed_f32 = w32_packed.empty() ? nullptr : w32_packed.data();
      break;
    case cpu::WeightType::kF16: v.data = w16.data(); break;
    case cpu::WeightType::kI8:
      v.data = w8.empty() ? nullptr : w8.data();
      v.scales = scales.data();
      v.packed = w8_packed.empty() ? nullptr : w8_packed.data();
      break;
  }
  return v;
}

size_t Linear::bytes() const {
  return (w32.size() + w32_packed.size()) * sizeof(float) + w16.size() * sizeof(uint16_t) + w8.size() + w8_packed.size() +
         (scales.size() + b.size()) * sizeof(float);
}

void Linear::forward(const float* x, int64_t m, float* y, ThreadPool* pool, int64_t ldy) const {
  cpu::linear(x, m, view(), b.empty() ? nullptr : b.data(), y, ldy > 0 ? ldy : n, pool);
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
  size_t n = token_embedding.bytes() + position.size() * sizeof(float);
  for (const Block& b : blocks) n += block_bytes(b);
  return n;
}

StatusOr<EncoderWeights> load_encoder_weights(const ModelDims& dims, const TensorMap& tensors, ComputeType type) {
  WG_RETURN_IF_ERROR(dims.validate());
  Reader r(tensors, weight_type(type));
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
  // Every encoder product has n_audio_ctx (or 2x) rows, so only the packed copy is kept.
  WG_RETURN_IF_ERROR(w.conv1.pack(false));
  WG_RETURN_IF_ERROR(w.conv2.pack(false));
  for (Block& b : w.blocks) {
    for (Linear* lin : {&b.attn_qkv, &b.attn_out, &b.fc1, &b.fc2}) WG_RETURN_IF_ERROR(lin->pack(false));
  }
  return w;
}

StatusOr<DecoderWeights> load_decoder_weights(const ModelDims& dims, const TensorMap& tensors, ComputeType type) {
  WG_RETURN_IF_ERROR(dims.validate());
  Reader r(tensors, weight_type(type));
  DecoderWeights w;
  const int64_t d = dims.n_text_state;
  WG_RETURN_IF_ERROR(r.weight("decoder.token_embedding.weight", {dims.n_vocab, d}, dims.n_vocab, d, &w.token_embedding));
  WG_RETURN_IF_ERROR(r.matrix("decoder.positional_embedding", dims.n_text_ctx, d, &w.position));
  w.blocks.resize(static_cast<size_t>(dims.n_text_layer));
  for (int i = 0; i < dims.n_text_layer; ++i) {
    WG_RETURN_IF_ERROR(r.block("decoder.blocks." + std::to_string(i), d, true, &w.blocks[static_cast<size_t>(i)]));
  }
  WG_RETURN_IF_ERROR(r.layer_norm("decoder.ln", d, &w.ln));
  // The cross-attention K/V projection runs once per window over the encoder states.
  for (Block& b : w.blocks) WG_RETURN_IF_ERROR(b.cross_kv.pack(false));
  return w;
}

}  // namespace whisper_genio::layers
