// The ISA-independent half of the kernel table: loops, row blocking, tails, accumulation
// order and epilogues, written once as templates over a small per-ISA vector type. Each
// per-ISA file (kernels_avx2.cc, kernels_neon.cc, ...) defines that type with its intrinsics
// and instantiates these templates, so every instantiation is compiled with that file's
// ISA flags and nothing else.
//
// Linkage: the vector types and int8 policies are declared in unnamed namespaces (simd_avx2.h,
// simd_neon.h, the kernel files), so every instantiation of a template here has internal
// linkage. Two files compiled with different flags therefore never share one copy (a merged
// inline copy built with -mavx2 could run before the CPUID check). Keep it that way: every
// function here takes such a type, or a lambda, as a template parameter, and scalar code
// uses scalar.h rather than std::min and friends.
//
// A vector type V provides (all static):
//   F, kWidth                       float vector of kWidth lanes
//   zero, set1, load(float* | uint16_t* half bits | int8_t*), store, widen (the one-element
//   load, for tails), add, sub, mul, div, min, max, abs, neg, fma(a, b, c) = a * b + c
//   fused, fnma(a, b, c) = c - a * b fused, round (to nearest even), hsum, hmax
//   M, less, zero_where, add_exponent   (exp: mask, a < b, mask ? 0 : y, y * 2^n)
//   with_sign_of(e, z)              (gelu: erf(|z|) given the sign of z)
//   store_i8(q, v0, v1), store_i16(q, v), store_half(y, v)   (round to nearest even, narrow)
//   I, to_float                     int32 vector of kWidth lanes (int8 GEMM epilogue)
//   kRowAcc                         accumulators weighted_rows keeps in registers
// Keep the operand order of min and max: AVX2's return the second operand when either is
// NaN, so swapping them changes results.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "kernel_table.h"
#include "math_approx.h"
#include "row_blocks.h"
#include "scalar.h"
#include "whisper_genio/model.h"

namespace whisper_genio::cpu::simd {

// ---- small-M GEMV (float32 / float16 / int8 weights widened to float) -------------------------

// MB input rows (up to 8) share each weight load: one pass over the weights per call. Each
// (row, output) keeps its own accumulator and summation order whatever MB is.
template <class V, int MB, typename W>
inline void gemv_rows(int64_t K, const float* x, int64_t ldx, const W* w, int64_t ldw, int64_t n0, int64_t n1,
                      float* y, int64_t ldy) {
  constexpr int kW = V::kWidth;
  for (int64_t n = n0; n < n1; ++n) {
    const W* wn = w + n * ldw;
    typename V::F acc[MB];
    for (int m = 0; m < MB; ++m) acc[m] = V::zero();
    int64_t k = 0;
    for (; k + kW <= K; k += kW) {
      const typename V::F wv = V::load(wn + k);
      for (int m = 0; m < MB; ++m) acc[m] = V::fma(V::load(x + m * ldx + k), wv, acc[m]);
    }
    for (int m = 0; m < MB; ++m) {
      float s = V::hsum(acc[m]);
      for (int64_t kk = k; kk < K; ++kk) s += x[m * ldx + kk] * V::widen(wn[kk]);
      y[m * ldy + n] = s;
    }
  }
}

template <class V, typename W>
void gemv_nk(int64_t M, int64_t K, const float* x, int64_t ldx, const W* w, int64_t ldw, int64_t n0, int64_t n1,
             float* y, int64_t ldy) {
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    gemv_rows<V, decltype(mb)::value>(K, x + m0 * ldx, ldx, w, ldw, n0, n1, y + m0 * ldy, ldy);
  });
}

// ---- small-M int8 x int8 GEMV ------------------------------------------------------------------
//
// An int8 policy D provides: Acc (int32 accumulator), Bytes (kStep int8 values), kStep,
// zero(), load(const int8_t*), madd(acc, x, w) (acc + the products of x and w, exact),
// hsum(acc) and stream<MB>(w) (a hint before each step over weight bytes w; may do nothing).

