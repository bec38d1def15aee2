#include "ops.h"

#include <cmath>
#include <limits>

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

void linear(const float* x, int64_t M, int64_t K, const float* w, const float* bias, int64_t N,
            float* y, int64_t ldy, ThreadPool* pool) {
  if (M <= 0 || N <= 0) return;
  const KernelTable& kt = kernels();
  if (M <= kSmallM) {
    auto body = [&](int64_t n0, int64_t n1) {
      kt.gemv_nk(M, K, x, K, w, K, n0, n1, y, ldy);
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
    return;
  }
  sgemm(M, N, K, x, K, w, K, /*b_nk=*/true, y, ldy, /*accumulate=*/false, pool);
  if (bias != nullptr) {
    auto add_bias = [&](int64_t r0, int64_t r1) {
      for (int64_t m = r0; m < r1; ++m) add_inplace(y + m * ldy, bias, N);
    };
    if (pool != nullptr) pool->parallel_for(M, 16, add_bias); else add_bias(0, M);
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

float dot(const float* a, const float* b, int64_t n) { return kernels().dot(a, b, n); }

void axpy(float alpha, const float* x, float* y, int64_t n) { kernels().axpy(alpha, x, y, n); }

}  // namespace whisper_genio::cpu
