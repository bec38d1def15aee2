#include "tensor_io.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <sstream>

#include "whisper_genio/model.h"

namespace whisper_genio::backends {

const char* io_dtype_name(IoDType t) {
  switch (t) {
    case IoDType::kFloat32: return "float32";
    case IoDType::kFloat16: return "float16";
    case IoDType::kInt8: return "int8";
    case IoDType::kUInt8: return "uint8";
    case IoDType::kInt16: return "int16";
  }
  return "?";
}

size_t io_dtype_size(IoDType t) {
  switch (t) {
    case IoDType::kFloat32: return 4;
    case IoDType::kFloat16: return 2;
    case IoDType::kInt8: return 1;
    case IoDType::kUInt8: return 1;
    case IoDType::kInt16: return 2;
  }
  return 0;
}

bool io_dtype_is_quantized(IoDType t) { return t == IoDType::kInt8 || t == IoDType::kUInt8 || t == IoDType::kInt16; }

StatusOr<IoDType> parse_io_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "f32") return IoDType::kFloat32;
  if (name == "float16" || name == "fp16" || name == "f16" || name == "half") return IoDType::kFloat16;
  if (name == "int8" || name == "i8") return IoDType::kInt8;
  if (name == "uint8" || name == "u8") return IoDType::kUInt8;
  if (name == "int16" || name == "i16") return IoDType::kInt16;
  return invalid_argument("unknown tensor dtype '" + name + "'; expected float32, float16, int8, uint8 or int16");
}

std::vector<std::string> io_dtype_names() { return {"float32", "float16", "int8", "uint8", "int16"}; }

void io_dtype_range(IoDType t, int64_t* lo, int64_t* hi) {
  switch (t) {
    case IoDType::kInt8: *lo = -128; *hi = 127; return;
    case IoDType::kUInt8: *lo = 0; *hi = 255; return;
    case IoDType::kInt16: *lo = -32768; *hi = 32767; return;
    default: *lo = 0; *hi = 0; return;
  }
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n;
}

size_t checked_bytes(int64_t numel, IoDType dtype) {
  size_t b = 0;
  if (numel < 0 || __builtin_mul_overflow(static_cast<size_t>(numel), io_dtype_size(dtype), &b)) {
    return std::numeric_limits<size_t>::max();
  }
  return b;
}

int64_t TensorSpec::numel() const { return shape.empty() ? 0 : checked_numel(shape); }

int64_t TensorSpec::device_numel() const { return padded() ? checked_numel(padded_shape) : numel(); }

bool TensorSpec::padded_last_dim_only() const {
  if (!padded()) return true;
  for (size_t i = 0; i + 1 < shape.size(); ++i) {
    if (padded_shape[i] != shape[i]) return false;
  }
  return true;
}

StatusOr<std::vector<int64_t>> padded_shape_from_dims(const std::vector<int64_t>& logical, const uint32_t padded4[4]) {
  const size_t r = logical.size();
  std::vector<int64_t> p4(padded4, padded4 + 4);
  if (r >= 1 && r <= 4) {
    bool fits = true;
    std::vector<int64_t> out(r);
    for (size_t k = 0; k < 4; ++k) {
      const int64_t want = k + r >= 4 ? logical[k + r - 4] : 1;
      const int64_t got = k + r < 4 ? std::max<int64_t>(1, p4[k]) : p4[k];  // unused leading dims: 0 or 1
      if (got < want || (k + r < 4 && got != 1)) fits = false;
      if (k + r >= 4) out[k + r - 4] = got;
    }
    if (fits) return out;
    // The runtime may fold the leading dimensions differently: same rows, wider last dimension.
    // Checked products: the dimensions come from the runtime (three uint32 overflow int64).
    int64_t rows = 1, prows = 1;
    bool overflow = false;
    for (size_t k = 0; k + 1 < r; ++k) overflow |= __builtin_mul_overflow(rows, logical[k], &rows);
    for (size_t k = 0; k < 3; ++k) overflow |= __builtin_mul_overflow(prows, std::max<int64_t>(1, p4[k]), &prows);
    if (!overflow && prows == rows && p4[3] >= logical.back()) {
      out = logical;
      out.back() = p4[3];
      return out;
    }
  }
  return bad_model("the runtime's padded dimensions " + shape_string(p4) + " do not hold the tensor " +
                   shape_string(logical));
}

std::string TensorSpec::describe() const {
  std::ostringstream s;
  if (!name.empty()) s << name << " ";
  s << shape_string(shape) << " " << io_dtype_name(dtype);
  if (io_dtype_is_quantized(dtype)) s << " (scale " << scale << ", zero point " << zero_point << ")";
  if (transposed) s << ", transposed";
  if (padded()) s << ", padded to " << shape_string(padded_shape);
  return s.str();
}