// One weight row against MB activation rows; the int32 sums are exact, so only the
// epilogue (sum * row scale * weight scale, in that order) decides the float result.
template <class D, int MB>
inline void gemv_i8_row(int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* wn, float ws,
                        float* y, int64_t ldy) {
  typename D::Acc acc[MB];
  for (int m = 0; m < MB; ++m) acc[m] = D::zero();
  int64_t k = 0;
  for (; k + D::kStep <= K; k += D::kStep) {
    D::template stream<MB>(wn + k);
    const typename D::Bytes wv = D::load(wn + k);
    for (int m = 0; m < MB; ++m) acc[m] = D::madd(acc[m], D::load(xq + m * ldx + k), wv);
  }
  for (int m = 0; m < MB; ++m) {
    int32_t s = D::hsum(acc[m]);
    for (int64_t kk = k; kk < K; ++kk) s += static_cast<int32_t>(xq[m * ldx + kk]) * wn[kk];
    y[m * ldy] = static_cast<float>(s) * xs[m] * ws;
  }
}

// Every block of up to 8 activation rows streams the weights once, one weight row at a time:
// interleaving several weight rows saves horizontal sums on cache-resident weights but loses
// on weights streamed from DRAM, which is where the decoder's come from.
template <class D>
void gemv_nk_i8(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    for (int64_t n = n0; n < n1; ++n) {
      gemv_i8_row<D, decltype(mb)::value>(K, xq + m0 * ldx, ldx, xs + m0, w + n * ldw, ws[n], y + m0 * ldy + n,
                                          ldy);
    }
  });
}

// ---- GEMM tiles: the ISA-independent parts ----------------------------------------------------

// A arrives split (kernel_table.h): the hi panel, then the lo panel, and sum = 256 * (hi . w)
// + lo . w: two passes over the same B panel, every accumulator times 256 in between.
// step(a, b) adds one k group; the panels advance by a_group and b_group bytes per group.
template <class Step, class Times256>
inline void split_a_passes(int64_t kgroups, const int8_t* a, int64_t a_group, const int8_t* b, int64_t b_group,
                           Step step, Times256 times256) {
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) times256();
    const int8_t* bg = b;
    for (int64_t g = 0; g < kgroups; ++g, a += a_group, bg += b_group) step(a, bg);
  }
}

// Float tile epilogue: C rows (+)= the MR x (NV vectors) accumulators.
template <class V, int MR, int NV>
inline void store_tile(typename V::F (&acc)[MR][NV], float* c, int64_t ldc, bool accumulate) {
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    for (int j = 0; j < NV; ++j) {
      if (accumulate) acc[i][j] = V::add(acc[i][j], V::load(ci + j * V::kWidth));
      V::store(ci + j * V::kWidth, acc[i][j]);
    }
  }
}

// int8 tile epilogue: out[i, j] = sum[i, j] * (as[i] * ws[j]) + bias[j], fused.
template <class V, int MR, int NV>
inline void store_i8_tile(const typename V::I (&sum)[MR][NV], const float* as, const float* ws, const float* bias,
                          float* out, int64_t ldo) {
  constexpr int kW = V::kWidth;
  typename V::F w[NV], z[NV];
  for (int j = 0; j < NV; ++j) {
    w[j] = V::load(ws + j * kW);
    z[j] = bias != nullptr ? V::load(bias + j * kW) : V::zero();
  }
  for (int i = 0; i < MR; ++i) {
    const typename V::F s = V::set1(as[i]);
    for (int j = 0; j < NV; ++j) {
      V::store(out + i * ldo + j * kW, V::fma(V::to_float(sum[i][j]), V::mul(s, w[j]), z[j]));
    }
  }
}

// ---- quantisation and conversion ---------------------------------------------------------------

template <class V>
inline float abs_max(const float* x, int64_t n) {
  typename V::F mv = V::zero();
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) mv = V::max(mv, V::abs(V::load(x + i)));
  float amax = V::hmax(mv);
  for (; i < n; ++i) amax = scalar::max(amax, scalar::abs(x[i]));
  return amax;
}

// The vector part of quantize_row: clamp to [-qmax, qmax], then round to nearest even and
// narrow (int8: two vectors per store). Returns how many elements it did.
template <class V, typename Q>
inline int64_t quantize_vectors(const float* x, int64_t n, float inv, float qmax, Q* q) {
  constexpr int kW = V::kWidth;
  const typename V::F iv = V::set1(inv), lo = V::set1(-qmax), hi = V::set1(qmax);
  auto clamped = [&](int64_t i) { return V::min(hi, V::max(lo, V::mul(V::load(x + i), iv))); };
  int64_t i = 0;
  if constexpr (sizeof(Q) == 1) {
    for (; i + 2 * kW <= n; i += 2 * kW) V::store_i8(q + i, clamped(i), clamped(i + kW));
  } else {
    for (; i + kW <= n; i += kW) V::store_i16(q + i, clamped(i));
  }
  return i;
}

