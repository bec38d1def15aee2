// libFuzzer target: device tensor specs and the native (de)quantization (backends/tensor_io).
// A spec of fuzzed dimensions, dtype, scale, zero point, transpose and padding is validated; every
// size query must stay defined (no signed overflow) whatever the shape, and a spec that validates
// converts the input's bytes both ways (bounded to 1 MiB so one input stays fast).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <vector>

#include "../../csrc/src/backends/tensor_io.h"

using whisper_genio::backends::TensorSpec;
namespace be = whisper_genio::backends;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  TensorSpec t;
  const int rank = in.ConsumeIntegralInRange<int>(0, be::kMaxTensorRank + 1);
  // Small dimensions mostly (so conversions run), any int64 sometimes (the overflow paths).
  auto dim = [&]() -> int64_t {
    return in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(-1, 40) : in.ConsumeIntegral<int64_t>();
  };
  for (int i = 0; i < rank; ++i) t.shape.push_back(dim());
  t.dtype = static_cast<be::IoDType>(in.ConsumeIntegralInRange<int>(0, 4));
  t.scale = in.ConsumeFloatingPoint<float>();
  t.zero_point = in.ConsumeIntegral<int32_t>();
  t.transposed = in.ConsumeBool();
  if (in.ConsumeBool()) {
    for (int64_t d : t.shape) {
      int64_t p = 0;
      if (!in.ConsumeBool() || __builtin_add_overflow(d, in.ConsumeIntegralInRange<int64_t>(0, 8), &p)) p = dim();
      t.padded_shape.push_back(p);
    }
  }
  // Size queries are defined for any shape (numel -1 / bytes SIZE_MAX when they overflow).
  (void)t.numel();
  (void)t.bytes();
  (void)t.device_numel();
  (void)t.device_bytes();
  (void)t.describe();
  (void)be::describe_size_mismatch(in.ConsumeIntegral<size_t>(), t);
  uint32_t p4[4];
  for (uint32_t& p : p4) p = in.ConsumeIntegral<uint32_t>();
  (void)be::padded_shape_from_dims(t.shape, p4);

  if (!t.validate().ok()) return 0;
  if (t.device_bytes() > (size_t{1} << 20) || t.bytes() > (size_t{1} << 20)) return 0;
  int64_t rows = 0, cols = 0;
  be::host_rows_cols(t, &rows, &cols);
  if (rows * cols != t.numel()) __builtin_trap();  // the host view covers the tensor exactly
  std::vector<uint8_t> device = in.ConsumeBytes<uint8_t>(t.device_bytes());
  device.resize(t.device_bytes());
  std::vector<float> host(static_cast<size_t>(t.numel()));
  be::dequantize_to_float(device.data(), rows, cols, t, host.data());
  be::quantize_from_float(host.data(), rows, cols, t, device.data());
  return 0;
}
