// int8 dot products with the ARMv8.2 dot-product extension (SDOT). This file alone is
// compiled with +dotprod; it is only called when the CPU reports it (neon_has_dotprod()).
#include <arm_neon.h>

#include <algorithm>

#if defined(__linux__)
#include <sys/auxv.h>
#endif

#include "kernel_table.h"
#include "row_blocks.h"

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

template <int MB>
inline void gemv_i8_row_dotprod(int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* wn,
                                float ws, float* y, int64_t ldy) {
  int32x4_t acc[MB];
  for (int m = 0; m < MB; ++m) acc[m] = vdupq_n_s32(0);
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const int8x16_t wv = vld1q_s8(wn + k);
    for (int m = 0; m < MB; ++m) acc[m] = vdotq_s32(acc[m], vld1q_s8(xq + m * ldx + k), wv);
  }
  for (int m = 0; m < MB; ++m) {
    int32_t s = vaddvq_s32(acc[m]);
    for (int64_t kk = k; kk < K; ++kk) s += static_cast<int32_t>(xq[m * ldx + kk]) * wn[kk];
    y[m * ldy] = static_cast<float>(s) * xs[m] * ws;
  }
}

}  // namespace

// Every block of up to 8 activation rows streams the weights once.
void gemv_nk_i8_dotprod(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                        int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    for (int64_t n = n0; n < n1; ++n) {
      gemv_i8_row_dotprod<decltype(mb)::value>(K, xq + m0 * ldx, ldx, xs + m0, w + n * ldw, ws[n],
                                               y + m0 * ldy + n, ldy);
    }
  });
}

}  // namespace whisper_genio::cpu

namespace whisper_genio::cpu {

// int8 GEMM tile with SDOT: 8 rows x 12 columns, k in groups of 4. Each B vector holds 4
// columns x 4 k; one SDOT by an A lane (4 k of one row) adds 16 products into 4 int32 sums.
// 24 accumulators + 3 B + 2 A registers out of 32. A arrives split: hi panel, then lo panel.
void gemm_i8_tile_dotprod(int64_t kgroups, const void* ap, const int8_t* b, const float* as, const float* ws,
                          const float* bias, float* out, int64_t ldo) {
  const int8_t* a = static_cast<const int8_t*>(ap);
  int32x4_t acc[8][3];
  for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_s32(0);
  const int8_t* bstart = b;
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {  // sum = 128 * (hi . w) + lo . w
      for (int i = 0; i < 8; ++i) {
        for (int v = 0; v < 3; ++v) acc[i][v] = vshlq_n_s32(acc[i][v], 7);
      }
    }
    b = bstart;
    for (int64_t g = 0; g < kgroups; ++g) {
      const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
      const int8x16_t b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16), b2 = vld1q_s8(b + 32);
#define WG_ROW(i, av, lane)                                  \
  acc[i][0] = vdotq_laneq_s32(acc[i][0], b0, av, lane);      \
  acc[i][1] = vdotq_laneq_s32(acc[i][1], b1, av, lane);      \
  acc[i][2] = vdotq_laneq_s32(acc[i][2], b2, av, lane);
      WG_ROW(0, a0, 0) WG_ROW(1, a0, 1) WG_ROW(2, a0, 2) WG_ROW(3, a0, 3)
      WG_ROW(4, a1, 0) WG_ROW(5, a1, 1) WG_ROW(6, a1, 2) WG_ROW(7, a1, 3)
#undef WG_ROW
      a += 32;
      b += 48;
    }
  }
  float32x4_t w[3], z[3];
  for (int v = 0; v < 3; ++v) {
    w[v] = vld1q_f32(ws + 4 * v);
    z[v] = bias != nullptr ? vld1q_f32(bias + 4 * v) : vdupq_n_f32(0.0f);
  }
  for (int i = 0; i < 8; ++i) {
    for (int v = 0; v < 3; ++v) {
      vst1q_f32(out + i * ldo + 4 * v, vfmaq_f32(z[v], vcvtq_f32_s32(acc[i][v]), vmulq_n_f32(w[v], as[i])));
    }
  }
}

}  // namespace whisper_genio::cpu