Status TensorSpec::validate() const {
  if (shape.empty()) return invalid_argument("tensor " + name + " has no shape");
  if (shape.size() > static_cast<size_t>(kMaxTensorRank)) {
    return invalid_argument("tensor " + name + " " + shape_string(shape) + " has more than " +
                            std::to_string(kMaxTensorRank) + " dimensions");
  }
  // Bounded so that element and byte counts stay far inside int64/size_t (2^40 elements = 4 TiB).
  constexpr int64_t kMaxElements = int64_t{1} << 40;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0) return invalid_argument("tensor " + name + " has a non-positive dimension: " + shape_string(shape));
    if (d > kMaxElements / n) return invalid_argument("tensor " + name + " " + shape_string(shape) + " is too large");
    n *= d;
  }
  // After the shape: padded dimensions >= positive ones are positive, their product stays bounded.
  if (!padded_shape.empty()) {
    if (padded_shape.size() != shape.size()) {
      return invalid_argument("tensor " + name + ": padded shape " + shape_string(padded_shape) +
                              " has another rank than its shape " + shape_string(shape));
    }
    constexpr int64_t kMax = int64_t{1} << 40;
    int64_t pn = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (padded_shape[i] < shape[i]) {
        return invalid_argument("tensor " + name + ": padded shape " + shape_string(padded_shape) +
                                " is smaller than its shape " + shape_string(shape) + " in dimension " +
                                std::to_string(i));
      }
      if (padded_shape[i] > kMax / pn) return invalid_argument("tensor " + name + " padded shape is too large");
      pn *= padded_shape[i];
    }
  }
  if (io_dtype_is_quantized(dtype)) {
    if (!(scale > 0.0f) || !std::isfinite(scale)) {
      std::ostringstream s;
      s << "tensor " << name << " is " << io_dtype_name(dtype) << " but its scale is " << scale
        << ": a quantized tensor needs a positive, finite scale";
      return invalid_argument(s.str());
    }
    int64_t lo, hi;
    io_dtype_range(dtype, &lo, &hi);
    if (zero_point < lo || zero_point > hi) {
      return invalid_argument("tensor " + name + " has zero point " + std::to_string(zero_point) + ", outside the " +
                              io_dtype_name(dtype) + " range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
  }
  return Status::Ok();
}

std::string describe_size_mismatch(size_t got_bytes, const TensorSpec& expected) {
  std::ostringstream s;
  s << "expected " << expected.bytes() << " bytes (" << shape_string(expected.shape) << " "
    << io_dtype_name(expected.dtype) << "), got " << got_bytes << " bytes";
  const int64_t n = expected.numel();
  if (n > 0 && got_bytes % static_cast<size_t>(n) == 0) {
    const size_t per = got_bytes / static_cast<size_t>(n);
    const char* meaning = per == 4 ? "float32" : per == 2 ? "float16 or int16" : per == 1 ? "int8 or uint8" : nullptr;
    if (meaning != nullptr) {
      s << ": that is the size of " << shape_string(expected.shape) << " " << meaning;
      return s.str();
    }
  }
  // Same element size, another width: maybe a different Whisper size's encoder.
  if (expected.shape.size() >= 2) {
    const int64_t last = expected.shape.back();
    const int64_t rest = n / std::max<int64_t>(1, last);
    const size_t es = io_dtype_size(expected.dtype);
    if (rest > 0 && got_bytes % (static_cast<size_t>(rest) * es) == 0) {
      const int64_t other = static_cast<int64_t>(got_bytes / (static_cast<size_t>(rest) * es));
      std::vector<int64_t> shape = expected.shape;
      shape.back() = other;
      s << ": that is the size of " << shape_string(shape) << " " << io_dtype_name(expected.dtype)
        << " (a different model width?)";
      return s.str();
    }
  }
  s << ": not a whole number of " << shape_string(expected.shape) << " elements of any supported dtype";
  if (got_bytes < expected.bytes()) {
    s << " (" << std::fixed << std::setprecision(3)
      << static_cast<double>(got_bytes) / static_cast<double>(expected.bytes())
      << " of the expected size: truncated, or another model?)";
  }
  return s.str();
}

namespace {

// Offsets (in elements) of consecutive device rows - every index but the last, in order - in the
// device buffer, padded or not.
class RowWalker {
 public:
  explicit RowWalker(const TensorSpec& t) {
    const std::vector<int64_t>& pad = t.padded() ? t.padded_shape : t.shape;
    n_ = t.shape.empty() ? 0 : static_cast<int>(t.shape.size()) - 1;
    int64_t stride = pad.empty() ? 0 : pad.back();
    for (int k = n_ - 1; k >= 0; --k) {
      dims_[k] = t.shape[static_cast<size_t>(k)];
      stride_[k] = stride;
      stride *= pad[static_cast<size_t>(k)];
    }
  }
  int64_t offset() const { return off_; }
  void next() {
    for (int k = n_ - 1; k >= 0; --k) {
      off_ += stride_[k];
      if (++idx_[k] < dims_[k]) return;
      off_ -= idx_[k] * stride_[k];
      idx_[k] = 0;
    }
  }

 private:
  int n_ = 0;
  int64_t off_ = 0;
  int64_t dims_[kMaxTensorRank] = {}, stride_[kMaxTensorRank] = {}, idx_[kMaxTensorRank] = {};
};

// f(host index, device index) for every element of the host's [rows, cols]. Unpadded tensors
// need only rows and cols (callers may give the host shape); a padded one is walked by its
// device shape and padded shape.
template <typename F>
void for_each_element(const TensorSpec& spec, int64_t rows, int64_t cols, F&& f) {
  if (!spec.padded()) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) f(r * cols + c, spec.transposed ? c * rows + r : r * cols + c);
    }
    return;
  }
  RowWalker w(spec);
  if (!spec.transposed) {
    for (int64_t r = 0; r < rows; ++r, w.next()) {
      const int64_t base = w.offset();
      for (int64_t c = 0; c < cols; ++c) f(r * cols + c, base + c);
    }
    return;
  }
  for (int64_t c = 0; c < cols; ++c, w.next()) {  // device row c holds host column c
    const int64_t base = w.offset();
    for (int64_t r = 0; r < rows; ++r) f(r * cols + c, base + r);
  }
}