// Symmetric per-row quantisation to qmax levels (kernel_table.h quantize_row_i8/_i16): one
// multiply by qmax / amax, round half to even; the same numbers on every table. A one-lane V
// (the generic table) does every element in the scalar loop.
template <class V, typename Q>
float quantize_row(const float* x, int64_t n, float qmax, Q* q) {
  const float amax = abs_max<V>(x, n);
  if (amax == 0.0f) {
    std::memset(q, 0, static_cast<size_t>(n) * sizeof(Q));
    return 0.0f;
  }
  const float inv = qmax / amax;
  int64_t i = 0;
  if constexpr (V::kWidth > 1) i = quantize_vectors<V>(x, n, inv, qmax, q);
  for (; i < n; ++i) {
    const float v = scalar::round_even(x[i] * inv);
    q[i] = static_cast<Q>(scalar::max(-qmax, scalar::min(qmax, v)));
  }
  return amax / qmax;
}

template <class V>
float quantize_row_i8(const float* x, int64_t n, int8_t* q) {
  return quantize_row<V>(x, n, 127.0f, q);
}

template <class V>
void floats_to_half(const float* x, int64_t n, uint16_t* y) {
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) V::store_half(y + i, V::load(x + i));
  for (; i < n; ++i) y[i] = float_to_half(x[i]);
}

// ---- attention output ---------------------------------------------------------------------------

// y[0..n) = sum_t p[t] * V[t, 0..n): columns in blocks of kRowAcc vectors held in registers
// across all T rows; the columns past the last full vector one element at a time.
template <class V, typename W>
void weighted_rows(const float* p, int64_t T, const W* rows, int64_t ldv, int64_t n, float* y) {
  constexpr int kW = V::kWidth, kAcc = V::kRowAcc;
  for (int64_t c0 = 0; c0 + kW <= n; c0 += kW * kAcc) {
    const int64_t nv = scalar::min(int64_t{kAcc}, (n - c0) / kW);
    typename V::F acc[kAcc];
    for (int i = 0; i < kAcc; ++i) acc[i] = V::zero();
    for (int64_t t = 0; t < T; ++t) {
      const typename V::F pt = V::set1(p[t]);
      for (int64_t i = 0; i < nv; ++i) acc[i] = V::fma(pt, V::load(rows + t * ldv + c0 + kW * i), acc[i]);
    }
    for (int64_t i = 0; i < nv; ++i) V::store(y + c0 + kW * i, acc[i]);
    if (nv < kAcc) break;
  }
  for (int64_t c = n / kW * kW; c < n; ++c) {
    float s = 0.0f;
    for (int64_t t = 0; t < T; ++t) s += p[t] * V::widen(rows[t * ldv + c]);
    y[c] = s;
  }
}

// ---- vector basics -----------------------------------------------------------------------------

