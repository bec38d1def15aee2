// NEON kernels (aarch64, where Advanced SIMD is part of the base ISA). The loops shared with
// the other ISAs come from kernel_templates.h over the Neon vector type (simd_neon.h); what
// is here is NEON only: the GEMM register tiles and the base (non-dotprod) int8 dot step.
#include <arm_neon.h>

#include "kernel_table.h"
#include "kernel_templates.h"
#include "simd_neon.h"

namespace whisper_genio::cpu {
namespace {

// Float GEMM micro-tile (kernel_table.h gemm_tile): 8 rows x 12 columns, each A value used
// from a vector lane (vfmaq_laneq_f32).
struct NeonTile {
  static constexpr int kMr = 8;
  static constexpr int kNr = 12;
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
    float32x4_t acc[kMr][3];
    for (auto& row : acc) row[0] = row[1] = row[2] = vdupq_n_f32(0.0f);
    auto fma_lane = [](float32x4_t s, float32x4_t bv, float32x4_t av, auto lane) {
      return vfmaq_laneq_f32(s, bv, av, decltype(lane)::value);
    };
    for (int64_t k = 0; k < kc; ++k, a += kMr, b += kNr) {
      const float32x4_t bv[3] = {vld1q_f32(b), vld1q_f32(b + 4), vld1q_f32(b + 8)};
      const float32x4_t av[2] = {vld1q_f32(a), vld1q_f32(a + 4)};
      lane_tile_8x3(acc, bv, av, fma_lane);
    }
    simd::store_tile<Neon>(acc, c, ldc, accumulate);
  }
};

// Base NEON int8 dot step of the small-M GEMV (kernel_templates.h gemv_nk_i8): widening
// multiplies into int16 (|q| <= 127 keeps a pair sum in range) and pairwise accumulation
// into int32. CPUs with the dot-product extension use gemv_nk_i8_dotprod instead.
struct NeonI8 : NeonI8Base {
  static Acc madd(Acc acc, Bytes x, Bytes w) {
    int16x8_t p = vmull_s8(vget_low_s8(x), vget_low_s8(w));
    p = vmlal_high_s8(p, x, w);
    return vpadalq_s16(acc, p);
  }
};

// int8 GEMM tile without the dot-product extension: 4 rows x 4 columns, k in groups of 16.
// vmull_s8 + vmlal_high_s8 put two products per int16 lane (|a| <= 128 in the lo panel,
// |w| <= 127: at most 32512, no overflow), vpadalq_s16 widens them into int32; each (row, column) keeps one int32x4
// that is summed across lanes at the end.
struct NeonI8Tile {
  static constexpr int kMr = 4;
  static constexpr int kNr = 4;
  static constexpr int kKg = 16;
  static constexpr bool kWideA = false;
  static void run(int64_t kgroups, const void* ap, const int8_t* b, const float* as, const float* ws,
                  const float* bias, float* out, int64_t ldo) {
    int32x4_t acc[kMr][kNr];
    for (auto& row : acc) {
      for (int32x4_t& v : row) v = vdupq_n_s32(0);
    }
    auto step = [&](const int8_t* a, const int8_t* bg) {
      int8x16_t av[kMr], bv[kNr];
      for (int i = 0; i < kMr; ++i) av[i] = vld1q_s8(a + i * kKg);
      for (int j = 0; j < kNr; ++j) bv[j] = vld1q_s8(bg + j * kKg);
      for (int i = 0; i < kMr; ++i) {
        for (int j = 0; j < kNr; ++j) acc[i][j] = NeonI8::madd(acc[i][j], av[i], bv[j]);
      }
    };
    auto times256 = [&] {
      for (auto& row : acc) {
        for (int32x4_t& v : row) v = vshlq_n_s32(v, 8);
      }
    };
    simd::split_a_passes(kgroups, static_cast<const int8_t*>(ap), kMr * kKg, b, kNr * kKg, step, times256);
    // Lane j of row i's sum = the across-lane sum of acc[i][j].
    int32x4_t sum[kMr][1];
    for (int i = 0; i < kMr; ++i) {
      sum[i][0] = vpaddq_s32(vpaddq_s32(acc[i][0], acc[i][1]), vpaddq_s32(acc[i][2], acc[i][3]));
    }
    simd::store_i8_tile<Neon>(sum, as, ws, bias, out, ldo);
  }
};

// The layout of gemm_i8_tile_dotprod (kernels_neon_dotprod.cc).
struct NeonDotI8Tile {
  static constexpr int kMr = 8;
  static constexpr int kNr = 12;
  static constexpr int kKg = 4;
  static constexpr bool kWideA = false;
  static constexpr auto run = gemm_i8_tile_dotprod;
};

KernelTable make_table(bool dotprod) {
  KernelTable t = simd::vector_table<Neon, NeonI8>(Isa::kNeon);
  if (dotprod) {
    t.gemv_nk_i8 = gemv_nk_i8_dotprod;
    simd::set_tiles<NeonTile, NeonDotI8Tile>(t);
  } else {
    simd::set_tiles<NeonTile, NeonI8Tile>(t);
  }
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
