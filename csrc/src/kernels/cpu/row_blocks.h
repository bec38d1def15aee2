// Compile-time row blocks for the small-M GEMVs of the per-ISA tables.
#pragma once

#include <cstdint>
#include <type_traits>

#include "scalar.h"

namespace whisper_genio::cpu {

// The most rows one pass over the weights serves: the decoder's M is the beam count (or
// best_of), at most 8 (ops.cc kSmallM), so a beam of 5 streams every weight row once.
inline constexpr int kGemvMaxRows = 8;

// Calls f(std::integral_constant<int, MB>{}, m0) for consecutive blocks of MB <= 8 rows
// covering [0, M): kernels unroll over a compile-time MB, keeping each row's accumulators in
// registers (a run-time row count sends them to the stack).
template <typename F>
inline void for_row_blocks(int64_t M, F&& f) {
  for (int64_t m0 = 0; m0 < M; m0 += kGemvMaxRows) {
    switch (scalar::min(int64_t{kGemvMaxRows}, M - m0)) {
      case 1: f(std::integral_constant<int, 1>{}, m0); break;
      case 2: f(std::integral_constant<int, 2>{}, m0); break;
      case 3: f(std::integral_constant<int, 3>{}, m0); break;
      case 4: f(std::integral_constant<int, 4>{}, m0); break;
      case 5: f(std::integral_constant<int, 5>{}, m0); break;
      case 6: f(std::integral_constant<int, 6>{}, m0); break;
      case 7: f(std::integral_constant<int, 7>{}, m0); break;
      default: f(std::integral_constant<int, 8>{}, m0); break;
    }
  }
}

}  // namespace whisper_genio::cpu
