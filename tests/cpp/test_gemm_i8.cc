// int8 x int8 GEMM (cpu::gemm_i8) on every kernel table this machine can run: generic always,
// AVX2 on x86_64 CPUs that have it, NEON with and without the dot-product extension on
// aarch64 (the test runs under qemu in the aarch64 suite).
//
// Two checks per case:
//  - exact: the activations are quantised by the documented rule (q = round-half-even of
//    x * (qmax / max|x|), per row, qmax = gemm_i8_a_qmax(K)) in the test itself, and the
//    integer sums are computed in int64; the kernel may differ only by the float rounding of
//    its epilogue. Any indexing, packing, padding, hi/lo split or int16 saturation mistake
//    shows up here.
//  - against the float product A W^T: the error stays within the bound derived from the two
//    quantisation steps (|dx| <= sx / 2, |dw| <= sw / 2 per element).
// Also: sgemm with a prepacked B (the encoder attention's keys and values) against sgemm.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/ops.h"
#include "layers/weights.h"
#include "test_util.h"
#include "whisper_genio/model.h"
#include "whisper_genio/thread_pool.h"

using namespace whisper_genio;
using cpu::KernelTable;

namespace {

constexpr float kSentinel = -12345.0f;
constexpr double kU = 1.0 / (1 << 24);

struct Variant {
  std::string name;
  const KernelTable* table;
};

std::vector<Variant> variants() {
  std::vector<Variant> v{{"generic", &cpu::generic_kernels()}};
#if defined(WG_HAVE_AVX2_KERNELS) && defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    v.push_back({"avx2", &cpu::avx2_kernels()});
  }
#endif
#if defined(__aarch64__)
  v.push_back({"neon-base", &cpu::neon_nodot_kernels()});
  if (cpu::neon_has_dotprod()) v.push_back({"neon-dotprod", &cpu::neon_kernels()});
#endif
  return v;
}

// The documented quantisation rule (qmax = 127 for int8 activations, gemm_i8_a_qmax(K) for
// tables that pack int16), written independently of the kernels.
template <typename Q>
float ref_quantize(const float* x, int64_t n, float qmax, Q* q) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0.0f) {
    for (int64_t i = 0; i < n; ++i) q[i] = 0;
    return 0.0f;
  }
  const float inv = qmax / amax;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<Q>(v > qmax ? qmax : (v < -qmax ? -qmax : v));
  }
  return amax / qmax;
}

float ref_quantize(const float* x, int64_t n, int8_t* q) { return ref_quantize(x, n, 127.0f, q); }

struct Case {
  int64_t M, N, K;
};

