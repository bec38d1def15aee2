// Scalar min, max, abs and round-to-nearest-even for the code that per-ISA files compile
// with their ISA flags. Same results as std::min, std::max, std::fabs and std::nearbyint, but
// with internal linkage: those are inline functions that unoptimised builds emit in every
// file and the linker merges, so the copy kept could be one built with -mavx2 -mfma.
#pragma once

#include <cstdint>

namespace whisper_genio::cpu::scalar {
namespace {

inline float max(float a, float b) { return a < b ? b : a; }
inline float min(float a, float b) { return b < a ? b : a; }
inline int64_t min(int64_t a, int64_t b) { return b < a ? b : a; }
inline float abs(float v) { return __builtin_fabsf(v); }
inline float round_even(float v) { return __builtin_nearbyintf(v); }  // in the default rounding mode

}  // namespace
}  // namespace whisper_genio::cpu::scalar
