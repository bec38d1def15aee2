// Portable C++ kernels: the reference every SIMD variant is tested against, and the
// fallback on CPUs without a SIMD variant. The float kernels are plain loops of their own
// (the reference numerics); the int8 GEMV, the quantisation and the conversion to half run
// the loops of kernel_templates.h with one-element steps.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernel_table.h"
#include "kernel_templates.h"
#include "math_approx.h"
#include "whisper_genio/model.h"

namespace whisper_genio::cpu {
namespace {

// Float GEMM micro-tile (kernel_table.h gemm_tile): 4 rows x 8 columns.
struct GenericTile {
  static constexpr int kMr = 4;
  static constexpr int kNr = 8;
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
    float acc[kMr][kNr] = {};
    for (int64_t k = 0; k < kc; ++k) {
      for (int i = 0; i < kMr; ++i) {
        const float ai = a[k * kMr + i];
        for (int j = 0; j < kNr; ++j) acc[i][j] += ai * b[k * kNr + j];
      }
    }
    for (int i = 0; i < kMr; ++i) {
      for (int j = 0; j < kNr; ++j) {
        c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
      }
    }
  }
};

float dot(const float* a, const float* b, int64_t n) {
  // Four partial sums: keeps rounding comparable to the SIMD variants.
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) s[j] += a[i + j] * b[i + j];
  }
  for (; i < n; ++i) s[0] += a[i] * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

void gemv_nk(int64_t M, int64_t K, const float* x, int64_t ldx, const float* w, int64_t ldw,
             int64_t n0, int64_t n1, float* y, int64_t ldy) {
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t m = 0; m < M; ++m) y[m * ldy + n] = dot(x + m * ldx, w + n * ldw, K);
  }
}

// Weights of any storage widened to float one element at a time: the reference numerics.
float widen(float v) { return v; }
float widen(uint16_t h) { return half_to_float(h); }
float widen(int8_t v) { return static_cast<float>(v); }

template <typename W>
void gemv_nk_widened(int64_t M, int64_t K, const float* x, int64_t ldx, const W* w, int64_t ldw, int64_t n0,
                     int64_t n1, float* y, int64_t ldy) {
  for (int64_t n = n0; n < n1; ++n) {
    const W* wn = w + n * ldw;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * ldx;
      float s = 0.0f;
      for (int64_t k = 0; k < K; ++k) s += xm[k] * widen(wn[k]);
      y[m * ldy + n] = s;
    }
  }
}

template <typename W>
void weighted_rows_widened(const float* p, int64_t T, const W* V, int64_t ldv, int64_t n, float* y) {
  for (int64_t c = 0; c < n; ++c) y[c] = 0.0f;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < n; ++c) y[c] += p[t] * widen(V[t * ldv + c]);
  }
}

// The one-element int8 step of the shared small-M GEMV loop (kernel_templates.h gemv_nk_i8).
struct ScalarI8 {
  using Acc = int32_t;
  using Bytes = int8_t;
  static constexpr int kStep = 1;
  static Acc zero() { return 0; }
  static Bytes load(const int8_t* p) { return *p; }
  static Acc madd(Acc acc, Bytes x, Bytes w) { return acc + static_cast<int32_t>(x) * w; }
  static int32_t hsum(Acc v) { return v; }
  template <int MB>
  static void stream(const int8_t*) {}
};

// The one-lane vector of the shared quantisation and conversion loops. With one lane,
// quantize_row skips its clamp-then-round vector stage: the generic table keeps the scalar
// round-then-clamp loop.
struct Scalar {
  using F = float;
  static constexpr int kWidth = 1;
  static F zero() { return 0.0f; }
  static F load(const float* p) { return *p; }
  static F abs(F v) { return std::fabs(v); }
  static F max(F a, F b) { return std::max(a, b); }
  static float hmax(F v) { return v; }
  static void store_half(uint16_t* y, F v) { *y = float_to_half(v); }
};

// int8 GEMM tile (kernel_table.h gemm_i8_tile): 4 rows x 8 columns, k in groups of 4.
struct GenericI8Tile {
  static constexpr int kMr = 4;
  static constexpr int kNr = 8;
  static constexpr int kKg = 4;
  static constexpr bool kWideA = false;
  static void run(int64_t kgroups, const void* ap, const int8_t* b, const float* as, const float* ws,
                  const float* bias, float* out, int64_t ldo) {
    int64_t acc[kMr][kNr] = {};  // the split passes' partial sums may pass 2^31 (gemm_i8_a_qmax)
    auto step = [&](const int8_t* a, const int8_t* bg) {
      for (int i = 0; i < kMr; ++i) {
        for (int j = 0; j < kNr; ++j) {
          int32_t s = 0;
          for (int t = 0; t < kKg; ++t) s += static_cast<int32_t>(a[i * kKg + t]) * bg[j * kKg + t];
          acc[i][j] += s;
        }
      }
    };
    auto times256 = [&] {
      for (auto& row : acc) {
        for (int64_t& v : row) v *= 256;
      }
    };
    simd::split_a_passes(kgroups, static_cast<const int8_t*>(ap), kMr * kKg, b, kNr * kKg, step, times256);
    for (int i = 0; i < kMr; ++i) {
      for (int j = 0; j < kNr; ++j) {
        out[i * ldo + j] = static_cast<float>(acc[i][j]) * as[i] * ws[j] + (bias != nullptr ? bias[j] : 0.0f);
      }
    }
  }
};

void axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

float max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float exp_shift_sum(float* x, int64_t n, float shift) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = approx::expf_fast(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

void gelu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = approx::gelu(x[i]);
}

}  // namespace

const KernelTable& generic_kernels() {
  static const KernelTable table = [] {
    KernelTable t{};
    t.isa = Isa::kGeneric;
    simd::set_tiles<GenericTile, GenericI8Tile>(t);
    t.gemv_nk = gemv_nk;
    t.gemv_nk_f16 = gemv_nk_widened<uint16_t>;
    t.gemv_nk_i8w = gemv_nk_widened<int8_t>;
    t.gemv_nk_i8 = simd::gemv_nk_i8<ScalarI8>;
    t.quantize_row_i8 = simd::quantize_row_i8<Scalar>;
    t.quantize_row_i16 = simd::quantize_row<Scalar, int16_t>;
    t.floats_to_half = simd::floats_to_half<Scalar>;
    t.weighted_rows = weighted_rows_widened<float>;
    t.weighted_rows_f16 = weighted_rows_widened<uint16_t>;
    t.weighted_rows_i8 = weighted_rows_widened<int8_t>;
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