// Runs gemm_i8 on `table` for A [M, K] (row stride lda) and the int8 weight (wq, ws) and
// checks both bounds. `zero_row` (if < M) is set to all zeros.
void check_case(const Variant& v, const Case& c, const std::vector<float>& A, int64_t lda,
                const std::vector<float>& W, const std::vector<int8_t>& wq, const std::vector<float>& ws,
                const std::vector<float>& bias, bool with_bias, ThreadPool* pool) {
  const int64_t M = c.M, N = c.N, K = c.K;
  const KernelTable& kt = *v.table;
  std::vector<int8_t> packed(static_cast<size_t>(cpu::packed_i8_size(kt, N, K)), 99);
  cpu::pack_weight_i8(kt, wq.data(), N, K, packed.data());
  const int64_t ldc = N + 3;
  std::vector<float> C(static_cast<size_t>(M * ldc), kSentinel);
  const float* b = with_bias ? bias.data() : nullptr;
  cpu::gemm_i8(kt, M, A.data(), lda, packed.data(), ws.data(), N, K, b, C.data(), ldc, pool);

  const float qmax = static_cast<float>(cpu::gemm_i8_a_qmax(kt, K));
  EXPECT_TRUE(qmax >= 127.0f && qmax <= (kt.i8_a_wide ? 32767.0f : 32639.0f)) << v.name << " qmax " << qmax;
  // int32 safety of the kernel's sums: K (padded) terms of at most qmax * 127 (the split
  // tables' partial sums may wrap; the final one fits).
  const int64_t Kp = (K + kt.i8_kg - 1) / kt.i8_kg * kt.i8_kg;
  EXPECT_LE(static_cast<int64_t>(qmax) * 127 * Kp, int64_t{2147483647}) << v.name;
  std::vector<int32_t> qa(static_cast<size_t>(K));
  for (int64_t m = 0; m < M; ++m) {
    const float* a = A.data() + m * lda;
    const float sa = ref_quantize(a, K, qmax, qa.data());
    for (int64_t n = 0; n < ldc; ++n) {
      const float got = C[m * ldc + n];
      if (n >= N) {
        EXPECT_EQ(got, kSentinel) << v.name << ": wrote past N (M=" << M << " N=" << N << " K=" << K << ")";
        continue;
      }
      int64_t isum = 0;
      double fsum = 0.0, bound = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        isum += static_cast<int64_t>(qa[k]) * wq[n * K + k];
        fsum += static_cast<double>(a[k]) * W[n * K + k];
        // a w - (qa sa)(qw sw) with |a - qa sa| <= sa / 2 and |w - qw sw| <= sw / 2
        bound += 0.5 * sa * std::fabs(static_cast<double>(wq[n * K + k]) * ws[n]) +
                 0.5 * ws[n] * std::fabs(static_cast<double>(qa[k]) * sa) + 0.25 * sa * ws[n];
      }
      const double bn = with_bias ? bias[n] : 0.0;
      const double exact = static_cast<double>(isum) * sa * ws[n] + bn;
      // Epilogue: int32 -> float (exact below 2^24, else 1 rounding) and 3 float operations.
      const double eps_tol = 8 * kU * (std::fabs(static_cast<double>(isum)) * sa * ws[n] + std::fabs(bn)) + 1e-30;
      EXPECT_NEAR(got, exact, eps_tol) << v.name << " exact: M=" << M << " N=" << N << " K=" << K << " m=" << m
                                       << " n=" << n;
      EXPECT_NEAR(got, fsum + bn, bound * 1.001 + eps_tol + 1e-6 * std::fabs(fsum))
          << v.name << " vs float: M=" << M << " N=" << N << " K=" << K << " m=" << m << " n=" << n;
      if (wg_test::failure_count() > 10) return;
    }
  }
}

}  // namespace

TEST(GemmI8, QuantizeRowI8SameNumbersOnEveryTable) {
  wg_test::Rng rng(71);
  for (const Variant& v : variants()) {
    for (int64_t n : {1, 7, 8, 15, 16, 17, 31, 33, 240, 517}) {
      std::vector<float> x = rng.floats(static_cast<size_t>(n), -4.0, 4.0);
      // Exact ties after scaling (x * 127 / amax = k + 0.5) must round to even on every table.
      if (n >= 4) {
        x[0] = 4.0f;
        x[1] = 0.5f * 4.0f / 127.0f;
        x[2] = 2.5f * 4.0f / 127.0f;
        x[3] = -4.0f;
      }
      std::vector<int8_t> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), 55);
      const float sw = ref_quantize(x.data(), n, want.data());
      const float sg = v.table->quantize_row_i8(x.data(), n, got.data());
      EXPECT_EQ(sg, sw) << v.name << " n=" << n;
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(static_cast<int>(got[i]), static_cast<int>(want[i])) << v.name << " n=" << n << " i=" << i;
    }
    std::vector<float> zeros(19, 0.0f);
    std::vector<int8_t> q(19, 3);
    EXPECT_EQ(v.table->quantize_row_i8(zeros.data(), 19, q.data()), 0.0f) << v.name;
    for (int8_t e : q) EXPECT_EQ(static_cast<int>(e), 0) << v.name;
    for (float qmax : {127.0f, 3302.0f, 8256.0f, 32767.0f}) {
      for (int64_t n : {1, 7, 8, 9, 16, 517}) {
        const std::vector<float> x = rng.floats(static_cast<size_t>(n), -4.0, 4.0);
        std::vector<int16_t> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), 55);
        const float sw = ref_quantize(x.data(), n, qmax, want.data());
        EXPECT_EQ(v.table->quantize_row_i16(x.data(), n, qmax, got.data()), sw) << v.name << " n=" << n;
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(static_cast<int>(got[i]), static_cast<int>(want[i])) << v.name << " qmax=" << qmax << " i=" << i;
      }
    }
  }
}

