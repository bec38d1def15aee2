// AVX2 + FMA kernels (x86_64). This file alone is compiled with -mavx2 -mfma; it is only
// called after active_isa() confirmed the CPU supports both.
#include <immintrin.h>

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

constexpr int kMr = 6;
constexpr int kNr = 16;

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  __m128 s = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, s);
  s = _mm_add_ss(s, sh);
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Same algorithm and constants as approx::expf_fast.
inline __m256 exp256(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f);
  const __m256 lo = _mm256_set1_ps(-87.3365447504f);
  __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);  // false for NaN, true for -inf
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
  y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
  return _mm256_andnot_ps(underflow, y);
}

void gemm_tile(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    __m256 av;
    av = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
    a += kMr;
    b += kNr;
  }
  __m256 rows[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < kMr; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      rows[i][0] = _mm256_add_ps(rows[i][0], _mm256_loadu_ps(ci));
      rows[i][1] = _mm256_add_ps(rows[i][1], _mm256_loadu_ps(ci + 8));
    }
    _mm256_storeu_ps(ci, rows[i][0]);
    _mm256_storeu_ps(ci + 8, rows[i][1]);
  }
}

float dot(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// MB input rows (up to 8) share each weight load: one pass over the weights per call. Each
// (row, output) keeps its own accumulator and summation order whatever MB is.
template <int MB, typename LoadW, typename Tail>
inline void gemv_rows(int64_t K, const float* x, int64_t ldx, int64_t n0, int64_t n1, float* y, int64_t ldy,
                      LoadW load_w, Tail tail) {
  for (int64_t n = n0; n < n1; ++n) {
    __m256 acc[MB];
    for (int m = 0; m < MB; ++m) acc[m] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
      const __m256 wv = load_w(n, k);
      for (int m = 0; m < MB; ++m) acc[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * ldx + k), wv, acc[m]);
    }
    for (int m = 0; m < MB; ++m) {
      float s = hsum(acc[m]);
      for (int64_t kk = k; kk < K; ++kk) s += x[m * ldx + kk] * tail(n, kk);
      y[m * ldy + n] = s;
    }
  }
}

void gemv_nk(int64_t M, int64_t K, const float* x, int64_t ldx, const float* w, int64_t ldw,
             int64_t n0, int64_t n1, float* y, int64_t ldy) {
  auto load = [&](int64_t n, int64_t k) { return _mm256_loadu_ps(w + n * ldw + k); };
  auto tail = [&](int64_t n, int64_t k) { return w[n * ldw + k]; };
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    gemv_rows<decltype(mb)::value>(K, x + m0 * ldx, ldx, n0, n1, y + m0 * ldy, ldy, load, tail);
  });
}

void gemv_nk_f16(int64_t M, int64_t K, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                 int64_t n0, int64_t n1, float* y, int64_t ldy) {
  auto load = [&](int64_t n, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + n * ldw + k)));
  };
  auto tail = [&](int64_t n, int64_t k) { return _cvtsh_ss(w[n * ldw + k]); };
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    gemv_rows<decltype(mb)::value>(K, x + m0 * ldx, ldx, n0, n1, y + m0 * ldy, ldy, load, tail);
  });
}

// 8 int8 -> 8 floats.
inline __m256 load8_i8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

void gemv_nk_i8w(int64_t M, int64_t K, const float* x, int64_t ldx, const int8_t* w, int64_t ldw,
                 int64_t n0, int64_t n1, float* y, int64_t ldy) {
  auto load = [&](int64_t n, int64_t k) { return load8_i8(w + n * ldw + k); };
  auto tail = [&](int64_t n, int64_t k) { return static_cast<float>(w[n * ldw + k]); };
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    gemv_rows<decltype(mb)::value>(K, x + m0 * ldx, ldx, n0, n1, y + m0 * ldy, ldy, load, tail);
  });
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// One weight row n against MB activation rows. maddubs multiplies unsigned by signed bytes,
// so |x| goes on the unsigned side and x's sign moves onto w. With |q| <= 127 a pair sums to
// at most 2 * 127 * 127 < 32767: no saturation, the int32 sums are exact.
template <int MB>
inline void gemv_i8_row(int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* wn, float ws,
                        float* y, int64_t ldy) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[MB];
  for (int m = 0; m < MB; ++m) acc[m] = _mm256_setzero_si256();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    // Few rows are bound by memory: fetch 2 KiB ahead of the stream (the hardware prefetcher
    // alone reached 15.5 GB/s of 19-21 on the vocabulary, 51865 x 512).
    if constexpr (MB <= 2) _mm_prefetch(reinterpret_cast<const char*>(wn + k + 2048), _MM_HINT_T0);
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wn + k));
    for (int m = 0; m < MB; ++m) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + m * ldx + k));
      const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(wv, xv));
      acc[m] = _mm256_add_epi32(acc[m], _mm256_madd_epi16(p16, ones));
    }
  }
  for (int m = 0; m < MB; ++m) {
    int32_t s = hsum_epi32(acc[m]);
    for (int64_t kk = k; kk < K; ++kk) s += static_cast<int32_t>(xq[m * ldx + kk]) * wn[kk];
    y[m * ldy] = static_cast<float>(s) * xs[m] * ws;
  }
}

