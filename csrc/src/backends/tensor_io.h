// Device tensor I/O shared by the accelerator backends (neuron, replay): the dtypes an MDLA
// DLA (or a neuronrt output.bin) may use, their byte sizes, and native quantize/dequantize
// with a per-tensor scale and zero point, optionally with the [a, b] <-> [b, a] transpose
// that a different device layout needs, in the same pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "whisper_genio/status.h"

namespace whisper_genio::backends {

enum class IoDType { kFloat32 = 0, kFloat16 = 1, kInt8 = 2, kUInt8 = 3, kInt16 = 4 };

const char* io_dtype_name(IoDType t);
size_t io_dtype_size(IoDType t);
bool io_dtype_is_quantized(IoDType t);
StatusOr<IoDType> parse_io_dtype(const std::string& name);  // "float32", "fp16", "int8", ...
std::vector<std::string> io_dtype_names();                  // the canonical names, in IoDType's order
// The integer range of a quantized dtype ([0, 0] for the float ones).
void io_dtype_range(IoDType t, int64_t* lo, int64_t* hi);

inline constexpr int kMaxTensorRank = 8;

// The product of `shape` (1 for no dimension), or -1 when a dimension is negative or the product
// overflows int64: callers check before they allocate.
int64_t checked_numel(const std::vector<int64_t>& shape);
// numel elements of dtype in bytes, or SIZE_MAX when numel < 0 or the product overflows size_t.
size_t checked_bytes(int64_t numel, IoDType dtype);

// A device tensor as a model bundle's manifest declares it.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  IoDType dtype = IoDType::kFloat32;
  float scale = 1.0f;     // quantized dtypes: real = (q - zero_point) * scale
  int32_t zero_point = 0;
  // Whether the two trailing dimensions are swapped with respect to the layout the host uses
  // (mel [n_mels, frames]; states [n_ctx, d]).
  bool transposed = false;
  // The device buffer's shape when the DLA's native I/O is padded (hardware alignment, e.g. the
  // last dimension rounded up to a multiple of 32 or 64 elements): same rank as `shape` (device
  // order), each dimension >= shape's; element [i, j, ...] of `shape` sits at [i, j, ...] of the
  // padded buffer, the rest is padding. Empty: not padded.
  std::vector<int64_t> padded_shape;

  // Element counts are -1 (and byte counts SIZE_MAX, which no buffer matches and no allocation
  // gets) when a dimension is negative or the product overflows; validate() refuses such shapes.
  int64_t numel() const;
  size_t bytes() const { return checked_bytes(numel(), dtype); }
  bool padded() const { return !padded_shape.empty() && padded_shape != shape; }
  int64_t device_numel() const;  // elements of the device buffer, padding included
  size_t device_bytes() const { return checked_bytes(device_numel(), dtype); }
  // Elements between consecutive rows (last-dimension runs) of the device buffer.
  int64_t device_row_stride() const { return padded() ? padded_shape.back() : (shape.empty() ? 0 : shape.back()); }
  // Only the last dimension is padded: the rows are evenly spaced by device_row_stride().
  bool padded_last_dim_only() const;
  std::string describe() const;  // "states [1, 1500, 512] int8 (scale 0.05, zero point -3)"
  Status validate() const;       // positive dims, scale > 0, zero point in the dtype's range, padding
};

// The padded shape of `logical` that a runtime's 4-D padded dimensions describe
// (NeuronRuntime_get*PaddedDimensions): `padded4` right-aligned to the logical rank, every
// dimension >= the logical one (the leading ones 1); or, where the runtime folds the leading
// dimensions differently, the same leading element count with a wider last dimension. An error
// names both shapes when neither reading fits.
StatusOr<std::vector<int64_t>> padded_shape_from_dims(const std::vector<int64_t>& logical, const uint32_t padded4[4]);

std::string shape_string(const std::vector<int64_t>& shape);

// "expected 3072000 bytes ([1, 1500, 512] float32), got 1536000 bytes: that is the size of
// [1, 1500, 512] float16 or int16" - what a wrong byte size would mean.
std::string describe_size_mismatch(size_t got_bytes, const TensorSpec& expected);

// The host's [rows, cols] view of a device tensor (what the converters below take): the last
// dimension is the columns; for a transposed tensor the host's rows are the device's columns.
void host_rows_cols(const TensorSpec& spec, int64_t* rows, int64_t* cols);

// src float [rows, cols] -> dst in spec.dtype, [rows, cols] or, when spec.transposed,
// [cols, rows]; a padded spec writes each device row at its padded offset (padding untouched). Quantized: q = clamp(round(x * (1 / scale)) + zero_point) to the dtype's range
// (NaN -> the lowest value), rounding half away from zero (std::round: 2.5 -> 3, -2.5 -> -3),
// which is the rounding of TFLite's reference QUANTIZE kernel (not numpy's half-to-even; x times
// the float reciprocal of scale may differ from TFLite's x / scale in the last bit). This is the one
// quantization of device tensors: the Python tools use it too (whisper_genio._core.quantize).
// float16: round to nearest even (overflow -> inf, NaN stays NaN).
void quantize_from_float(const float* src, int64_t rows, int64_t cols, const TensorSpec& spec, void* dst);
// src in spec.dtype ([rows, cols], or [cols, rows] when transposed; padded rows where the spec
// is padded, the padding ignored) -> dst float [rows, cols].
void dequantize_to_float(const void* src, int64_t rows, int64_t cols, const TensorSpec& spec, float* dst);

}  // namespace whisper_genio::backends
