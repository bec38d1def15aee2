// NEON kernels (aarch64, where Advanced SIMD is part of the base ISA).
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernel_table.h"
#include "math_approx.h"
#include "row_blocks.h"
#include "whisper_genio/model.h"

namespace whisper_genio::cpu {
namespace {

constexpr int kMr = 8;
constexpr int kNr = 12;

// Same algorithm and constants as approx::expf_fast.
inline float32x4_t exp128(float32x4_t x) {
  const float32x4_t hi = vdupq_n_f32(88.3762626647949f);
  const float32x4_t lo = vdupq_n_f32(-87.3365447504f);
  const uint32x4_t underflow = vcltq_f32(x, lo);
  x = vminq_f32(vmaxq_f32(x, lo), hi);
  const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500E-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507E-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073E-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894E-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459E-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201E-1f), p, r);
  float32x4_t y = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), vmulq_f32(p, r), r);
  const int32x4_t e = vshlq_n_s32(vcvtq_s32_f32(n), 23);
  y = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(y), e));
  return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), underflow));
}

void gemm_tile(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  float32x4_t acc[kMr][3];
  for (int i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < kc; ++k) {
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
    const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
#define WG_ROW(i, av, lane)                               \
  acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av, lane);   \
  acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av, lane);   \
  acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av, lane);
    WG_ROW(0, a0, 0) WG_ROW(1, a0, 1) WG_ROW(2, a0, 2) WG_ROW(3, a0, 3)
    WG_ROW(4, a1, 0) WG_ROW(5, a1, 1) WG_ROW(6, a1, 2) WG_ROW(7, a1, 3)
#undef WG_ROW
    a += kMr;
    b += kNr;
  }
  for (int i = 0; i < kMr; ++i) {
    float* ci = c + i * ldc;
    for (int j = 0; j < 3; ++j) {
      float32x4_t v = acc[i][j];
      if (accumulate) v = vaddq_f32(v, vld1q_f32(ci + 4 * j));
      vst1q_f32(ci + 4 * j, v);
    }
  }
}

float dot(const float* a, const float* b, int64_t n) {
  float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
  float s = vaddvq_f32(vaddq_f32(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// MB input rows (up to 8) share each weight load: one pass over the weights per call. Each
// (row, output) keeps its own accumulator and summation order whatever MB is.
template <int MB, typename LoadW, typename Tail>
inline void gemv_rows(int64_t K, const float* x, int64_t ldx, int64_t n0, int64_t n1, float* y, int64_t ldy,
                      LoadW load_w, Tail tail) {
  for (int64_t n = n0; n < n1; ++n) {
    float32x4_t acc[MB];
    for (int m = 0; m < MB; ++m) acc[m] = vdupq_n_f32(0);
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {
      const float32x4_t wv = load_w(n, k);
      for (int m = 0; m < MB; ++m) acc[m] = vfmaq_f32(acc[m], vld1q_f32(x + m * ldx + k), wv);
    }
    for (int m = 0; m < MB; ++m) {
      float s = vaddvq_f32(acc[m]);
      for (int64_t kk = k; kk < K; ++kk) s += x[m * ldx + kk] * tail(n, kk);
      y[m * ldy + n] = s;
    }
  }
}

void gemv_nk(int64_t M, int64_t K, const float* x, int64_t ldx, const float* w, int64_t ldw,
             int64_t n0, int64_t n1, float* y, int64_t ldy) {
  auto load = [&](int64_t n, int64_t k) { return vld1q_f32(w + n * ldw + k); };
  auto tail = [&](int64_t n, int64_t k) { return w[n * ldw + k]; };
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    gemv_rows<decltype(mb)::value>(K, x + m0 * ldx, ldx, n0, n1, y + m0 * ldy, ldy, load, tail);
  });
}

void gemv_nk_f16(int64_t M, int64_t K, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                 int64_t n0, int64_t n1, float* y, int64_t ldy) {
  auto load = [&](int64_t n, int64_t k) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w + n * ldw + k))); };
  auto tail = [&](int64_t n, int64_t k) { return half_to_float(w[n * ldw + k]); };
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    gemv_rows<decltype(mb)::value>(K, x + m0 * ldx, ldx, n0, n1, y + m0 * ldy, ldy, load, tail);
  });
}

// 4 int8 -> 4 floats.
inline float32x4_t load4_i8(const int8_t* p) {
  int32_t packed;
  std::memcpy(&packed, p, 4);
  const int16x8_t h = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(packed)));
  return vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
}

