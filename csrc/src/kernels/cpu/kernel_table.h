// The per-ISA primitive table. Each ISA file (kernels_generic.cc, kernels_avx2.cc,
// kernels_neon.cc) fills one; gemm.cc and ops.cc build everything else on top of it, so
// adding an ISA means writing these few functions only.
#pragma once

#include <cstdint>

#include "isa.h"

namespace whisper_genio::cpu {

struct KernelTable {
  Isa isa;
  // GEMM micro-tile: C[mr x nr] (row stride ldc) (+)= Apanel * Bpanel, where Apanel holds kc
  // columns of mr values (k-major) and Bpanel kc rows of nr values. Both zero padded.
  int mr;
  int nr;
  void (*gemm_tile)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);

  // Small-M matrix times transposed weight: for m < M and n in [n0, n1):
  //   y[m * ldy + n] = dot(x + m * ldx, w + n * ldw, K)
  // The decoder's per-token path (M = beams <= 8); streams each weight row once for all m.
  void (*gemv_nk)(int64_t M, int64_t K, const float* x, int64_t ldx, const float* w, int64_t ldw,
                  int64_t n0, int64_t n1, float* y, int64_t ldy);

  // The same with float16 weights (IEEE half bits), converted on the fly.
  void (*gemv_nk_f16)(int64_t M, int64_t K, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                      int64_t n0, int64_t n1, float* y, int64_t ldy);
  // int8 x int8 with int32 accumulation: y[m * ldy + n] = xs[m] * ws[n] * sum_k xq[m, k] * w[n, k],
  // where xq holds activations quantized per row (symmetric, |q| <= 127) and w per output row.
  void (*gemv_nk_i8)(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                     int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy);

  // Attention output: y[0..n) = sum_t p[t] * V[t, 0..n) over T rows of stride ldv (float32 or
  // float16 V); the n outputs stay in registers across all T rows.
  void (*weighted_rows)(const float* p, int64_t T, const float* V, int64_t ldv, int64_t n, float* y);
  void (*weighted_rows_f16)(const float* p, int64_t T, const uint16_t* V, int64_t ldv, int64_t n, float* y);

  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);  // y += alpha * x
  float (*max)(const float* x, int64_t n);
  // x[i] = exp(x[i] - shift); returns the sum. Accurate to a few ulp; exp(-inf) = 0.
  float (*exp_shift_sum)(float* x, int64_t n, float shift);
  // x[i] = gelu(x[i]) with the erf form (PyTorch's default GELU).
  void (*gelu)(float* x, int64_t n);
};

const KernelTable& generic_kernels();
#if defined(WG_HAVE_AVX2_KERNELS)
const KernelTable& avx2_kernels();
#endif
#if defined(__aarch64__)
const KernelTable& neon_kernels();
// The dot-product extension (ARMv8.2 SDOT), detected at run time; its kernel lives in a file
// compiled with +dotprod.
bool neon_has_dotprod();
void gemv_nk_i8_dotprod(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                        int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy);
#endif

// The table for active_isa().
const KernelTable& kernels();

}  // namespace whisper_genio::cpu
