// int8 dot products with the ARMv8.2 dot-product extension (SDOT). This file alone is
// compiled with +dotprod; it is only called when the CPU reports it (neon_has_dotprod()).
#include <arm_neon.h>

#include <algorithm>

#if defined(__linux__)
#include <sys/auxv.h>
#endif

#include "kernel_table.h"

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

void gemv_nk_i8_dotprod(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                        int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  for (int64_t m0 = 0; m0 < M; m0 += 4) {
    const int64_t mb = std::min<int64_t>(4, M - m0);
    const int8_t* xm = xq + m0 * ldx;
    for (int64_t n = n0; n < n1; ++n) {
      const int8_t* wn = w + n * ldw;
      int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
      int64_t k = 0;
      for (; k + 16 <= K; k += 16) {
        const int8x16_t wv = vld1q_s8(wn + k);
        for (int64_t m = 0; m < mb; ++m) acc[m] = vdotq_s32(acc[m], vld1q_s8(xm + m * ldx + k), wv);
      }
      for (int64_t m = 0; m < mb; ++m) {
        int32_t s = vaddvq_s32(acc[m]);
        for (int64_t kk = k; kk < K; ++kk) s += static_cast<int32_t>(xm[m * ldx + kk]) * wn[kk];
        y[(m0 + m) * ldy + n] = static_cast<float>(s) * xs[m0 + m] * ws[n];
      }
    }
  }
}

}  // namespace whisper_genio::cpu