void gemv_nk_i8w(int64_t M, int64_t K, const float* x, int64_t ldx, const int8_t* w, int64_t ldw,
                 int64_t n0, int64_t n1, float* y, int64_t ldy) {
  auto load = [&](int64_t n, int64_t k) { return load4_i8(w + n * ldw + k); };
  auto tail = [&](int64_t n, int64_t k) { return static_cast<float>(w[n * ldw + k]); };
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    gemv_rows<decltype(mb)::value>(K, x + m0 * ldx, ldx, n0, n1, y + m0 * ldy, ldy, load, tail);
  });
}

// Base NEON int8 dot: widening multiplies into int16 (|q| <= 127 keeps a pair sum in range)
// and pairwise accumulation into int32. CPUs with the dot-product extension use
// gemv_nk_i8_dotprod instead (kernels_neon_dotprod.cc).
template <int MB>
inline void gemv_i8_row(int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* wn, float ws,
                        float* y, int64_t ldy) {
  int32x4_t acc[MB];
  for (int m = 0; m < MB; ++m) acc[m] = vdupq_n_s32(0);
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const int8x16_t wv = vld1q_s8(wn + k);
    for (int m = 0; m < MB; ++m) {
      const int8x16_t xv = vld1q_s8(xq + m * ldx + k);
      int16x8_t p = vmull_s8(vget_low_s8(xv), vget_low_s8(wv));
      p = vmlal_high_s8(p, xv, wv);
      acc[m] = vpadalq_s16(acc[m], p);
    }
  }
  for (int m = 0; m < MB; ++m) {
    int32_t s = vaddvq_s32(acc[m]);
    for (int64_t kk = k; kk < K; ++kk) s += static_cast<int32_t>(xq[m * ldx + kk]) * wn[kk];
    y[m * ldy] = static_cast<float>(s) * xs[m] * ws;
  }
}

// Every block of up to 8 activation rows streams the weights once (a beam of 5 used to read
// them twice, in blocks of 4 + 1).
void gemv_nk_i8(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    for (int64_t n = n0; n < n1; ++n) {
      gemv_i8_row<decltype(mb)::value>(K, xq + m0 * ldx, ldx, xs + m0, w + n * ldw, ws[n], y + m0 * ldy + n, ldy);
    }
  });
}

// int8 GEMM tile without the dot-product extension: 4 rows x 4 columns, k in groups of 16.
// vmull_s8 + vmlal_high_s8 put two products per int16 lane (|a|, |w| <= 127: at most 32258,
// no overflow), vpadalq_s16 widens them into int32; each (row, column) keeps one int32x4
// that is summed across lanes at the end. A arrives split: hi panel, then lo panel.
constexpr int kI8Mr = 4;
constexpr int kI8Nr = 4;
constexpr int kI8Kg = 16;

void gemm_i8_tile(int64_t kgroups, const void* ap, const int8_t* b, const float* as, const float* ws,
                  const float* bias, float* out, int64_t ldo) {
  const int8_t* a = static_cast<const int8_t*>(ap);
  int32x4_t acc[kI8Mr][kI8Nr];
  for (int i = 0; i < kI8Mr; ++i) {
    for (int j = 0; j < kI8Nr; ++j) acc[i][j] = vdupq_n_s32(0);
  }
  const int8_t* b0 = b;
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {  // sum = 128 * (hi . w) + lo . w
      for (int i = 0; i < kI8Mr; ++i) {
        for (int j = 0; j < kI8Nr; ++j) acc[i][j] = vshlq_n_s32(acc[i][j], 7);
      }
    }
    b = b0;
    for (int64_t g = 0; g < kgroups; ++g) {
      int8x16_t av[kI8Mr], bv[kI8Nr];
      for (int i = 0; i < kI8Mr; ++i) av[i] = vld1q_s8(a + i * kI8Kg);
      for (int j = 0; j < kI8Nr; ++j) bv[j] = vld1q_s8(b + j * kI8Kg);
      for (int i = 0; i < kI8Mr; ++i) {
        for (int j = 0; j < kI8Nr; ++j) {
          int16x8_t p = vmull_s8(vget_low_s8(av[i]), vget_low_s8(bv[j]));
          p = vmlal_high_s8(p, av[i], bv[j]);
          acc[i][j] = vpadalq_s16(acc[i][j], p);
        }
      }
      a += kI8Mr * kI8Kg;
      b += kI8Nr * kI8Kg;
    }
  }
  const float32x4_t w = vld1q_f32(ws);
  const float32x4_t z = bias != nullptr ? vld1q_f32(bias) : vdupq_n_f32(0.0f);
  for (int i = 0; i < kI8Mr; ++i) {
    // Lane j of the row = the across-lane sum of acc[i][j].
    const int32x4_t s01 = vpaddq_s32(acc[i][0], acc[i][1]);
    const int32x4_t s23 = vpaddq_s32(acc[i][2], acc[i][3]);
    const int32x4_t sum = vpaddq_s32(s01, s23);
    vst1q_f32(out + i * ldo, vfmaq_f32(z, vcvtq_f32_s32(sum), vmulq_n_f32(w, as[i])));
  }
}

