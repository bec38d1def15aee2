// The AVX2 + FMA + F16C vector type of kernel_templates.h. Include only from files compiled
// with -mavx2 -mfma -mf16c (kernels_avx2.cc). The unnamed namespace gives every template
// instantiated with it internal linkage (see kernel_templates.h).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace whisper_genio::cpu {
namespace {

struct Avx2 {
  using F = __m256;
  using I = __m256i;
  using M = __m256;
  static constexpr int kWidth = 8;
  static constexpr int kRowAcc = 8;  // of 16 ymm registers

  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static F load(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static float widen(float v) { return v; }
  static float widen(uint16_t h) { return _cvtsh_ss(h); }
  static float widen(int8_t v) { return static_cast<float>(v); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }

  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F abs(F v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
  static F neg(F v) { return _mm256_sub_ps(_mm256_setzero_ps(), v); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnma(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F round(F v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

  static float hsum(F v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 s = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, s);
    s = _mm_add_ss(s, sh);
    return _mm_cvtss_f32(s);
  }
  static float hmax(F v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }

  static M less(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }  // false for NaN, true for -inf
  static F zero_where(M m, F v) { return _mm256_andnot_ps(m, v); }
  // y * 2^n for integral n: n added to the exponent field.
  static F add_exponent(F y, F n) {
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
  }
  // e >= 0 is erf(|z|): z's sign bit is or-ed in.
  static F with_sign_of(F e, F z) { return _mm256_or_ps(e, _mm256_and_ps(z, _mm256_set1_ps(-0.0f))); }

  // Conversions round per MXCSR: nearest even.
  static void store_i8(int8_t* q, F v0, F v1) {
    const __m256i r0 = _mm256_cvtps_epi32(v0), r1 = _mm256_cvtps_epi32(v1);
    const __m128i p0 = _mm_packs_epi32(_mm256_castsi256_si128(r0), _mm256_extracti128_si256(r0, 1));
    const __m128i p1 = _mm_packs_epi32(_mm256_castsi256_si128(r1), _mm256_extracti128_si256(r1, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm_packs_epi16(p0, p1));
  }
  static void store_i16(int16_t* q, F v) {
    const __m256i r = _mm256_cvtps_epi32(v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q),
                     _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
  }
  static void store_half(uint16_t* y, F v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  static F to_float(I v) { return _mm256_cvtepi32_ps(v); }
};

}  // namespace
}  // namespace whisper_genio::cpu
