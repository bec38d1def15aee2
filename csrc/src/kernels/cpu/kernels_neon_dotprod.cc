// int8 dot products with the ARMv8.2 dot-product extension (SDOT). This file alone is
// compiled with +dotprod; it is only called when the CPU reports it (neon_has_dotprod()).
// The loops around the SDOT steps come from kernel_templates.h.
#include <arm_neon.h>

#if defined(__linux__)
#include <sys/auxv.h>
#endif

#include "kernel_table.h"
#include "kernel_templates.h"
#include "simd_neon.h"

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

namespace whisper_genio::cpu {

bool neon_has_dotprod() {
#if defined(__linux__)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}

namespace {

// The SDOT int8 dot step of the small-M GEMV (kernel_templates.h gemv_nk_i8).
struct NeonDotI8 : NeonI8Base {
  static Acc madd(Acc acc, Bytes x, Bytes w) { return vdotq_s32(acc, x, w); }
};

}  // namespace

void gemv_nk_i8_dotprod(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                        int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  simd::gemv_nk_i8<NeonDotI8>(M, K, xq, ldx, xs, w, ldw, ws, n0, n1, y, ldy);
}

// int8 GEMM tile with SDOT: 8 rows x 12 columns, k in groups of 4. Each B vector holds 4
// columns x 4 k; one SDOT by an A lane (4 k of one row) adds 16 products into 4 int32 sums.
// 24 accumulators + 3 B + 2 A registers out of 32.
void gemm_i8_tile_dotprod(int64_t kgroups, const void* ap, const int8_t* b, const float* as, const float* ws,
                          const float* bias, float* out, int64_t ldo) {
  int32x4_t acc[8][3];
  for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_s32(0);
  auto sdot_lane = [](int32x4_t s, int8x16_t bv, int8x16_t av, auto lane) {
    return vdotq_laneq_s32(s, bv, av, decltype(lane)::value);
  };
  auto step = [&](const int8_t* a, const int8_t* bg) {
    const int8x16_t bv[3] = {vld1q_s8(bg), vld1q_s8(bg + 16), vld1q_s8(bg + 32)};
    const int8x16_t av[2] = {vld1q_s8(a), vld1q_s8(a + 16)};
    lane_tile_8x3(acc, bv, av, sdot_lane);
  };
  auto times256 = [&] {
    for (int i = 0; i < 8; ++i) {
      for (int v = 0; v < 3; ++v) acc[i][v] = vshlq_n_s32(acc[i][v], 8);
    }
  };
  simd::split_a_passes(kgroups, static_cast<const int8_t*>(ap), 32, b, 48, step, times256);
  simd::store_i8_tile<Neon>(acc, as, ws, bias, out, ldo);
}

}  // namespace whisper_genio::cpu