TEST(GemmI8, GemmI8MatchesExactIntegerSumsAndFloatWithinQuantisationBound) {
  wg_test::Rng rng(72);
  ThreadPool pool(3);
  // M = 1..300, K not a multiple of any k-group (and some that are), odd N for edge panels.
  const std::vector<int64_t> Ms = {1, 2, 3, 5, 7, 8, 9, 13, 31, 64, 100, 257, 300};
  const std::vector<std::pair<int64_t, int64_t>> NKs = {{1, 1}, {7, 3}, {17, 33}, {33, 100}, {100, 255}, {50, 517}, {24, 64}};
  size_t i = 0;
  for (int64_t M : Ms) {
    for (size_t j = 0; j < 3; ++j) {  // three (N, K) pairs per M, rotating through the list
      const auto [N, K] = NKs[(i++) % NKs.size()];
      const int64_t lda = K + 5;
      std::vector<float> A = rng.floats(static_cast<size_t>(M * lda), -2.0, 2.0);
      if (M > 2) {
        for (int64_t k = 0; k < K; ++k) A[1 * lda + k] = 0.0f;  // an all-zero row: scale 0
        for (int64_t k = 0; k < K; k += 3) A[2 * lda + k] *= 40.0f;  // an outlier-heavy row
      }
      std::vector<float> W = rng.floats(static_cast<size_t>(N * K), -0.5, 0.5);
      std::vector<int8_t> wq(static_cast<size_t>(N * K));
      std::vector<float> ws(static_cast<size_t>(N));
      for (int64_t n = 0; n < N; ++n) ws[n] = ref_quantize(W.data() + n * K, K, wq.data() + n * K);
      const std::vector<float> bias = rng.floats(static_cast<size_t>(N));
      for (const Variant& v : variants()) {
        check_case(v, {M, N, K}, A, lda, W, wq, ws, bias, (M + j) % 2 == 0, (M + j) % 3 == 0 ? nullptr : &pool);
        if (wg_test::failure_count() > 10) return;
      }
    }
  }
}

// Every product at +-127 * 127 with one sign, long K: the int16 stages (vpmaddwd pairs on
// AVX2, vmull/vmlal pairs on NEON) must not saturate and the int32 sums must be exact.
TEST(GemmI8, GemmI8ExtremeValuesDoNotSaturate) {
  ThreadPool pool(2);
  const int64_t M = 13, N = 19, K = 4099;
  std::vector<float> A(static_cast<size_t>(M * K));
  std::vector<int8_t> wq(static_cast<size_t>(N * K));
  std::vector<float> ws(static_cast<size_t>(N), 1.0f);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < K; ++k) A[m * K + k] = ((k + m) % 2 == 0) ? 1.0f : -1.0f;
  }
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      // Column n: same signs as row n % M (all products +127*127) or opposite (all -127*127).
      const int64_t m = n % M;
      const int sign = (n % 2 == 0) ? 1 : -1;
      wq[n * K + k] = static_cast<int8_t>(sign * (((k + m) % 2 == 0) ? 127 : -127));
    }
  }
  for (const Variant& v : variants()) {
    const KernelTable& kt = *v.table;
    std::vector<int8_t> packed(static_cast<size_t>(cpu::packed_i8_size(kt, N, K)));
    cpu::pack_weight_i8(kt, wq.data(), N, K, packed.data());
    std::vector<float> C(static_cast<size_t>(M * N), kSentinel);
    cpu::gemm_i8(kt, M, A.data(), K, packed.data(), ws.data(), N, K, nullptr, C.data(), N, &pool);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t m = n % M;
      const double want = ((n % 2 == 0) ? 1.0 : -1.0) * 127.0 * 127.0 * static_cast<double>(K) / 127.0;  // sa = 1/127
      EXPECT_NEAR(C[m * N + n], want, 8 * kU * std::fabs(want)) << v.name << " n=" << n;
    }
  }
}