// Every block of up to 8 activation rows streams the weights once, one weight row at a time:
// interleaving 2 or 4 weight rows saved horizontal sums on cache-resident weights but cost
// 30-50 % on weights streamed from DRAM, which is where the decoder's come from.
void gemv_nk_i8(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  for_row_blocks(M, [&](auto mb, int64_t m0) {
    for (int64_t n = n0; n < n1; ++n) {
      gemv_i8_row<decltype(mb)::value>(K, xq + m0 * ldx, ldx, xs + m0, w + n * ldw, ws[n], y + m0 * ldy + n, ldy);
    }
  });
}

// int8-weight GEMM tile, 6 rows x 16 columns. Products are formed with vpmaddwd on int16:
// A is packed as int16 pairs (k, k+1), B stays int8 in memory and is sign-extended once per
// load for all 6 rows. vpmaddwd adds two int16 products into int32 and cannot saturate
// here (|b| <= 127, |a| <= gemm_i8_a_qmax(K) <= 32767), unlike vpmaddubsw's int16 pair
// sums, which can reach 2 * 255 * 127 with unsigned-shifted activations. Its throughput
// equals vpmaddubsw + vpsignb's, so the activations get more than 8 bits for free.
constexpr int kI8Mr = 6;
constexpr int kI8Nr = 16;
constexpr int kI8Kg = 2;

inline __m256i bcast_pair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

void gemm_i8_tile(int64_t kgroups, const void* ap, const int8_t* b, const float* as, const float* ws,
                  const float* bias, float* out, int64_t ldo) {
  const int16_t* a = static_cast<const int16_t*>(ap);
  __m256i c00 = _mm256_setzero_si256(), c01 = _mm256_setzero_si256();
  __m256i c10 = _mm256_setzero_si256(), c11 = _mm256_setzero_si256();
  __m256i c20 = _mm256_setzero_si256(), c21 = _mm256_setzero_si256();
  __m256i c30 = _mm256_setzero_si256(), c31 = _mm256_setzero_si256();
  __m256i c40 = _mm256_setzero_si256(), c41 = _mm256_setzero_si256();
  __m256i c50 = _mm256_setzero_si256(), c51 = _mm256_setzero_si256();
  for (int64_t g = 0; g < kgroups; ++g) {
    const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
    const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
    __m256i av;
#define WG_ROW(i)                                               \
  av = bcast_pair(a + 2 * (i));                                 \
  c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(av, b0)); \
  c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(av, b1));
    WG_ROW(0) WG_ROW(1) WG_ROW(2) WG_ROW(3) WG_ROW(4) WG_ROW(5)
#undef WG_ROW
    a += kI8Mr * kI8Kg;
    b += kI8Nr * kI8Kg;
  }
  const __m256 w0 = _mm256_loadu_ps(ws), w1 = _mm256_loadu_ps(ws + 8);
  const __m256 z0 = bias != nullptr ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 z1 = bias != nullptr ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
  const __m256i rows[kI8Mr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < kI8Mr; ++i) {
    const __m256 s = _mm256_set1_ps(as[i]);
    float* o = out + i * ldo;
    _mm256_storeu_ps(o, _mm256_fmadd_ps(_mm256_cvtepi32_ps(rows[i][0]), _mm256_mul_ps(s, w0), z0));
    _mm256_storeu_ps(o + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(rows[i][1]), _mm256_mul_ps(s, w1), z1));
  }
}

// Same arithmetic as the generic quantize_row_i8 (one multiply by 127 / amax, round half to
// even), so every table packs identical int8 activations.
float quantize_row_i8(const float* x, int64_t n, int8_t* q) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 mv = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  float amax = hmax(mv);
  for (; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0.0f) {
    std::memset(q, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  const float inv = 127.0f / amax;
  const __m256 iv = _mm256_set1_ps(inv);
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 v0 = _mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv)));
    const __m256 v1 = _mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(x + i + 8), iv)));
    const __m256i r0 = _mm256_cvtps_epi32(v0), r1 = _mm256_cvtps_epi32(v1);  // MXCSR: nearest even
    const __m128i p0 = _mm_packs_epi32(_mm256_castsi256_si128(r0), _mm256_extracti128_si256(r0, 1));
    const __m128i p1 = _mm_packs_epi32(_mm256_castsi256_si128(r1), _mm256_extracti128_si256(r1, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm_packs_epi16(p0, p1));
  }
  for (; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int8_t>(std::max(-127.0f, std::min(127.0f, v)));
  }
  return amax / 127.0f;
}