template <class V>
float dot(const float* a, const float* b, int64_t n) {
  constexpr int kW = V::kWidth;
  typename V::F s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    s0 = V::fma(V::load(a + i), V::load(b + i), s0);
    s1 = V::fma(V::load(a + i + kW), V::load(b + i + kW), s1);
  }
  for (; i + kW <= n; i += kW) s0 = V::fma(V::load(a + i), V::load(b + i), s0);
  float s = V::hsum(V::add(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <class V>
void axpy(float alpha, const float* x, float* y, int64_t n) {
  const typename V::F av = V::set1(alpha);
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) V::store(y + i, V::fma(av, V::load(x + i), V::load(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

template <class V>
float max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  if (n >= V::kWidth) {
    typename V::F mv = V::load(x);
    for (i = V::kWidth; i + V::kWidth <= n; i += V::kWidth) mv = V::max(mv, V::load(x + i));
    m = V::hmax(mv);
  }
  for (; i < n; ++i) m = scalar::max(m, x[i]);
  return m;
}

// ---- exp and GELU ------------------------------------------------------------------------------

// Same algorithm and constants as approx::expf_fast.
template <class V>
inline typename V::F exp_approx(typename V::F x) {
  using F = typename V::F;
  const F hi = V::set1(88.3762626647949f);
  const F lo = V::set1(-87.3365447504f);
  const typename V::M underflow = V::less(x, lo);
  x = V::min(V::max(x, lo), hi);
  const F n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  F r = V::fnma(n, V::set1(0.693359375f), x);
  r = V::fnma(n, V::set1(-2.12194440e-4f), r);
  F p = V::set1(1.9875691500E-4f);
  p = V::fma(p, r, V::set1(1.3981999507E-3f));
  p = V::fma(p, r, V::set1(8.3334519073E-3f));
  p = V::fma(p, r, V::set1(4.1665795894E-2f));
  p = V::fma(p, r, V::set1(1.6666665459E-1f));
  p = V::fma(p, r, V::set1(5.0000001201E-1f));
  const F y = V::fma(V::mul(p, r), r, V::add(r, V::set1(1.0f)));
  return V::zero_where(underflow, V::add_exponent(y, n));
}

template <class V>
float exp_shift_sum(float* x, int64_t n, float shift) {
  const typename V::F sv = V::set1(shift);
  typename V::F acc = V::zero();
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) {
    const typename V::F e = exp_approx<V>(V::sub(V::load(x + i), sv));
    V::store(x + i, e);
    acc = V::add(acc, e);
  }
  float sum = V::hsum(acc);
  for (; i < n; ++i) {
    x[i] = approx::expf_fast(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

// Same algorithm and constants as approx::gelu.
template <class V>
void gelu(float* x, int64_t n) {
  using F = typename V::F;
  const F one = V::set1(1.0f);
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) {
    const F v = V::load(x + i);
    const F z = V::mul(v, V::set1(0.70710678118654752f));
    const F a = V::abs(z);
    const F t = V::div(one, V::fma(V::set1(0.3275911f), a, one));
    F p = V::set1(1.061405429f);
    p = V::fma(p, t, V::set1(-1.453152027f));
    p = V::fma(p, t, V::set1(1.421413741f));
    p = V::fma(p, t, V::set1(-0.284496736f));
    p = V::fma(p, t, V::set1(0.254829592f));
    const F e = exp_approx<V>(V::neg(V::mul(a, a)));
    const F erf = V::with_sign_of(V::sub(one, V::mul(V::mul(p, t), e)), z);
    V::store(x + i, V::mul(V::mul(V::set1(0.5f), v), V::add(one, erf)));
  }
  for (; i < n; ++i) x[i] = approx::gelu(x[i]);
}

// ---- the table -----------------------------------------------------------------------------------

// A table's GEMM tiles and their layouts. Tile: kMr, kNr, run (gemm_tile); I8Tile: kMr, kNr,
// kKg, kWideA, run (gemm_i8_tile).
template <class Tile, class I8Tile>
constexpr void set_tiles(KernelTable& t) {
  t.mr = Tile::kMr;
  t.nr = Tile::kNr;
  t.gemm_tile = Tile::run;
  t.i8_mr = I8Tile::kMr;
  t.i8_nr = I8Tile::kNr;
  t.i8_kg = I8Tile::kKg;
  t.i8_a_wide = I8Tile::kWideA;
  t.gemm_i8_tile = I8Tile::run;
}

// Every entry of a SIMD table that these templates provide; the ISA file adds its GEMM tiles
// and their layout.
template <class V, class I8>
constexpr KernelTable vector_table(Isa isa) {
  KernelTable t{};
  t.isa = isa;
  t.gemv_nk = gemv_nk<V, float>;
  t.gemv_nk_f16 = gemv_nk<V, uint16_t>;
  t.gemv_nk_i8w = gemv_nk<V, int8_t>;
  t.gemv_nk_i8 = gemv_nk_i8<I8>;
  t.quantize_row_i8 = quantize_row_i8<V>;
  t.quantize_row_i16 = quantize_row<V, int16_t>;
  t.floats_to_half = floats_to_half<V>;
  t.weighted_rows = weighted_rows<V, float>;
  t.weighted_rows_f16 = weighted_rows<V, uint16_t>;
  t.weighted_rows_i8 = weighted_rows<V, int8_t>;
  t.dot = dot<V>;
  t.axpy = axpy<V>;
  t.max = max<V>;
  t.exp_shift_sum = exp_shift_sum<V>;
  t.gelu = gelu<V>;
  return t;
}

}  // namespace whisper_genio::cpu::simd