template <typename Q>
void quantize_t(const float* src, int64_t rows, int64_t cols, const TensorSpec& spec, Q* dst) {
  int64_t lo, hi;
  io_dtype_range(spec.dtype, &lo, &hi);
  const float inv = 1.0f / spec.scale;
  const float zp = static_cast<float>(spec.zero_point);
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  for_each_element(spec, rows, cols, [&](int64_t h, int64_t o) {
    float q = std::round(src[h] * inv) + zp;
    if (!(q >= flo)) q = flo;  // NaN -> lowest
    if (q > fhi) q = fhi;
    dst[o] = static_cast<Q>(q);
  });
}

template <typename Q>
void dequantize_t(const Q* src, int64_t rows, int64_t cols, const TensorSpec& spec, float* dst) {
  const float scale = spec.scale;
  const int32_t zp = spec.zero_point;
  for_each_element(spec, rows, cols, [&](int64_t h, int64_t i) {
    dst[h] = static_cast<float>(static_cast<int32_t>(src[i]) - zp) * scale;
  });
}

}  // namespace

void host_rows_cols(const TensorSpec& spec, int64_t* rows, int64_t* cols) {
  const int64_t n = spec.numel();
  const int64_t last = spec.shape.empty() ? 1 : spec.shape.back();
  if (spec.transposed) {  // device [.., a, b] holds host [b, a]
    *rows = last;
    *cols = last > 0 ? n / last : 0;
  } else {
    *cols = last;
    *rows = last > 0 ? n / last : 0;
  }
}

void quantize_from_float(const float* src, int64_t rows, int64_t cols, const TensorSpec& spec, void* dst) {
  switch (spec.dtype) {
    case IoDType::kFloat32: {
      float* d = static_cast<float*>(dst);
      if (!spec.transposed && !spec.padded()) {
        if (d != src) std::memcpy(d, src, static_cast<size_t>(rows * cols) * sizeof(float));
        return;
      }
      for_each_element(spec, rows, cols, [&](int64_t h, int64_t o) { d[o] = src[h]; });
      return;
    }
    case IoDType::kFloat16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for_each_element(spec, rows, cols, [&](int64_t h, int64_t o) { d[o] = float_to_half(src[h]); });
      return;
    }
    case IoDType::kInt8: quantize_t(src, rows, cols, spec, static_cast<int8_t*>(dst)); return;
    case IoDType::kUInt8: quantize_t(src, rows, cols, spec, static_cast<uint8_t*>(dst)); return;
    case IoDType::kInt16: quantize_t(src, rows, cols, spec, static_cast<int16_t*>(dst)); return;
  }
}

void dequantize_to_float(const void* src, int64_t rows, int64_t cols, const TensorSpec& spec, float* dst) {
  switch (spec.dtype) {
    case IoDType::kFloat32: {
      const float* s = static_cast<const float*>(src);
      if (!spec.transposed && !spec.padded()) {
        if (s != dst) std::memcpy(dst, s, static_cast<size_t>(rows * cols) * sizeof(float));
        return;
      }
      for_each_element(spec, rows, cols, [&](int64_t h, int64_t i) { dst[h] = s[i]; });
      return;
    }
    case IoDType::kFloat16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for_each_element(spec, rows, cols, [&](int64_t h, int64_t i) { dst[h] = half_to_float(s[i]); });
      return;
    }
    case IoDType::kInt8: dequantize_t(static_cast<const int8_t*>(src), rows, cols, spec, dst); return;
    case IoDType::kUInt8: dequantize_t(static_cast<const uint8_t*>(src), rows, cols, spec, dst); return;
    case IoDType::kInt16: dequantize_t(static_cast<const int16_t*>(src), rows, cols, spec, dst); return;
  }
}

}  // namespace whisper_genio::backends