float quantize_row_i16(const float* x, int64_t n, float qmax, int16_t* q) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 mv = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  float amax = hmax(mv);
  for (; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0.0f) {
    std::memset(q, 0, static_cast<size_t>(n) * sizeof(int16_t));
    return 0.0f;
  }
  const float inv = qmax / amax;
  const __m256 iv = _mm256_set1_ps(inv);
  const __m256 lo = _mm256_set1_ps(-qmax), hi = _mm256_set1_ps(qmax);
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv)));
    const __m256i r = _mm256_cvtps_epi32(v);  // MXCSR: nearest even
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i),
                     _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
  }
  for (; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int16_t>(std::max(-qmax, std::min(qmax, v)));
  }
  return amax / qmax;
}

// F16C conversion, round to nearest even like float_to_half.
void floats_to_half(const float* x, int64_t n, uint16_t* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = float_to_half(x[i]);
}

// Columns in blocks of 64 (8 accumulators); a remainder below 8 is done in scalar.
template <typename LoadRow, typename LoadOne>
inline void weighted_rows_impl(const float* p, int64_t T, int64_t n, float* y, LoadRow load, LoadOne one) {
  int64_t c0 = 0;
  for (; c0 + 8 <= n; c0 += 64) {
    const int64_t nv = std::min<int64_t>(8, (n - c0) / 8);
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t t = 0; t < T; ++t) {
      const __m256 pt = _mm256_set1_ps(p[t]);
      for (int64_t i = 0; i < nv; ++i) acc[i] = _mm256_fmadd_ps(pt, load(t, c0 + 8 * i), acc[i]);
    }
    for (int64_t i = 0; i < nv; ++i) _mm256_storeu_ps(y + c0 + 8 * i, acc[i]);
    if (nv < 8) break;
  }
  // columns past the last full vector: one element at a time
  for (int64_t c = n / 8 * 8; c < n; ++c) {
    float s = 0.0f;
    for (int64_t t = 0; t < T; ++t) s += p[t] * one(t, c);
    y[c] = s;
  }
}

void weighted_rows(const float* p, int64_t T, const float* V, int64_t ldv, int64_t n, float* y) {
  weighted_rows_impl(p, T, n, y, [&](int64_t t, int64_t c) { return _mm256_loadu_ps(V + t * ldv + c); },
                     [&](int64_t t, int64_t c) { return V[t * ldv + c]; });
}

void weighted_rows_f16(const float* p, int64_t T, const uint16_t* V, int64_t ldv, int64_t n, float* y) {
  auto load = [&](int64_t t, int64_t c) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(V + t * ldv + c)));
  };
  weighted_rows_impl(p, T, n, y, load,
                     [&](int64_t t, int64_t c) { return _cvtsh_ss(V[t * ldv + c]); });
}

void weighted_rows_i8(const float* p, int64_t T, const int8_t* V, int64_t ldv, int64_t n, float* y) {
  weighted_rows_impl(p, T, n, y, [&](int64_t t, int64_t c) { return load8_i8(V + t * ldv + c); },
                     [&](int64_t t, int64_t c) { return static_cast<float>(V[t * ldv + c]); });
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

float max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  if (n >= 8) {
    __m256 mv = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    m = hmax(mv);
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float exp_shift_sum(float* x, int64_t n, float shift) {
  const __m256 sv = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), sv));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum(acc);
  for (; i < n; ++i) {
    x[i] = approx::expf_fast(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

void gelu(float* x, int64_t n) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
    const __m256 sign = _mm256_and_ps(z, sign_mask);
    const __m256 a = _mm256_andnot_ps(sign_mask, z);
    const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), a, one));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
    __m256 erf = _mm256_sub_ps(one, _mm256_mul_ps(_mm256_mul_ps(p, t), e));
    erf = _mm256_or_ps(erf, sign);
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, erf)));
  }
  for (; i < n; ++i) x[i] = approx::gelu(x[i]);
}

}  // namespace

const KernelTable& avx2_kernels() {
  static const KernelTable table = [] {
    KernelTable t{};
    t.isa = Isa::kAvx2;
    t.mr = kMr;
    t.nr = kNr;
    t.gemm_tile = gemm_tile;
    t.gemv_nk = gemv_nk;
    t.gemv_nk_f16 = gemv_nk_f16;
    t.gemv_nk_i8w = gemv_nk_i8w;
    t.gemv_nk_i8 = gemv_nk_i8;
    t.i8_mr = kI8Mr;
    t.i8_nr = kI8Nr;
    t.i8_kg = kI8Kg;
    t.i8_a_wide = true;
    t.gemm_i8_tile = gemm_i8_tile;
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
  }();
  return table;
}

}  // namespace whisper_genio::cpu
