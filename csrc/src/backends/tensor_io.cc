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

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return shape.empty() ? 0 : n;
}

std::string TensorSpec::describe() const {
  std::ostringstream s;
  if (!name.empty()) s << name << " ";
  s << shape_string(shape) << " " << io_dtype_name(dtype);
  if (io_dtype_is_quantized(dtype)) s << " (scale " << scale << ", zero point " << zero_point << ")";
  if (transposed) s << ", transposed";
  return s.str();
}

Status TensorSpec::validate() const {
  if (shape.empty()) return invalid_argument("tensor " + name + " has no shape");
  // Bounded so that element and byte counts stay far inside int64/size_t (2^40 elements = 4 TiB).
  constexpr int64_t kMaxElements = int64_t{1} << 40;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0) return invalid_argument("tensor " + name + " has a non-positive dimension: " + shape_string(shape));
    if (d > kMaxElements / n) return invalid_argument("tensor " + name + " " + shape_string(shape) + " is too large");
    n *= d;
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

template <typename Q>
void quantize_t(const float* src, int64_t rows, int64_t cols, const TensorSpec& spec, Q* dst) {
  int64_t lo, hi;
  io_dtype_range(spec.dtype, &lo, &hi);
  const float inv = 1.0f / spec.scale;
  const float zp = static_cast<float>(spec.zero_point);
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float q = std::round(src[r * cols + c] * inv) + zp;
      if (!(q >= flo)) q = flo;  // NaN -> lowest
      if (q > fhi) q = fhi;
      const int64_t o = spec.transposed ? c * rows + r : r * cols + c;
      dst[o] = static_cast<Q>(q);
    }
  }
}

template <typename Q>
void dequantize_t(const Q* src, int64_t rows, int64_t cols, const TensorSpec& spec, float* dst) {
  const float scale = spec.scale;
  const int32_t zp = spec.zero_point;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = spec.transposed ? c * rows + r : r * cols + c;
      dst[r * cols + c] = static_cast<float>(static_cast<int32_t>(src[i]) - zp) * scale;
    }
  }
}

}  // namespace

void quantize_from_float(const float* src, int64_t rows, int64_t cols, const TensorSpec& spec, void* dst) {
  switch (spec.dtype) {
    case IoDType::kFloat32: {
      float* d = static_cast<float*>(dst);
      if (!spec.transposed) {
        if (d != src) std::memcpy(d, src, static_cast<size_t>(rows * cols) * sizeof(float));
        return;
      }
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) d[c * rows + r] = src[r * cols + c];
      return;
    }
    case IoDType::kFloat16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          d[spec.transposed ? c * rows + r : r * cols + c] = float_to_half(src[r * cols + c]);
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
      if (!spec.transposed) {
        if (s != dst) std::memcpy(dst, s, static_cast<size_t>(rows * cols) * sizeof(float));
        return;
      }
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) dst[r * cols + c] = s[c * rows + r];
      return;
    }
    case IoDType::kFloat16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          dst[r * cols + c] = half_to_float(s[spec.transposed ? c * rows + r : r * cols + c]);
      return;
    }
    case IoDType::kInt8: dequantize_t(static_cast<const int8_t*>(src), rows, cols, spec, dst); return;
    case IoDType::kUInt8: dequantize_t(static_cast<const uint8_t*>(src), rows, cols, spec, dst); return;
    case IoDType::kInt16: dequantize_t(static_cast<const int16_t*>(src), rows, cols, spec, dst); return;
  }
}

}  // namespace whisper_genio::backends
