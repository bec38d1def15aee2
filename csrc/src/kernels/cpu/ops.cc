#include "ops.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>

#include "kernel_table.h"

namespace whisper_genio::cpu {

const KernelTable& kernels() {
  static const KernelTable* table = [] {
    switch (active_isa()) {
#if defined(WG_HAVE_AVX2_KERNELS)
      case Isa::kAvx2: return &avx2_kernels();
#endif
#if defined(__aarch64__)
      case Isa::kNeon: return &neon_kernels();
#endif
      default: return &generic_kernels();
    }
  }();
  return *table;
}

// Rows at or below this count take the weight-streaming path: each weight row is read once
// and used for every input row, which is what bounds per-token decoding (memory traffic).
constexpr int64_t kSmallM = 8;

// The table's variant: identical numbers on every table, vectorised where it has SIMD.
float quantize_row_i8(const float* x, int64_t n, int8_t* q) { return kernels().quantize_row_i8(x, n, q); }

void linear(const float* x, int64_t M, const WeightView& w, const float* bias, float* y, int64_t ldy,
            ThreadPool* pool) {
  const int64_t N = w.n, K = w.k;
  if (M <= 0 || N <= 0) return;
  const KernelTable& kt = kernels();
  if (w.type == WeightType::kI8 && w.packed != nullptr && (M > kSmallM || w.data == nullptr)) {
    gemm_i8(kt, M, x, K, w.packed, w.scales, N, K, bias, y, ldy, pool);
    return;
  }
  const bool prepacked = w.type == WeightType::kF32 && w.packed_f32 != nullptr && (M > kSmallM || w.data == nullptr);
  if (M > kSmallM || prepacked) {
    if (prepacked) {
      sgemm_prepacked(M, N, K, x, K, w.packed_f32, y, ldy, /*accumulate=*/false, pool);
    } else {
      sgemm_weight(M, x, K, w, y, ldy, /*accumulate=*/false, pool);
    }
    if (bias != nullptr) {
      auto add_bias = [&](int64_t r0, int64_t r1) {
        for (int64_t m = r0; m < r1; ++m) add_inplace(y + m * ldy, bias, N);
      };
      if (pool != nullptr) pool->parallel_for(M, 16, add_bias); else add_bias(0, M);
    }
    return;
  }
  // int8 weights: quantise the few activation rows once, then int8 dot products.
  int8_t xq_stack[kSmallM * 64];
  std::unique_ptr<int8_t[]> xq_heap;
  int8_t* xq = xq_stack;
  float xs[kSmallM];
  if (w.type == WeightType::kI8) {
    if (M * K > static_cast<int64_t>(sizeof(xq_stack))) {
      xq_heap.reset(new int8_t[static_cast<size_t>(M * K)]);
      xq = xq_heap.get();
    }
    for (int64_t m = 0; m < M; ++m) xs[m] = quantize_row_i8(x + m * K, K, xq + m * K);
  }
  auto body = [&](int64_t n0, int64_t n1) {
    switch (w.type) {
      case WeightType::kF32:
        kt.gemv_nk(M, K, x, K, static_cast<const float*>(w.data), K, n0, n1, y, ldy);
        break;
      case WeightType::kF16:
        kt.gemv_nk_f16(M, K, x, K, static_cast<const uint16_t*>(w.data), K, n0, n1, y, ldy);
        break;
      case WeightType::kI8:
        kt.gemv_nk_i8(M, K, xq, K, xs, static_cast<const int8_t*>(w.data), K, w.scales, n0, n1, y, ldy);
        break;
    }
    if (bias != nullptr) {
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = n0; n < n1; ++n) y[m * ldy + n] += bias[n];
      }
    }
  };
  // 64 output rows per chunk minimum: below that the wake-up costs more than it saves.
  if (pool != nullptr && N * K >= (1 << 16)) {
    pool->parallel_for(N, 64, body);
  } else {
    body(0, N);
  }
}

void layer_norm(const float* x, int64_t rows, int64_t d, const float* gamma, const float* beta, float* y,
                ThreadPool* pool) {
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      // Two passes in double: the residual stream carries values in the hundreds, where a
      // float running sum loses digits that PyTorch keeps.
      double mean = 0.0;
      for (int64_t i = 0; i < d; ++i) mean += xr[i];
      mean /= static_cast<double>(d);
      double var = 0.0;
      for (int64_t i = 0; i < d; ++i) {
        const double c = xr[i] - mean;
        var += c * c;
      }
      var /= static_cast<double>(d);
      const float inv = static_cast<float>(1.0 / std::sqrt(var + 1e-5));
      const float m = static_cast<float>(mean);
      for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - m) * inv * gamma[i] + beta[i];
    }
  };
  if (pool != nullptr && rows >= 32) pool->parallel_for(rows, 16, body); else body(0, rows);
}

void gelu(float* x, int64_t n, ThreadPool* pool) {
  const KernelTable& kt = kernels();
  if (pool != nullptr && n >= (1 << 15)) {
    pool->parallel_for(n, 1 << 13, [&](int64_t b, int64_t e) { kt.gelu(x + b, e - b); });
  } else {
    kt.gelu(x, n);
  }
}

void softmax(float* x, int64_t n) {
  const KernelTable& kt = kernels();
  const float m = kt.max(x, n);
  if (m == -std::numeric_limits<float>::infinity()) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  const float sum = kt.exp_shift_sum(x, n, m);
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void add_inplace(float* y, const float* x, int64_t n) { kernels().axpy(1.0f, x, y, n); }

void gemv_nk(int64_t M, int64_t K, const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t n0,
             int64_t n1, float* y, int64_t ldy) {
  kernels().gemv_nk(M, K, x, ldx, w, ldw, n0, n1, y, ldy);
}

void weighted_rows(const float* p, int64_t T, const float* V, int64_t ldv, int64_t n, float* y) {
  kernels().weighted_rows(p, T, V, ldv, n, y);
}

void weighted_rows_f16(const float* p, int64_t T, const uint16_t* V, int64_t ldv, int64_t n, float* y) {
  kernels().weighted_rows_f16(p, T, V, ldv, n, y);
}

void weighted_rows_i8(const float* p, int64_t T, const int8_t* V, int64_t ldv, int64_t n, float* y) {
  kernels().weighted_rows_i8(p, T, V, ldv, n, y);
}

void gemv_nk_i8w(int64_t M, int64_t K, const float* x, int64_t ldx, const int8_t* w, int64_t ldw, int64_t n0,
                 int64_t n1, float* y, int64_t ldy) {
  kernels().gemv_nk_i8w(M, K, x, ldx, w, ldw, n0, n1, y, ldy);
}

void gemv_nk_f16(int64_t M, int64_t K, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, int64_t n0,
                 int64_t n1, float* y, int64_t ldy) {
  kernels().gemv_nk_f16(M, K, x, ldx, w, ldw, n0, n1, y, ldy);
}

void floats_to_half(const float* x, int64_t n, uint16_t* y) { kernels().floats_to_half(x, n, y); }

float dot(const float* a, const float* b, int64_t n) { return kernels().dot(a, b, n); }

void axpy(float alpha, const float* x, float* y, int64_t n) { kernels().axpy(alpha, x, y, n); }

}  // namespace whisper_genio::cpu
