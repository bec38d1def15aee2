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
  // The same with int8 weights widened to float (no scale: the caller applies per-row scales
  // to y): the decoder's cross-attention scores over int8 keys.
  void (*gemv_nk_i8w)(int64_t M, int64_t K, const float* x, int64_t ldx, const int8_t* w, int64_t ldw,
                      int64_t n0, int64_t n1, float* y, int64_t ldy);
  // int8 x int8 with int32 accumulation: y[m * ldy + n] = xs[m] * ws[n] * sum_k xq[m, k] * w[n, k],
  // where xq holds activations quantized per row (symmetric, |q| <= 127) and w per output row.
  void (*gemv_nk_i8)(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                     int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy);

  // int8 x int8 GEMM over packed panels (gemm_i8 in gemm.cc drives it; the large-M path of
  // int8 Linears: encoder, cross-attention K/V). Activation rows are quantised per row and
  // packed in panels of i8_mr rows, the weight [N, K] once at load in panels of i8_nr
  // columns. K is zero-padded to a multiple of i8_kg and each panel stores groups of i8_kg
  // consecutive k per row (column): panel[g][p][j] = x[p][g * i8_kg + j]. Activations are
  // quantised to gemm_i8_a_qmax(K) levels (up to 15 bits: 8 bits lost too much accuracy in
  // the encoder) and packed either as int16 (i8_a_wide: kernels that multiply in int16
  // anyway, AVX2 vpmaddwd) or split into two int8 panels, hi then lo, with q = 256 hi + lo,
  // |hi| <= 127, -128 <= lo <= 127 (kernels with int8 multipliers: two passes over K).
  int i8_mr;
  int i8_nr;
  int i8_kg;
  bool i8_a_wide;
  // One full i8_mr x i8_nr tile over kgroups groups, int32 sums, then the epilogue:
  //   out[i * ldo + j] = sum_k a[i, k] b[j, k] * as[i] * ws[j] + (bias ? bias[j] : 0)
  void (*gemm_i8_tile)(int64_t kgroups, const void* a, const int8_t* b, const float* as, const float* ws,
                       const float* bias, float* out, int64_t ldo);
  // Symmetric per-row quantisation, the same numbers as ops.h quantize_row_i8 (round half to
  // even of x * (127 / max|x|)); returns the scale max|x| / 127 (0 for an all-zero row).
  float (*quantize_row_i8)(const float* x, int64_t n, int8_t* q);
  // The same rule to qmax levels into int16 (round half to even of x * (qmax / max|x|));
  // returns max|x| / qmax. Used by gemm_i8 to quantise activations.
  float (*quantize_row_i16)(const float* x, int64_t n, float qmax, int16_t* q);

  // y[i] = float_to_half(x[i]) (model.h: round to nearest even), the same bits on every table.
  void (*floats_to_half)(const float* x, int64_t n, uint16_t* y);

  // Attention output: y[0..n) = sum_t p[t] * V[t, 0..n) over T rows of stride ldv (float32 or
  // float16 V); the n outputs stay in registers across all T rows.
  void (*weighted_rows)(const float* p, int64_t T, const float* V, int64_t ldv, int64_t n, float* y);
  void (*weighted_rows_f16)(const float* p, int64_t T, const uint16_t* V, int64_t ldv, int64_t n, float* y);
  // int8 V widened to float, no scale (the caller folds each row's scale into p).
  void (*weighted_rows_i8)(const float* p, int64_t T, const int8_t* V, int64_t ldv, int64_t n, float* y);

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
// The NEON table with the base (non-dotprod) int8 kernels whatever the CPU has: the kernel
// the Genio 350's Cortex-A53 runs, reachable for tests on dotprod CPUs and emulators.
const KernelTable& neon_nodot_kernels();
void gemm_i8_tile_dotprod(int64_t kgroups, const void* a, const int8_t* b, const float* as, const float* ws,
                          const float* bias, float* out, int64_t ldo);
void gemv_nk_i8_dotprod(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                        int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy);
#endif

// The table for active_isa().
const KernelTable& kernels();

}  // namespace whisper_genio::cpu
