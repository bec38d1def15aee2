// Branch-free scalar approximations of exp and erf, written so that compilers vectorize
// the loops that call them. Used by the generic kernels and as the reference for the SIMD
// versions (same constants, same steps).
#pragma once

#include <cstdint>
#include <cstring>

#include "scalar.h"

namespace whisper_genio::cpu::approx {
// Internal linkage: every kernel file gets its own copy, built with that file's ISA flags.
// Plain inline functions are merged across files where the compiler does not inline them
// (Debug builds), and the copy kept could be the one built with -mavx2 -mfma.
namespace {

// Cody-Waite range reduction + degree-6 polynomial (Cephes expf coefficients).
// Relative error about 1e-7 over the float range; returns 0 below -87.3 (including -inf).
inline float expf_fast(float x) {
  const float kHi = 88.3762626647949f;
  const float kLo = -87.3365447504f;
  const bool underflow = x < kLo;  // also true for -inf
  x = x > kHi ? kHi : x;
  x = x < kLo ? kLo : x;
  float n = scalar::round_even(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  float y = p * r * r + r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &y, sizeof(bits));
  // Add n to the exponent field; the shift is done unsigned (shifting a negative int is UB).
  bits += static_cast<int32_t>(static_cast<uint32_t>(static_cast<int32_t>(n)) << 23);
  std::memcpy(&y, &bits, sizeof(bits));
  return underflow ? 0.0f : y;
}

// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7).
inline float erf_fast(float x) {
  const float sign = x < 0.0f ? -1.0f : 1.0f;
  const float a = scalar::abs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  return sign * (1.0f - p * t * expf_fast(-a * a));
}

inline float gelu(float x) { return 0.5f * x * (1.0f + erf_fast(x * 0.70710678118654752f)); }

}  // namespace
}  // namespace whisper_genio::cpu::approx