// Split tables store q = 256 hi + lo with lo in [-128, 127]: activations at q = +-128 give
// lo = -128 everywhere, and with weights at -127 every int16 pair of the NEON base kernel
// holds 2 * 128 * 127 = 32512, the most it can. The sums must stay exact.
TEST(GemmI8, SplitLoPanelAtMinus128DoesNotSaturate) {
  ThreadPool pool(2);
  const int64_t M = 9, N = 13, K = 1031;
  std::vector<int8_t> wq(static_cast<size_t>(N * K), -127);
  const std::vector<float> ws(static_cast<size_t>(N), 1.0f);
  for (const Variant& v : variants()) {
    const KernelTable& kt = *v.table;
    const float qmax = static_cast<float>(cpu::gemm_i8_a_qmax(kt, K));
    std::vector<float> A(static_cast<size_t>(M * K));
    for (int64_t m = 0; m < M; ++m) {
      A[m * K] = 1.0f;  // sets the row scale to 1 / qmax
      for (int64_t k = 1; k < K; ++k) A[m * K + k] = (((k + m) % 3 == 0) ? -128.0f : 128.0f) / qmax;
    }
    std::vector<int8_t> packed(static_cast<size_t>(cpu::packed_i8_size(kt, N, K)));
    cpu::pack_weight_i8(kt, wq.data(), N, K, packed.data());
    std::vector<float> C(static_cast<size_t>(M * N), kSentinel);
    cpu::gemm_i8(kt, M, A.data(), K, packed.data(), ws.data(), N, K, nullptr, C.data(), N, &pool);
    std::vector<int32_t> qa(static_cast<size_t>(K));
    for (int64_t m = 0; m < M; ++m) {
      const float sa = ref_quantize(A.data() + m * K, K, qmax, qa.data());
      EXPECT_EQ(std::abs(qa[1]), 128) << v.name;
      int64_t isum = 0;
      for (int64_t k = 0; k < K; ++k) isum += int64_t{qa[k]} * -127;
      const double want = static_cast<double>(isum) * sa;
      for (int64_t n = 0; n < N; ++n) EXPECT_NEAR(C[m * N + n], want, 8 * kU * std::fabs(want)) << v.name << " m=" << m;
    }
  }
}

// The layer path: an int8 Linear packed with and without its row-major copy, through
// Linear::forward, for the small-M rows (GEMV or packed GEMM) and the large-M rows.
TEST(GemmI8, LinearPackedInt8EveryRowCount) {
  wg_test::Rng rng(73);
  ThreadPool pool(2);
  const int64_t N = 37, K = 70;
  const std::vector<float> W = rng.floats(static_cast<size_t>(N * K), -0.3, 0.3);
  for (bool keep_rows : {true, false}) {
    layers::Linear lin;
    lin.n = N;
    lin.k = K;
    EXPECT_OK(lin.store(cpu::WeightType::kI8, W.data()));
    std::vector<int8_t> rows(lin.w8.data(), lin.w8.data() + N * K);
    const std::vector<float> scales(lin.scales.data(), lin.scales.data() + N);
    lin.b.reset(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) lin.b[n] = static_cast<float>(rng.uniform(-1, 1));
    EXPECT_OK(lin.pack_i8(keep_rows));
    EXPECT_EQ(lin.view().packed != nullptr, true);
    EXPECT_EQ(lin.view().data != nullptr, keep_rows);
    for (int64_t M : {1, 3, 8, 9, 40}) {
      const std::vector<float> x = rng.floats(static_cast<size_t>(M * K), -1.0, 1.0);
      std::vector<float> y(static_cast<size_t>(M * N), kSentinel);
      lin.forward(x.data(), M, y.data(), &pool);
      std::vector<int32_t> qa(static_cast<size_t>(K));
      // Up to 8 rows take the GEMV (int8 activations) when the rows are kept.
      const bool gemv = keep_rows && M <= 8;
      const float qmax = gemv ? 127.0f : static_cast<float>(cpu::gemm_i8_a_qmax(cpu::kernels(), K));
      for (int64_t m = 0; m < M; ++m) {
        const float sa = ref_quantize(x.data() + m * K, K, qmax, qa.data());
        for (int64_t n = 0; n < N; ++n) {
          int64_t isum = 0;
          for (int64_t k = 0; k < K; ++k) isum += static_cast<int64_t>(qa[k]) * rows[n * K + k];
          const double want = static_cast<double>(isum) * sa * scales[n] + lin.b[n];
          EXPECT_NEAR(y[m * N + n], want, 8 * kU * (std::fabs(static_cast<double>(isum) * sa * scales[n]) + std::fabs(lin.b[n])))
              << "keep_rows=" << keep_rows << " M=" << M << " n=" << n;
        }
      }
      if (wg_test::failure_count() > 10) return;
    }
  }
}

