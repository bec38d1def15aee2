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

// Checks each tensor against the checkpoint schema (model.h) and converts it, one row at a
// time, into the compute layout. Mapped source tensors are given back to the kernel once
// converted.
class Reader {
 public:
  Reader(const ModelDims& dims, const TensorMap& t, cpu::WeightType type) : tensors_(t), type_(type) {
    for (TensorSchema& s : checkpoint_schema(dims)) expected_.emplace(std::move(s.name), std::move(s.shape));
  }

  StatusOr<const TensorRef*> find(const std::string& name) const {
    auto want = expected_.find(name);
    if (want == expected_.end()) return internal_error("'" + name + "' is not in the checkpoint schema");
    auto it = tensors_.find(name);
    if (it == tensors_.end()) return bad_model("missing tensor '" + name + "'");
    const TensorRef& t = it->second;
    if (t.shape != want->second) {
      return bad_model("tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " + shape_str(want->second));
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

  // A float32 table kept as it is (biases, LayerNorm parameters, positional embeddings).
  Status table(const std::string& name, Buffer<float>* out, int64_t offset = 0) const {
    WG_ASSIGN_OR_RETURN(const TensorRef* t, find(name));
    if (out->empty() && !out->reset(static_cast<size_t>(t->numel()))) {
      return Status(StatusCode::kOutOfMemory, "allocating model weights");
    }
    read(*t, 0, t->numel(), out->data() + offset);
    release(*t);
    return Status::Ok();
  }

  Status layer_norm(const std::string& prefix, LayerNorm* ln) const {
    WG_RETURN_IF_ERROR(table(prefix + ".weight", &ln->gamma));
    ln->d = static_cast<int64_t>(ln->gamma.size());
    return table(prefix + ".bias", &ln->beta);
  }

  // Row-major matrices stacked by rows into one Linear weight [sum of rows, k] (a convolution
  // [out, in, 3] is [out, in * 3]), stored as the model's weight type. Mapped sources are given
  // back every few rows: the vocabulary alone is 53 MB of float16 in whisper-base.
  Status stacked(const std::vector<const TensorRef*>& parts, Linear* lin) const {
    const int64_t rows_per_part = parts[0]->shape[0];
    const int64_t k = parts[0]->numel() / rows_per_part;
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

  // A weight matrix (or convolution) without bias, stored as the model's weight type.
  Status weight(const std::string& name, Linear* lin) const {
    WG_ASSIGN_OR_RETURN(const TensorRef* t, find(name));
    return stacked({t}, lin);
  }

  // A Linear or a convolution with its bias.
  Status linear(const std::string& prefix, Linear* lin) const {
    WG_RETURN_IF_ERROR(weight(prefix + ".weight", lin));
    return table(prefix + ".bias", &lin->b);
  }

  // Rows of several [d, d] projections stacked into one [parts * d, d] Linear, so one GEMM
  // serves all of them. Projections without a bias (key) get zeros.
  Status fused(const std::vector<std::pair<std::string, bool>>& parts, Linear* lin) const {
    std::vector<const TensorRef*> weights;
    for (const auto& part : parts) {
      WG_ASSIGN_OR_RETURN(const TensorRef* t, find(part.first + ".weight"));
      weights.push_back(t);
    }
    const int64_t d = weights[0]->shape[0];
    if (!lin->b.reset(static_cast<size_t>(d) * parts.size())) {
      return Status(StatusCode::kOutOfMemory, "allocating model weights");
    }
    lin->b.zero();
    for (size_t i = 0; i < parts.size(); ++i) {
      if (parts[i].second) WG_RETURN_IF_ERROR(table(parts[i].first + ".bias", &lin->b, static_cast<int64_t>(i) * d));
    }
    return stacked(weights, lin);
  }

  Status block(const std::string& p, bool cross, Block* b) const {
    WG_RETURN_IF_ERROR(layer_norm(p + ".attn_ln", &b->attn_ln));
    WG_RETURN_IF_ERROR(fused({{p + ".attn.query", true}, {p + ".attn.key", false}, {p + ".attn.value", true}},
                             &b->attn_qkv));
    WG_RETURN_IF_ERROR(linear(p + ".attn.out", &b->attn_out));
    b->has_cross = cross;
    if (cross) {
      WG_RETURN_IF_ERROR(layer_norm(p + ".cross_attn_ln", &b->cross_ln));
      WG_RETURN_IF_ERROR(linear(p + ".cross_attn.query", &b->cross_q));
      WG_RETURN_IF_ERROR(fused({{p + ".cross_attn.key", false}, {p + ".cross_attn.value", true}}, &b->cross_kv));
      WG_RETURN_IF_ERROR(linear(p + ".cross_attn.out", &b->cross_out));
    }
    WG_RETURN_IF_ERROR(layer_norm(p + ".mlp_ln", &b->mlp_ln));
    WG_RETURN_IF_ERROR(linear(p + ".mlp.0", &b->fc1));
    return linear(p + ".mlp.2", &b->fc2);
  }

 private:
  const TensorMap& tensors_;
  cpu::WeightType type_;
  std::unordered_map<std::string, std::vector<int64_t>> expected_;
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
  Reader r(dims, tensors, weight_type(type));
  EncoderWeights w;
  WG_RETURN_IF_ERROR(r.linear("encoder.conv1", &w.conv1));
  WG_RETURN_IF_ERROR(r.linear("encoder.conv2", &w.conv2));
  WG_RETURN_IF_ERROR(r.table("encoder.positional_embedding", &w.position));
  w.blocks.resize(static_cast<size_t>(dims.n_audio_layer));
  for (int i = 0; i < dims.n_audio_layer; ++i) {
    WG_RETURN_IF_ERROR(r.block("encoder.blocks." + std::to_string(i), false, &w.blocks[static_cast<size_t>(i)]));
  }
  WG_RETURN_IF_ERROR(r.layer_norm("encoder.ln_post", &w.ln_post));
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
  Reader r(dims, tensors, weight_type(type));
  DecoderWeights w;
  WG_RETURN_IF_ERROR(r.weight("decoder.token_embedding.weight", &w.token_embedding));
  WG_RETURN_IF_ERROR(r.table("decoder.positional_embedding", &w.position));
  w.blocks.resize(static_cast<size_t>(dims.n_text_layer));
  for (int i = 0; i < dims.n_text_layer; ++i) {
    WG_RETURN_IF_ERROR(r.block("decoder.blocks." + std::to_string(i), true, &w.blocks[static_cast<size_t>(i)]));
  }
  WG_RETURN_IF_ERROR(r.layer_norm("decoder.ln", &w.ln));
  // The cross-attention K/V projection runs once per window over the encoder states.
  for (Block& b : w.blocks) WG_RETURN_IF_ERROR(b.cross_kv.pack(false));
  return w;
}

}  // namespace whisper_genio::layers