// Same arithmetic as the generic quantize_row_i8 (one multiply by 127 / amax, round half to
// even), so every table packs identical int8 activations.
float quantize_row_i8(const float* x, int64_t n, int8_t* q) {
  float32x4_t mv = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) mv = vmaxq_f32(mv, vabsq_f32(vld1q_f32(x + i)));
  float amax = vmaxvq_f32(mv);
  for (; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0.0f) {
    for (int64_t j = 0; j < n; ++j) q[j] = 0;
    return 0.0f;
  }
  const float inv = 127.0f / amax;
  const float32x4_t lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t v0 = vminq_f32(hi, vmaxq_f32(lo, vmulq_n_f32(vld1q_f32(x + i), inv)));
    const float32x4_t v1 = vminq_f32(hi, vmaxq_f32(lo, vmulq_n_f32(vld1q_f32(x + i + 4), inv)));
    const int16x8_t h = vcombine_s16(vmovn_s32(vcvtnq_s32_f32(v0)), vmovn_s32(vcvtnq_s32_f32(v1)));
    vst1_s8(q + i, vmovn_s16(h));
  }
  for (; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int8_t>(std::max(-127.0f, std::min(127.0f, v)));
  }
  return amax / 127.0f;
}

float quantize_row_i16(const float* x, int64_t n, float qmax, int16_t* q) {
  float32x4_t mv = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) mv = vmaxq_f32(mv, vabsq_f32(vld1q_f32(x + i)));
  float amax = vmaxvq_f32(mv);
  for (; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0.0f) {
    for (int64_t j = 0; j < n; ++j) q[j] = 0;
    return 0.0f;
  }
  const float inv = qmax / amax;
  const float32x4_t lo = vdupq_n_f32(-qmax), hi = vdupq_n_f32(qmax);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vminq_f32(hi, vmaxq_f32(lo, vmulq_n_f32(vld1q_f32(x + i), inv)));
    vst1_s16(q + i, vmovn_s32(vcvtnq_s32_f32(v)));
  }
  for (; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int16_t>(std::max(-qmax, std::min(qmax, v)));
  }
  return amax / qmax;
}

// FCVTN, round to nearest even (the default FPCR mode) like float_to_half.
void floats_to_half(const float* x, int64_t n, uint16_t* y) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  for (; i < n; ++i) y[i] = float_to_half(x[i]);
}

// Columns in blocks of 64 (16 accumulators); a remainder below 4 is done in scalar.
template <typename LoadRow, typename LoadOne>
inline void weighted_rows_impl(const float* p, int64_t T, int64_t n, float* y, LoadRow load, LoadOne one) {
  for (int64_t c0 = 0; c0 + 4 <= n; c0 += 64) {
    const int64_t nv = std::min<int64_t>(16, (n - c0) / 4);
    float32x4_t acc[16];
    for (int i = 0; i < 16; ++i) acc[i] = vdupq_n_f32(0.0f);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < nv; ++i) acc[i] = vfmaq_n_f32(acc[i], load(t, c0 + 4 * i), p[t]);
    }
    for (int64_t i = 0; i < nv; ++i) vst1q_f32(y + c0 + 4 * i, acc[i]);
    if (nv < 16) break;
  }
  // columns past the last full vector: one element at a time
  for (int64_t c = n / 4 * 4; c < n; ++c) {
    float s = 0.0f;
    for (int64_t t = 0; t < T; ++t) s += p[t] * one(t, c);
    y[c] = s;
  }
}

void weighted_rows(const float* p, int64_t T, const float* V, int64_t ldv, int64_t n, float* y) {
  weighted_rows_impl(p, T, n, y, [&](int64_t t, int64_t c) { return vld1q_f32(V + t * ldv + c); },
                     [&](int64_t t, int64_t c) { return V[t * ldv + c]; });
}

