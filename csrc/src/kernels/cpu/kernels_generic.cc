// Portable C++ kernels: the reference every SIMD variant is tested against, and the
// fallback on CPUs without a SIMD variant.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernel_table.h"
#include "math_approx.h"
#include "whisper_genio/model.h"

namespace whisper_genio::cpu {
namespace {

constexpr int kMr = 4;
constexpr int kNr = 8;

void gemm_tile(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
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

void gemv_nk_i8(int64_t M, int64_t K, const int8_t* xq, int64_t ldx, const float* xs, const int8_t* w,
                int64_t ldw, const float* ws, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  for (int64_t n = n0; n < n1; ++n) {
    const int8_t* wn = w + n * ldw;
    for (int64_t m = 0; m < M; ++m) {
      const int8_t* xm = xq + m * ldx;
      int32_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<int32_t>(xm[k]) * wn[k];
      y[m * ldy + n] = static_cast<float>(s) * xs[m] * ws[n];
    }
  }
}

constexpr int kI8Mr = 4;
constexpr int kI8Nr = 8;
constexpr int kI8Kg = 4;

// A arrives split (kernel_table.h): the hi panel, then the lo panel; sum = 128 * hi.w + lo.w.
void gemm_i8_tile(int64_t kgroups, const void* ap, const int8_t* b0, const float* as, const float* ws,
                  const float* bias, float* out, int64_t ldo) {
  const int8_t* a = static_cast<const int8_t*>(ap);
  int32_t acc[kI8Mr][kI8Nr] = {};
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      for (auto& row : acc) {
        for (int32_t& v : row) v *= 128;
      }
    }
    const int8_t* b = b0;
    for (int64_t g = 0; g < kgroups; ++g) {
      for (int i = 0; i < kI8Mr; ++i) {
        for (int j = 0; j < kI8Nr; ++j) {
          int32_t s = 0;
          for (int t = 0; t < kI8Kg; ++t) s += static_cast<int32_t>(a[i * kI8Kg + t]) * b[j * kI8Kg + t];
          acc[i][j] += s;
        }
      }
      a += kI8Mr * kI8Kg;
      b += kI8Nr * kI8Kg;
    }
  }
  for (int i = 0; i < kI8Mr; ++i) {
    for (int j = 0; j < kI8Nr; ++j) {
      out[i * ldo + j] = static_cast<float>(acc[i][j]) * as[i] * ws[j] + (bias != nullptr ? bias[j] : 0.0f);
    }
  }
}

float quantize_row_i8(const float* x, int64_t n, int8_t* q) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0.0f) {
    for (int64_t i = 0; i < n; ++i) q[i] = 0;
    return 0.0f;
  }
  const float inv = 127.0f / amax;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int8_t>(std::max(-127.0f, std::min(127.0f, v)));
  }
  return amax / 127.0f;
}

float quantize_row_i16(const float* x, int64_t n, float qmax, int16_t* q) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0.0f) {
    for (int64_t i = 0; i < n; ++i) q[i] = 0;
    return 0.0f;
  }
  const float inv = qmax / amax;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int16_t>(std::max(-qmax, std::min(qmax, v)));
  }
  return amax / qmax;
}

void floats_to_half(const float* x, int64_t n, uint16_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = float_to_half(x[i]);
}

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
    t.mr = kMr;
    t.nr = kNr;
    t.gemm_tile = gemm_tile;
    t.gemv_nk = gemv_nk;
    t.gemv_nk_f16 = gemv_nk_widened<uint16_t>;
    t.gemv_nk_i8w = gemv_nk_widened<int8_t>;
    t.gemv_nk_i8 = gemv_nk_i8;
    t.i8_mr = kI8Mr;
    t.i8_nr = kI8Nr;
    t.i8_kg = kI8Kg;
    t.i8_a_wide = false;
    t.gemm_i8_tile = gemm_i8_tile;
    t.quantize_row_i8 = quantize_row_i8;
    t.quantize_row_i16 = quantize_row_i16;
    t.floats_to_half = floats_to_half;
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
