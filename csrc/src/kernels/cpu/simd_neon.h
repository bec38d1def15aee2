// The NEON vector type of kernel_templates.h (aarch64, where Advanced SIMD is part of the
// base ISA). Included by kernels_neon.cc and kernels_neon_dotprod.cc: the unnamed namespace
// gives each file its own copy, and every template instantiated with it internal linkage, so
// nothing compiled with +dotprod is shared with the base NEON file (see kernel_templates.h).
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "whisper_genio/model.h"

namespace whisper_genio::cpu {
namespace {

struct Neon {
  using F = float32x4_t;
  using I = int32x4_t;
  using M = uint32x4_t;
  static constexpr int kWidth = 4;
  static constexpr int kRowAcc = 16;  // of 32 q registers

  static F zero() { return vdupq_n_f32(0.0f); }
  static F set1(float v) { return vdupq_n_f32(v); }
  static F load(const float* p) { return vld1q_f32(p); }
  static F load(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static F load(const int8_t* p) {
    int32_t packed;
    std::memcpy(&packed, p, 4);
    const int16x8_t h = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(packed)));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
  }
  static float widen(float v) { return v; }
  static float widen(uint16_t h) { return half_to_float(h); }
  static float widen(int8_t v) { return static_cast<float>(v); }
  static void store(float* p, F v) { vst1q_f32(p, v); }

  static F add(F a, F b) { return vaddq_f32(a, b); }
  static F sub(F a, F b) { return vsubq_f32(a, b); }
  static F mul(F a, F b) { return vmulq_f32(a, b); }
  static F div(F a, F b) { return vdivq_f32(a, b); }
  static F min(F a, F b) { return vminq_f32(a, b); }
  static F max(F a, F b) { return vmaxq_f32(a, b); }
  static F abs(F v) { return vabsq_f32(v); }
  static F neg(F v) { return vnegq_f32(v); }
  static F fma(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static F fnma(F a, F b, F c) { return vfmsq_f32(c, a, b); }
  static F round(F v) { return vrndnq_f32(v); }
  static float hsum(F v) { return vaddvq_f32(v); }
  static float hmax(F v) { return vmaxvq_f32(v); }

  static M less(F a, F b) { return vcltq_f32(a, b); }
  static F zero_where(M m, F v) { return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(v), m)); }
  // y * 2^n for integral n: n added to the exponent field.
  static F add_exponent(F y, F n) {
    const int32x4_t e = vshlq_n_s32(vcvtq_s32_f32(n), 23);
    return vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(y), e));
  }
  static F with_sign_of(F e, F z) { return vbslq_f32(vcltq_f32(z, vdupq_n_f32(0.0f)), vnegq_f32(e), e); }

  // Conversions round to nearest even (FCVTNS, FCVTN in the default FPCR mode).
  static void store_i8(int8_t* q, F v0, F v1) {
    const int16x8_t h = vcombine_s16(vmovn_s32(vcvtnq_s32_f32(v0)), vmovn_s32(vcvtnq_s32_f32(v1)));
    vst1_s8(q, vmovn_s16(h));
  }
  static void store_i16(int16_t* q, F v) { vst1_s16(q, vmovn_s32(vcvtnq_s32_f32(v))); }
  static void store_half(uint16_t* y, F v) { vst1_u16(y, vreinterpret_u16_f16(vcvt_f16_f32(v))); }
  static F to_float(I v) { return vcvtq_f32_s32(v); }
};

// The parts of the small-M int8 GEMV step (kernel_templates.h gemv_nk_i8) that the base and
// the SDOT variant share; each adds its madd.
struct NeonI8Base {
  using Acc = int32x4_t;
  using Bytes = int8x16_t;
  static constexpr int kStep = 16;
  static Acc zero() { return vdupq_n_s32(0); }
  static Bytes load(const int8_t* p) { return vld1q_s8(p); }
  static int32_t hsum(Acc v) { return vaddvq_s32(v); }
  template <int MB>
  static void stream(const int8_t*) {}
};

// One k step of an 8 x 3 register tile fed from vector lanes (the float GEMM tile, the SDOT
// int8 tile): acc[i][j] = op(acc[i][j], b[j], a[i / 4], lane i % 4), the lane a compile-time
// constant as the lane intrinsics require.
template <class Acc, class B, class A, class Op, int... I>
inline void lane_tile_8x3(Acc (&acc)[8][3], const B (&b)[3], const A (&a)[2], Op op, std::integer_sequence<int, I...>) {
  auto row = [&](auto i) {
    constexpr int kI = decltype(i)::value;
    for (int j = 0; j < 3; ++j) acc[kI][j] = op(acc[kI][j], b[j], a[kI / 4], std::integral_constant<int, kI % 4>{});
  };
  (row(std::integral_constant<int, I>{}), ...);
}

template <class Acc, class B, class A, class Op>
inline void lane_tile_8x3(Acc (&acc)[8][3], const B (&b)[3], const A (&a)[2], Op op) {
  lane_tile_8x3(acc, b, a, op, std::make_integer_sequence<int, 8>{});
}

}  // namespace
}  // namespace whisper_genio::cpu