void weighted_rows_f16(const float* p, int64_t T, const uint16_t* V, int64_t ldv, int64_t n, float* y) {
  auto load = [&](int64_t t, int64_t c) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(V + t * ldv + c))); };
  weighted_rows_impl(p, T, n, y, load,
                     [&](int64_t t, int64_t c) { return half_to_float(V[t * ldv + c]); });
}

void weighted_rows_i8(const float* p, int64_t T, const int8_t* V, int64_t ldv, int64_t n, float* y) {
  weighted_rows_impl(p, T, n, y, [&](int64_t t, int64_t c) { return load4_i8(V + t * ldv + c); },
                     [&](int64_t t, int64_t c) { return static_cast<float>(V[t * ldv + c]); });
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), alpha));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

float max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  if (n >= 4) {
    float32x4_t mv = vld1q_f32(x);
    for (i = 4; i + 4 <= n; i += 4) mv = vmaxq_f32(mv, vld1q_f32(x + i));
    m = vmaxvq_f32(mv);
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float exp_shift_sum(float* x, int64_t n, float shift) {
  const float32x4_t sv = vdupq_n_f32(shift);
  float32x4_t acc = vdupq_n_f32(0);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t e = exp128(vsubq_f32(vld1q_f32(x + i), sv));
    vst1q_f32(x + i, e);
    acc = vaddq_f32(acc, e);
  }
  float sum = vaddvq_f32(acc);
  for (; i < n; ++i) {
    x[i] = approx::expf_fast(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

void gelu(float* x, int64_t n) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    const float32x4_t z = vmulq_n_f32(v, 0.70710678118654752f);
    const float32x4_t a = vabsq_f32(z);
    const float32x4_t t = vdivq_f32(one, vfmaq_n_f32(one, a, 0.3275911f));
    float32x4_t p = vdupq_n_f32(1.061405429f);
    p = vfmaq_f32(vdupq_n_f32(-1.453152027f), p, t);
    p = vfmaq_f32(vdupq_n_f32(1.421413741f), p, t);
    p = vfmaq_f32(vdupq_n_f32(-0.284496736f), p, t);
    p = vfmaq_f32(vdupq_n_f32(0.254829592f), p, t);
    const float32x4_t e = exp128(vnegq_f32(vmulq_f32(a, a)));
    float32x4_t erf = vsubq_f32(one, vmulq_f32(vmulq_f32(p, t), e));
    erf = vbslq_f32(vcltq_f32(z, vdupq_n_f32(0.0f)), vnegq_f32(erf), erf);
    vst1q_f32(x + i, vmulq_f32(vmulq_n_f32(v, 0.5f), vaddq_f32(one, erf)));
  }
  for (; i < n; ++i) x[i] = approx::gelu(x[i]);
}

}  // namespace

namespace {

KernelTable make_table(bool dotprod) {
  KernelTable t{};
  t.isa = Isa::kNeon;
  t.mr = kMr;
  t.nr = kNr;
  t.gemm_tile = gemm_tile;
  t.gemv_nk = gemv_nk;
  t.gemv_nk_f16 = gemv_nk_f16;
  t.gemv_nk_i8w = gemv_nk_i8w;
  t.gemv_nk_i8 = dotprod ? gemv_nk_i8_dotprod : gemv_nk_i8;
  if (dotprod) {  // layout of gemm_i8_tile_dotprod (kernels_neon_dotprod.cc)
    t.i8_mr = 8;
    t.i8_nr = 12;
    t.i8_kg = 4;
    t.gemm_i8_tile = gemm_i8_tile_dotprod;
  } else {
    t.i8_mr = kI8Mr;
    t.i8_nr = kI8Nr;
    t.i8_kg = kI8Kg;
    t.gemm_i8_tile = gemm_i8_tile;
  }
  t.i8_a_wide = false;
  t.quantize_row_i8 = quantize_row_i8;
  t.quantize_row_i16 = quantize_row_i16;
  t.floats_to_half = floats_to_half;
  t.weighted_rows = weighted_rows;
  t.weighted_rows_f16 = weighted_rows_f16;
  t.weighted_rows_i8 = weighted_rows_i8;
  t.dot = dot;
  t.axpy = axpy;
  t.max = max;
  t.exp_shift_sum = exp_shift_sum;
  t.gelu = gelu;
  return t;
}

}  // namespace

const KernelTable& neon_nodot_kernels() {
  static const KernelTable table = make_table(false);
  return table;
}

const KernelTable& neon_kernels() {
  static const KernelTable table = make_table(neon_has_dotprod());
  return table;
}

}  // namespace whisper_genio::cpu