// A float32 Linear packed once at load (Linear::pack) gives the unpacked Linear's results bit
// for bit, with and without its row-major copy, for every row count.
TEST(GemmI8, LinearPackedFloat32EqualsUnpacked) {
  wg_test::Rng rng(75);
  ThreadPool pool(2);
  const int64_t N = 37, K = 300;  // K spans two K blocks of the float GEMM
  const std::vector<float> W = rng.floats(static_cast<size_t>(N * K), -0.3, 0.3);
  layers::Linear plain;
  plain.n = N;
  plain.k = K;
  EXPECT_OK(plain.store(cpu::WeightType::kF32, W.data()));
  plain.b.reset(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) plain.b[n] = static_cast<float>(rng.uniform(-1, 1));
  for (bool keep_rows : {true, false}) {
    layers::Linear lin;
    lin.n = N;
    lin.k = K;
    EXPECT_OK(lin.store(cpu::WeightType::kF32, W.data()));
    lin.b.reset(static_cast<size_t>(N));
    std::memcpy(lin.b.data(), plain.b.data(), static_cast<size_t>(N) * sizeof(float));
    EXPECT_OK(lin.pack(keep_rows));
    EXPECT_TRUE(lin.view().packed_f32 != nullptr);
    EXPECT_EQ(lin.view().data != nullptr, keep_rows);
    for (int64_t M : {1, 5, 8, 9, 40}) {
      const std::vector<float> x = rng.floats(static_cast<size_t>(M * K), -1.0, 1.0);
      std::vector<float> want(static_cast<size_t>(M * N), kSentinel), got(want);
      plain.forward(x.data(), M, want.data(), &pool);
      lin.forward(x.data(), M, got.data(), &pool);
      if (keep_rows || M > 8) {
        EXPECT_TRUE(got == want) << "keep_rows=" << keep_rows << " M=" << M;
      } else {  // packed-only takes the GEMM for few rows too: a different summation order
        for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << "M=" << M << " i=" << i;
      }
    }
  }
}

// sgemm with B packed once (the encoder's per-head keys and values) equals sgemm packing B
// itself, bit for bit: K across several K blocks (256), N across several N blocks (512).
TEST(GemmI8, SgemmPrepackedEqualsSgemm) {
  wg_test::Rng rng(74);
  ThreadPool pool(2);
  for (const auto& [M, N, K] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1, 1}, {7, 13, 5}, {64, 1500, 64}, {64, 64, 1500}, {33, 1030, 600}}) {
    for (bool b_nk : {true, false}) {
      const int64_t lda = K + 1, ldb = (b_nk ? K : N) + 3, ldc = N + 2;
      const std::vector<float> A = rng.floats(static_cast<size_t>(M * lda));
      const std::vector<float> B = rng.floats(static_cast<size_t>((b_nk ? N : K) * ldb));
      std::vector<float> packed(static_cast<size_t>(cpu::sgemm_packed_b_size(N, K)));
      cpu::sgemm_pack_b(N, K, B.data(), ldb, b_nk, packed.data());
      std::vector<float> want(static_cast<size_t>(M * ldc), kSentinel), got(want);
      cpu::sgemm(M, N, K, A.data(), lda, B.data(), ldb, b_nk, want.data(), ldc, false, &pool);
      cpu::sgemm_prepacked(M, N, K, A.data(), lda, packed.data(), got.data(), ldc, false, &pool);
      size_t bad = 0;
      for (size_t i = 0; i < want.size(); ++i) bad += want[i] != got[i];
      EXPECT_EQ(bad, size_t{0}) << "M=" << M << " N=" << N << " K=" << K << " b_nk=" << b_nk;
    }
  }
}

// The vectorised float -> half conversion (cross-attention K/V of float16/int8 models) gives
// float_to_half's bits on every table: ties to even, subnormals, overflow to infinity.
TEST(GemmI8, FloatsToHalfSameBitsAsFloatToHalf) {
  wg_test::Rng rng(75);
  std::vector<float> x = rng.floats(1000, -70000.0, 70000.0);
  for (size_t i = 0; i < 200; ++i) x[i] = static_cast<float>(rng.uniform(-1e-4, 1e-4));  // subnormal halves
  for (uint32_t h = 0; h < 0x7c00; h += 37) x.push_back(half_to_float(static_cast<uint16_t>(h)) * 1.00048828125f);  // ties
  x.push_back(65520.0f);
  x.push_back(-1e9f);
  x.push_back(0.0f);
  x.push_back(-0.0f);
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<cpu::KernelTable const*> tabs{&cpu::generic_kernels()};
  for (const Variant& v : variants()) tabs.push_back(v.table);
  for (const cpu::KernelTable* t : tabs) {
    for (int64_t off : {0, 3}) {  // aligned and odd starts, tails below the vector width
      std::vector<uint16_t> y(static_cast<size_t>(n), 0x1234);
      t->floats_to_half(x.data() + off, n - off, y.data());
      for (int64_t i = 0; i < n - off; ++i) {
        EXPECT_EQ(y[i], float_to_half(x[i + off])) << cpu::isa_name(t->isa) << " x=" << x[i + off];
        if (wg_test::failure_count() > 10) return;
      }
    }
  }
}

// Precision of each table's activation quantisation, the only ISA-dependent error of gemm_i8
// (the int8 weights and the integer sums are the same everywhere; the exact test above pins
// the sums). Against the float64 product of A with the dequantised weights, the error is the
// rounding of A to qmax levels: uniform in +-sa/2 per element, so its expected RMS over a
// column is sa * sqrt(sum_k w_k^2 / 12). Every table must be as precise as the int16 limit
// min(32767, int32 bound) allows: a table that quantises to about half as many levels (one
// bit less) doubles the RMS and fails. Whisper's Linear inputs (K = d_model and 4 d_model
// for base and large), activations of transformer-like spread (a few large channels).
TEST(GemmI8, ActivationQuantisationAsPreciseAsInt16OnEveryTable) {
  wg_test::Rng rng(76);
  ThreadPool pool(2);
  const int64_t M = 48, N = 40;
  for (int64_t K : {512, 1280, 2048, 5120}) {
    std::vector<float> A = rng.floats(static_cast<size_t>(M * K), -1.0, 1.0);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t k = 0; k < K; k += 97) A[m * K + k] *= 12.0f;  // outlier channels set the row scale
    }
    const std::vector<float> W = rng.floats(static_cast<size_t>(N * K), -0.1, 0.1);
    std::vector<int8_t> wq(static_cast<size_t>(N * K));
    std::vector<float> ws(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) ws[n] = ref_quantize(W.data() + n * K, K, wq.data() + n * K);
    const int64_t Kp = (K + 15) / 16 * 16;
    const double q16 = std::min<double>(32767.0, static_cast<double>((int64_t{1} << 31) - 1) / (127.0 * Kp));
    for (const Variant& v : variants()) {
      const KernelTable& kt = *v.table;
      std::vector<int8_t> packed(static_cast<size_t>(cpu::packed_i8_size(kt, N, K)));
      cpu::pack_weight_i8(kt, wq.data(), N, K, packed.data());
      std::vector<float> C(static_cast<size_t>(M * N));
      cpu::gemm_i8(kt, M, A.data(), K, packed.data(), ws.data(), N, K, nullptr, C.data(), N, &pool);
      double err2 = 0.0, want2 = 0.0, ref2 = 0.0, werr2 = 0.0;
      for (int64_t m = 0; m < M; ++m) {
        const float* a = A.data() + m * K;
        double amax = 0.0;
        for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(static_cast<double>(a[k])));
        const double s16 = amax / q16;
        for (int64_t n = 0; n < N; ++n) {
          double ref = 0.0, full = 0.0, w2 = 0.0;
          for (int64_t k = 0; k < K; ++k) {
            const double w = static_cast<double>(wq[n * K + k]) * ws[n];
            ref += a[k] * w;
            full += static_cast<double>(a[k]) * W[n * K + k];
            w2 += w * w;
          }
          const double e = C[m * N + n] - ref;
          err2 += e * e;
          want2 += s16 * s16 * w2 / 12.0;
          ref2 += ref * ref;
          werr2 += (C[m * N + n] - full) * (C[m * N + n] - full);
        }
      }
      const double rms = std::sqrt(err2 / (M * N)), ideal = std::sqrt(want2 / (M * N)), scale = std::sqrt(ref2 / (M * N));
      // Numbers for docs/on-device.md (int8 precision per ISA); the check is the ratio.
      std::printf("gemm_i8 precision %-12s K=%5lld qmax=%5d act-RMS/ideal=%.3f act-RMS/|y|=%.2e total-RMS/|y|=%.2e\n",
                  v.name.c_str(), static_cast<long long>(K), cpu::gemm_i8_a_qmax(kt, K), rms / ideal, rms / scale,
                  std::sqrt(werr2 / (M * N)) / scale);
      // 1920 samples of the error: the RMS ratio lands within a few percent of its expectation.
      EXPECT_LT(rms / ideal, 1.15) << v.name << " K=" << K << ": activations less precise than int16 allows";
      EXPECT_GT(rms / ideal, 0.85) << v.name << " K=" << K;
    }
  }
}
