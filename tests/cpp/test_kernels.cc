// CPU kernels: every ISA table this machine can run (generic always; AVX2 when the CPU has
// AVX2+FMA; NEON on aarch64), called directly, and the ops.h entry points (which use the
// table chosen at run time: CTest runs this file again with WHISPER_GENIO_ISA=generic), all
// against straightforward double-precision references.
//
// Tolerances for sums of K float products follow the standard rounding-error bound
// |err| <= K * u * sum |a_k b_k| (u = 2^-24), with a little margin: any indexing or
// masking mistake gives errors of the size of the values themselves.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/ops.h"
#include "test_util.h"
#include "whisper_genio/model.h"
#include "whisper_genio/thread_pool.h"

using namespace whisper_genio;
using cpu::KernelTable;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kSentinel = -12345.0f;
constexpr double kU = 1.0 / (1 << 24);

std::vector<const KernelTable*> tables() {
  std::vector<const KernelTable*> t{&cpu::generic_kernels()};
#if defined(WG_HAVE_AVX2_KERNELS) && defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) t.push_back(&cpu::avx2_kernels());
#endif
#if defined(__aarch64__)
  t.push_back(&cpu::neon_kernels());
#endif
  return t;
}

std::string name(const KernelTable* t) { return cpu::isa_name(t->isa); }

// Bound on the rounding error of a K-term float dot product whose terms sum to `abs_sum`
// in absolute value.
double dot_tol(int64_t K, double abs_sum) { return 2.0 * (static_cast<double>(K) + 2.0) * kU * abs_sum + 1e-30; }

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

// C = (accumulate ? C : 0) + A op(B) on logical matrices A [M,K], B [K,N] (double).
struct GemmCase {
  int64_t M, N, K;
};

void check_sgemm(const GemmCase& g, ThreadPool* pool, wg_test::Rng& rng) {
  const int64_t M = g.M, N = g.N, K = g.K;
  const int64_t lda = K + 3, ldc = N + 1;
  const std::vector<float> A = rng.floats(static_cast<size_t>(M * lda));
  const std::vector<float> Bl = rng.floats(static_cast<size_t>(K * N));  // logical B[k][n] = Bl[k * N + n]
  const std::vector<float> C0 = rng.floats(static_cast<size_t>(M * ldc));
  std::vector<double> ref(static_cast<size_t>(M * N)), abs_sum(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0, a = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = static_cast<double>(A[i * lda + k]) * Bl[k * N + j];
        s += p;
        a += std::fabs(p);
      }
      ref[i * N + j] = s;
      abs_sum[i * N + j] = a;
    }
  }
  for (bool b_nk : {false, true}) {
    // The same logical B stored as [N, K] (a Linear weight) or [K, N], with padded rows.
    const int64_t ldb = b_nk ? K + 2 : N + 2;
    std::vector<float> B(static_cast<size_t>((b_nk ? N : K) * ldb), kSentinel);
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t j = 0; j < N; ++j) (b_nk ? B[j * ldb + k] : B[k * ldb + j]) = Bl[k * N + j];
    }
    for (bool accumulate : {false, true}) {
      std::vector<float> C = C0;
      cpu::sgemm(M, N, K, A.data(), lda, B.data(), ldb, b_nk, C.data(), ldc, accumulate, pool);
      int bad = 0;
      for (int64_t i = 0; i < M && bad < 3; ++i) {
        for (int64_t j = 0; j < ldc && bad < 3; ++j) {
          const float got = C[i * ldc + j];
          if (j >= N) {  // the row padding must be left alone
            if (got != C0[i * ldc + j]) {
              ++bad;
              EXPECT_EQ(got, C0[i * ldc + j]) << "sgemm wrote outside C at row " << i << " col " << j;
            }
            continue;
          }
          const double base = accumulate ? C0[i * ldc + j] : 0.0;
          const double expected = base + ref[i * N + j];
          const double tol = dot_tol(K + 1, abs_sum[i * N + j] + std::fabs(base));
          if (!(std::fabs(got - expected) <= tol)) {
            ++bad;
            EXPECT_NEAR(got, expected, tol) << "sgemm M=" << M << " N=" << N << " K=" << K << " b_nk=" << b_nk
                                            << " accumulate=" << accumulate << " pool=" << (pool != nullptr)
                                            << " at (" << i << ", " << j << ")";
          }
        }
      }
    }
  }
}

}  // namespace

TEST(Kernels, ActiveIsaIsTheBestAvailable) {
  const char* forced = std::getenv("WHISPER_GENIO_ISA");
  const bool force_generic = forced != nullptr && std::string(forced) == "generic";
  cpu::Isa best = cpu::Isa::kGeneric;
#if defined(__aarch64__)
  best = cpu::Isa::kNeon;
#elif defined(WG_HAVE_AVX2_KERNELS) && defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = cpu::Isa::kAvx2;
#endif
  const cpu::Isa expected = force_generic ? cpu::Isa::kGeneric : best;
  EXPECT_EQ(cpu::isa_name(cpu::active_isa()), std::string(cpu::isa_name(expected)));
  EXPECT_EQ(cpu::kernels().isa, cpu::active_isa());
  std::cout << "  active ISA: " << cpu::isa_name(cpu::active_isa()) << ", tables tested:";
  for (const KernelTable* t : tables()) std::cout << " " << name(t);
  std::cout << ", cpu features: \"" << cpu::cpu_features() << "\"" << std::endl;
}

TEST(Kernels, TablesHaveSaneTileSizes) {
  for (const KernelTable* t : tables()) {
    EXPECT_GE(t->mr, 1) << name(t);
    EXPECT_GE(t->nr, 1) << name(t);
    EXPECT_LE(t->mr * t->nr, 16 * 16) << name(t) << ": sgemm's edge buffer holds 16 x 16";
    EXPECT_TRUE(t->gemm_tile && t->gemv_nk && t->dot && t->axpy && t->max && t->exp_shift_sum && t->gelu) << name(t);
  }
}

// The micro-tile of each table, on packed panels, against a double reference.
TEST(Kernels, GemmTileEveryTable) {
  wg_test::Rng rng(11);
  for (const KernelTable* t : tables()) {
    const int mr = t->mr, nr = t->nr;
    const int64_t ldc = nr + 5;
    for (int64_t kc : {1, 2, 3, 7, 16, 33, 100, 256}) {
      const std::vector<float> a = rng.floats(static_cast<size_t>(kc * mr));
      const std::vector<float> b = rng.floats(static_cast<size_t>(kc * nr));
      const std::vector<float> c0 = rng.floats(static_cast<size_t>(mr * ldc));
      for (bool accumulate : {false, true}) {
        std::vector<float> c = c0;
        t->gemm_tile(kc, a.data(), b.data(), c.data(), ldc, accumulate);
        for (int i = 0; i < mr; ++i) {
          for (int64_t j = 0; j < ldc; ++j) {
            if (j >= nr) {
              EXPECT_EQ(c[i * ldc + j], c0[i * ldc + j]) << name(t) << ": wrote past the tile";
              continue;
            }
            double s = accumulate ? c0[i * ldc + j] : 0.0, abs_sum = std::fabs(s);
            for (int64_t k = 0; k < kc; ++k) {
              s += static_cast<double>(a[k * mr + i]) * b[k * nr + j];
              abs_sum += std::fabs(static_cast<double>(a[k * mr + i]) * b[k * nr + j]);
            }
            EXPECT_NEAR(c[i * ldc + j], s, dot_tol(kc + 1, abs_sum))
                << name(t) << " kc=" << kc << " accumulate=" << accumulate << " (" << i << ", " << j << ")";
          }
        }
        if (wg_test::failure_count() > 10) return;
      }
    }
  }
}

// cpu::sgemm (active table) for odd sizes: each dimension swept over 1..70 with the others
// fixed, random triples, K beyond the 256 block, and products large enough to be split over
// the pool's threads. Both B layouts, accumulate on/off, with and without a 3-thread pool.
TEST(Kernels, SgemmOddSizes) {
  wg_test::Rng rng(12);
  ThreadPool pool(3);
  std::vector<GemmCase> cases;
  for (int64_t s = 1; s <= 70; ++s) {
    cases.push_back({s, 13, 17});
    cases.push_back({11, s, 9});
    cases.push_back({7, 19, s});
  }
  for (int i = 0; i < 40; ++i) cases.push_back({rng.uniform_int(1, 70), rng.uniform_int(1, 70), rng.uniform_int(1, 70)});
  cases.push_back({5, 9, 257});
  cases.push_back({33, 29, 600});
  cases.push_back({70, 70, 70});
  for (const GemmCase& g : cases) {
    check_sgemm(g, nullptr, rng);
    check_sgemm(g, &pool, rng);
    if (wg_test::failure_count() > 10) return;
  }
}

TEST(Kernels, SgemmSplitOverThreads) {
  wg_test::Rng rng(13);
  ThreadPool pool(3);
  // M * N * K >= 2^18 and more than one (M block x N block) task, so the pool does run:
  // M beyond one 120-row block, N beyond one ~512-column block, K beyond the 256 K block.
  for (const GemmCase& g : {GemmCase{250, 530, 3}, GemmCase{125, 40, 300}, GemmCase{7, 1100, 40},
                            GemmCase{241, 97, 61}}) {
    check_sgemm(g, &pool, rng);
    check_sgemm(g, nullptr, rng);
    if (wg_test::failure_count() > 10) return;
  }
}

TEST(Kernels, SgemmDegenerateSizes) {
  float c[6] = {1, 2, 3, 4, 5, 6};
  const float a[1] = {0}, b[1] = {0};
  cpu::sgemm(2, 3, 0, a, 1, b, 1, false, c, 3, /*accumulate=*/true, nullptr);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c[i], i + 1.0f) << "K = 0 with accumulate keeps C";
  cpu::sgemm(2, 3, 0, a, 1, b, 1, false, c, 3, /*accumulate=*/false, nullptr);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c[i], 0.0f) << "K = 0 without accumulate zeroes C";
  c[0] = 9;
  cpu::sgemm(0, 3, 4, a, 1, b, 1, false, c, 3, false, nullptr);
  cpu::sgemm(2, 0, 4, a, 1, b, 1, false, c, 3, false, nullptr);
  EXPECT_EQ(c[0], 9.0f) << "M = 0 or N = 0 touches nothing";
}

TEST(Kernels, GemvNkEveryTable) {
  wg_test::Rng rng(14);
  const int64_t N = 13, n0 = 2, n1 = 11;
  for (const KernelTable* t : tables()) {
    for (int64_t M = 1; M <= 9; ++M) {
      for (int64_t K : {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 200}) {
        const int64_t ldx = K + 1, ldw = K + 2, ldy = N + 3;
        const std::vector<float> x = rng.floats(static_cast<size_t>(M * ldx));
        const std::vector<float> w = rng.floats(static_cast<size_t>(N * ldw));
        for (int via_ops = 0; via_ops < 2; ++via_ops) {
          if (via_ops && t != &cpu::kernels()) continue;
          std::vector<float> y(static_cast<size_t>(M * ldy), kSentinel);
          if (via_ops) cpu::gemv_nk(M, K, x.data(), ldx, w.data(), ldw, n0, n1, y.data(), ldy);
          else t->gemv_nk(M, K, x.data(), ldx, w.data(), ldw, n0, n1, y.data(), ldy);
          for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < ldy; ++n) {
              const float got = y[m * ldy + n];
              if (n < n0 || n >= n1) {
                EXPECT_EQ(got, kSentinel) << name(t) << ": gemv_nk wrote outside [n0, n1) at m " << m << " n " << n;
                continue;
              }
              double s = 0, a = 0;
              for (int64_t k = 0; k < K; ++k) {
                s += static_cast<double>(x[m * ldx + k]) * w[n * ldw + k];
                a += std::fabs(static_cast<double>(x[m * ldx + k]) * w[n * ldw + k]);
              }
              EXPECT_NEAR(got, s, dot_tol(K, a)) << name(t) << " M=" << M << " K=" << K << " m=" << m << " n=" << n;
            }
            // A row's result does not depend on how many rows share the pass (beams stay
            // bit-identical to greedy whatever the block they fall in).
            std::vector<float> alone(static_cast<size_t>(ldy), kSentinel);
            t->gemv_nk(1, K, x.data() + m * ldx, ldx, w.data(), ldw, n0, n1, alone.data(), ldy);
            for (int64_t n = n0; n < n1; ++n) {
              EXPECT_EQ(y[m * ldy + n], alone[n]) << name(t) << " M=" << M << " K=" << K << " m=" << m;
            }
          }
          if (wg_test::failure_count() > 10) return;
        }
      }
    }
  }
}

TEST(Kernels, DotEveryTable) {
  wg_test::Rng rng(15);
  for (const KernelTable* t : tables()) {
    for (int64_t n = 0; n <= 1100; n += (n < 70 ? 1 : 343)) {
      const std::vector<float> a = rng.floats(static_cast<size_t>(n) + 1);
      const std::vector<float> b = rng.floats(static_cast<size_t>(n) + 1);
      double s = 0, abs_sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        s += static_cast<double>(a[i]) * b[i];
        abs_sum += std::fabs(static_cast<double>(a[i]) * b[i]);
      }
      EXPECT_NEAR(t->dot(a.data(), b.data(), n), s, dot_tol(n, abs_sum)) << name(t) << " n=" << n;
      if (t == &cpu::kernels()) {
        EXPECT_NEAR(cpu::dot(a.data(), b.data(), n), s, dot_tol(n, abs_sum)) << "ops n=" << n;
      }
    }
  }
}

TEST(Kernels, AxpyEveryTable) {
  wg_test::Rng rng(16);
  for (const KernelTable* t : tables()) {
    for (int64_t n = 0; n <= 70; ++n) {
      const std::vector<float> x = rng.floats(static_cast<size_t>(n));
      std::vector<float> y0 = rng.floats(static_cast<size_t>(n) + 1);
      y0[static_cast<size_t>(n)] = kSentinel;
      const float alpha = static_cast<float>(rng.uniform(-2.0, 2.0));
      for (int via_ops = 0; via_ops < 2; ++via_ops) {
        if (via_ops && t != &cpu::kernels()) continue;
        std::vector<float> y = y0;
        if (via_ops) cpu::axpy(alpha, x.data(), y.data(), n);
        else t->axpy(alpha, x.data(), y.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          const double expected = y0[i] + static_cast<double>(alpha) * x[i];
          EXPECT_NEAR(y[i], expected, 4 * kU * (std::fabs(y0[i]) + std::fabs(alpha * x[i])))
              << name(t) << " n=" << n << " i=" << i;
        }
        EXPECT_EQ(y[static_cast<size_t>(n)], kSentinel) << name(t) << ": axpy wrote past n=" << n;
      }
    }
    // add_inplace is axpy with alpha 1.
    std::vector<float> y = {1, 2, 3, 4, 5, 6, 7, 8, 9}, x = {9, 8, 7, 6, 5, 4, 3, 2, 1};
    cpu::add_inplace(y.data(), x.data(), 9);
    for (float v : y) EXPECT_EQ(v, 10.0f);
  }
}

TEST(Kernels, MaxEveryTable) {
  wg_test::Rng rng(17);
  for (const KernelTable* t : tables()) {
    EXPECT_EQ(t->max(nullptr, 0), -kInf) << name(t);
    for (int64_t n = 1; n <= 40; ++n) {
      for (int64_t at = 0; at < n; ++at) {
        std::vector<float> x = rng.floats(static_cast<size_t>(n), -100.0, 100.0);
        for (int64_t i = 0; i < n; i += 3) x[i] = -kInf;
        x[at] = 1000.0f + static_cast<float>(at);
        EXPECT_EQ(t->max(x.data(), n), x[at]) << name(t) << " n=" << n << " max at " << at;
      }
      std::vector<float> all_neg_inf(static_cast<size_t>(n), -kInf);
      EXPECT_EQ(t->max(all_neg_inf.data(), n), -kInf) << name(t) << " n=" << n;
      std::vector<float> negative = rng.floats(static_cast<size_t>(n), -5.0, -1.0);
      float m = -kInf;
      for (float v : negative) m = std::max(m, v);
      EXPECT_EQ(t->max(negative.data(), n), m) << name(t) << " all negative, n=" << n;
    }
  }
}

TEST(Kernels, ExpShiftSumEveryTable) {
  wg_test::Rng rng(18);
  for (const KernelTable* t : tables()) {
    for (int64_t n : {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 100, 1001}) {
      std::vector<float> x = rng.floats(static_cast<size_t>(n) + 1, -95.0, 10.0);
      for (int64_t i = 0; i < n; ++i) {
        if (i % 7 == 3) x[i] = -kInf;      // masked logits
        if (i % 11 == 5) x[i] = -1e30f;    // very large negative
        if (i % 13 == 6) x[i] = -200.0f;
      }
      x[static_cast<size_t>(n)] = kSentinel;
      const float shift = static_cast<float>(rng.uniform(-1.0, 1.0));
      const std::vector<float> x0 = x;
      const float sum = t->exp_shift_sum(x.data(), n, shift);
      double ref_sum = 0, got_sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float arg = x0[i] - shift;  // the kernels subtract in float
        const double ref = std::exp(static_cast<double>(arg));
        ref_sum += ref;
        got_sum += x[i];
        if (x0[i] == -kInf || arg < -87.4f) {
          EXPECT_EQ(x[i], 0.0f) << name(t) << " exp(" << arg << ") must be 0, n=" << n << " i=" << i;
        } else {
          // ~1e-7 relative, plus FLT_MIN where the approximation flushes to zero at -87.34.
          EXPECT_NEAR(x[i], ref, 5e-7 * ref + 2e-38) << name(t) << " exp(" << arg << "), n=" << n << " i=" << i;
        }
      }
      EXPECT_EQ(x[static_cast<size_t>(n)], kSentinel) << name(t) << ": wrote past n=" << n;
      EXPECT_NEAR(sum, got_sum, 1e-6 * got_sum + 1e-30) << name(t) << " returned sum, n=" << n;
      EXPECT_NEAR(sum, ref_sum, 2e-6 * ref_sum + 1e-30) << name(t) << " sum vs reference, n=" << n;
    }
  }
}

TEST(Kernels, GeluEveryTable) {
  for (const KernelTable* t : tables()) {
    std::vector<float> x;
    for (int i = -1000; i <= 1000; ++i) x.push_back(static_cast<float>(i) * 0.0081f);  // [-8.1, 8.1]
    for (float v : {0.0f, -0.0f, 1e-6f, -1e-6f, 1e-20f, 20.0f, -20.0f, 100.0f, -100.0f, 1e4f, -1e4f}) x.push_back(v);
    for (size_t n = 0; n <= 20; ++n) {  // every tail length, with a sentinel after
      std::vector<float> y(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(n));
      y.push_back(kSentinel);
      t->gelu(y.data(), static_cast<int64_t>(n));
      EXPECT_EQ(y[n], kSentinel) << name(t) << ": gelu wrote past n=" << n;
    }
    std::vector<float> y = x;
    t->gelu(y.data(), static_cast<int64_t>(y.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const double ref = gelu_ref(x[i]);
      EXPECT_NEAR(y[i], ref, 2e-6 * std::max(1.0, std::fabs(static_cast<double>(x[i]))) * 1.0)
          << name(t) << " gelu(" << x[i] << ")";
      if (wg_test::failure_count() > 10) return;
    }
  }
}

TEST(Kernels, OpsGeluParallel) {
  wg_test::Rng rng(19);
  ThreadPool pool(3);
  const int64_t n = (1 << 15) + 77;  // large enough for the pool path
  const std::vector<float> x = rng.floats(static_cast<size_t>(n), -6.0, 6.0);
  std::vector<float> a = x, b = x;
  cpu::gelu(a.data(), n, &pool);
  cpu::gelu(b.data(), n, nullptr);
  for (int64_t i = 0; i < n; ++i) {
    if (a[i] != b[i] || !(std::fabs(a[i] - gelu_ref(x[i])) <= 2e-6 * std::max(1.0, std::fabs(1.0 * x[i])))) {
      EXPECT_EQ(a[i], b[i]) << "i=" << i;
      EXPECT_NEAR(a[i], gelu_ref(x[i]), 2e-6 * std::max(1.0, std::fabs(1.0 * x[i]))) << "i=" << i;
      break;
    }
  }
}

TEST(Kernels, SoftmaxRows) {
  wg_test::Rng rng(20);
  for (int64_t n : {1, 2, 3, 5, 8, 9, 17, 64, 100, 1500}) {
    std::vector<float> x = rng.floats(static_cast<size_t>(n), -20.0, 20.0);
    if (n > 2) x[1] = -kInf;
    const std::vector<float> x0 = x;
    cpu::softmax(x.data(), n);
    double m = -1e300;
    for (float v : x0) m = std::max(m, static_cast<double>(v));
    double z = 0;
    for (float v : x0) z += std::exp(v - m);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double ref = std::exp(x0[i] - m) / z;
      EXPECT_NEAR(x[i], ref, 2e-6 * ref + 1e-9) << "n=" << n << " i=" << i;
      EXPECT_GE(x[i], 0.0f);
      sum += x[i];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << "n=" << n;
    if (n > 2) {
      EXPECT_EQ(x[1], 0.0f) << "-inf must become 0";
    }
  }
  // All -inf (a fully masked row): zeros, not NaN.
  for (int64_t n : {1, 4, 7, 33}) {
    std::vector<float> x(static_cast<size_t>(n), -kInf);
    cpu::softmax(x.data(), n);
    for (float v : x) EXPECT_EQ(v, 0.0f) << "n=" << n;
  }
  // Large values do not overflow.
  std::vector<float> big = {1e4f, 1e4f, -1e4f};
  cpu::softmax(big.data(), 3);
  EXPECT_NEAR(big[0], 0.5, 1e-6);
  EXPECT_NEAR(big[1], 0.5, 1e-6);
  EXPECT_EQ(big[2], 0.0f);
}

TEST(Kernels, LayerNormMatchesDoubleReference) {
  wg_test::Rng rng(21);
  ThreadPool pool(3);
  for (int64_t rows : {1, 3, 40}) {
    for (int64_t d : {1, 5, 8, 64, 384}) {
      for (double offset : {0.0, 300.0}) {  // residual streams carry large means
        std::vector<float> x(static_cast<size_t>(rows * d));
        for (auto& v : x) v = static_cast<float>(offset + rng.uniform(-2.0, 2.0));
        const std::vector<float> gamma = rng.floats(static_cast<size_t>(d), 0.5, 1.5);
        const std::vector<float> beta = rng.floats(static_cast<size_t>(d));
        for (int variant = 0; variant < 3; ++variant) {  // out of place, in place, with pool
          std::vector<float> y(x.size(), kSentinel);
          float* out = y.data();
          if (variant == 1) {
            y = x;
            out = y.data();
            cpu::layer_norm(out, rows, d, gamma.data(), beta.data(), out, nullptr);
          } else {
            cpu::layer_norm(x.data(), rows, d, gamma.data(), beta.data(), out, variant == 2 ? &pool : nullptr);
          }
          for (int64_t r = 0; r < rows; ++r) {
            double mean = 0, var = 0;
            for (int64_t i = 0; i < d; ++i) mean += x[r * d + i];
            mean /= d;
            for (int64_t i = 0; i < d; ++i) var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
            var /= d;
            const double inv = 1.0 / std::sqrt(var + 1e-5);
            for (int64_t i = 0; i < d; ++i) {
              const double ref = (x[r * d + i] - mean) * inv * gamma[i] + beta[i];
              // float rounding of the mean (relative to |x|) dominates for large offsets
              const double tol = 8 * kU * (std::fabs(mean) + std::fabs(x[r * d + i])) * inv * gamma[i] +
                                 4e-6 * (1.0 + std::fabs(ref));
              EXPECT_NEAR(out[r * d + i], ref, tol)
                  << "rows=" << rows << " d=" << d << " offset=" << offset << " variant=" << variant;
            }
          }
          if (wg_test::failure_count() > 10) return;
        }
      }
    }
  }
}

// linear(): the small-M weight-streaming path (M <= 8) and the sgemm path, with bias and an
// output row stride wider than N.
TEST(Kernels, LinearBothPaths) {
  wg_test::Rng rng(22);
  ThreadPool pool(3);
  for (int64_t M : {1, 2, 5, 8, 9, 31}) {
    for (int64_t N : {1, 7, 64, 300}) {
      for (int64_t K : {1, 6, 33, 256}) {
        const std::vector<float> x = rng.floats(static_cast<size_t>(M * K));
        const std::vector<float> w = rng.floats(static_cast<size_t>(N * K));
        const std::vector<float> bias = rng.floats(static_cast<size_t>(N));
        const int64_t ldy = N + 4;
        for (int with_bias = 0; with_bias < 2; ++with_bias) {
          for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
            std::vector<float> y(static_cast<size_t>(M * ldy), kSentinel);
            cpu::WeightView wv;
            wv.data = w.data();
            wv.n = N;
            wv.k = K;
            cpu::linear(x.data(), M, wv, with_bias ? bias.data() : nullptr, y.data(), ldy, p);
            for (int64_t m = 0; m < M; ++m) {
              for (int64_t n = 0; n < ldy; ++n) {
                if (n >= N) {
                  EXPECT_EQ(y[m * ldy + n], kSentinel) << "linear wrote past N";
                  continue;
                }
                double s = with_bias ? bias[n] : 0.0, a = std::fabs(s);
                for (int64_t k = 0; k < K; ++k) {
                  s += static_cast<double>(x[m * K + k]) * w[n * K + k];
                  a += std::fabs(static_cast<double>(x[m * K + k]) * w[n * K + k]);
                }
                EXPECT_NEAR(y[m * ldy + n], s, dot_tol(K + 1, a)) << "M=" << M << " N=" << N << " K=" << K;
              }
            }
            if (wg_test::failure_count() > 10) return;
          }
        }
      }
    }
  }
}

// ---- stored weight types: float16 and int8 -------------------------------------------------

TEST(Kernels, FloatToHalfRoundTripsAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(half_to_float(float_to_half(f))));
      continue;
    }
    EXPECT_EQ(float_to_half(f), static_cast<uint16_t>(h)) << "half " << h;
  }
  // Between two neighbouring halves: the nearer wins, a tie goes to the even one.
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048.0f), 0x3c00);           // tie: 1.0 (even) kept
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048.0f), 0x3c02);           // tie: rounds up to even
  EXPECT_EQ(float_to_half(1.0f + 1.1f / 2048.0f), 0x3c01);
  EXPECT_EQ(float_to_half(70000.0f), 0x7c00);                        // overflow: inf
  EXPECT_EQ(float_to_half(-1e-9f), 0x8000);                          // underflow keeps the sign
  EXPECT_EQ(float_to_half(5.9604645e-8f), 0x0001);                   // smallest subnormal
}

TEST(Kernels, QuantizeRowI8IsSymmetricAndBounded) {
  wg_test::Rng rng(31);
  for (int64_t n : {1, 5, 64, 513}) {
    const std::vector<float> x = rng.floats(static_cast<size_t>(n), -3.0, 3.0);
    std::vector<int8_t> q(static_cast<size_t>(n));
    const float s = cpu::quantize_row_i8(x.data(), n, q.data());
    float amax = 0;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    EXPECT_NEAR(s, amax / 127.0f, 1e-7);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_TRUE(q[i] >= -127);  // -128 never: the range is symmetric
      EXPECT_NEAR(q[i] * s, x[i], s * 0.5001);
    }
  }
  std::vector<float> zeros(7, 0.0f);
  std::vector<int8_t> q(7, 1);
  EXPECT_EQ(cpu::quantize_row_i8(zeros.data(), 7, q.data()), 0.0f);
  for (int8_t v : q) EXPECT_EQ(v, 0);
}

// A small-M GEMV whose weights of type W are widened to float (gemv(t, M, K, x, ldx, w, ldw,
// n0, n1, y, ldy)): against double sums, nothing written outside [n0, n1), and every row the
// same alone as in a block of rows. Returns false once too many checks failed.
template <typename W, typename Gemv, typename MakeW, typename Widen>
bool check_widened_gemv(const KernelTable* t, const char* what, wg_test::Rng& rng, Gemv gemv, MakeW make_w,
                        Widen widen) {
  const int64_t N = 11, n0 = 1, n1 = 10;
  for (int64_t M = 1; M <= 9; ++M) {
    for (int64_t K : {1, 3, 4, 8, 9, 16, 33, 64, 200}) {
      const int64_t ldx = K + 1, ldw = K + 3, ldy = N + 2;
      const std::vector<float> x = rng.floats(static_cast<size_t>(M * ldx));
      std::vector<W> w(static_cast<size_t>(N * ldw));
      for (auto& v : w) v = make_w();
      std::vector<float> y(static_cast<size_t>(M * ldy), kSentinel);
      gemv(t, M, K, x.data(), ldx, w.data(), ldw, n0, n1, y.data(), ldy);
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < ldy; ++n) {
          if (n < n0 || n >= n1) {
            EXPECT_EQ(y[m * ldy + n], kSentinel) << name(t) << " " << what;
            continue;
          }
          double s = 0, a = 0;
          for (int64_t k = 0; k < K; ++k) {
            const double p = static_cast<double>(x[m * ldx + k]) * widen(w[n * ldw + k]);
            s += p;
            a += std::fabs(p);
          }
          EXPECT_NEAR(y[m * ldy + n], s, dot_tol(K, a)) << name(t) << " " << what << " M=" << M << " K=" << K;
        }
        std::vector<float> alone(static_cast<size_t>(ldy), kSentinel);
        gemv(t, 1, K, x.data() + m * ldx, ldx, w.data(), ldw, n0, n1, alone.data(), ldy);
        for (int64_t n = n0; n < n1; ++n) EXPECT_EQ(y[m * ldy + n], alone[n]) << name(t) << " " << what << " M=" << M;
      }
      if (wg_test::failure_count() > 10) return false;
    }
  }
  return true;
}

TEST(Kernels, GemvNkF16EveryTable) {
  wg_test::Rng rng(41);
  for (const KernelTable* t : tables()) {
    const bool ok = check_widened_gemv<uint16_t>(
        t, "f16", rng, [](const KernelTable* k, auto... a) { k->gemv_nk_f16(a...); },
        [&] { return float_to_half(static_cast<float>(rng.uniform(-1, 1))); }, [](uint16_t h) { return half_to_float(h); });
    if (!ok) return;
  }
}

// int8 rows widened to float (the int8 cross-attention keys and values): against double
// sums, and every row the same whatever block of rows it is computed in.
TEST(Kernels, Int8RowsWidenedToFloatEveryTable) {
  wg_test::Rng rng(45);
  for (const KernelTable* t : tables()) {
    const bool ok = check_widened_gemv<int8_t>(
        t, "i8w", rng, [](const KernelTable* k, auto... a) { k->gemv_nk_i8w(a...); },
        [&] { return static_cast<int8_t>(rng.uniform_int(-127, 127)); }, [](int8_t v) { return static_cast<double>(v); });
    if (!ok) return;
    for (int64_t T : {1, 7, 64, 1500}) {
      for (int64_t n : {1, 5, 8, 64, 70}) {
        const int64_t ldv = n + 4;
        const std::vector<float> p = rng.floats(static_cast<size_t>(T), 0.0, 1.0);
        std::vector<int8_t> V(static_cast<size_t>(T * ldv));
        for (auto& v : V) v = static_cast<int8_t>(rng.uniform_int(-127, 127));
        std::vector<float> y(static_cast<size_t>(n), kSentinel);
        t->weighted_rows_i8(p.data(), T, V.data(), ldv, n, y.data());
        for (int64_t c = 0; c < n; ++c) {
          double s = 0, a = 0;
          for (int64_t r = 0; r < T; ++r) {
            s += static_cast<double>(p[r]) * V[r * ldv + c];
            a += std::fabs(static_cast<double>(p[r]) * V[r * ldv + c]);
          }
          EXPECT_NEAR(y[c], s, dot_tol(T, a)) << name(t) << " weighted_rows_i8 T=" << T << " n=" << n;
        }
        if (wg_test::failure_count() > 10) return;
      }
    }
  }
}

TEST(Kernels, GemvNkI8EveryTableIsExact) {
  wg_test::Rng rng(43);
  const int64_t N = 9, n0 = 2, n1 = 8;
  for (const KernelTable* t : tables()) {
    for (int64_t M = 1; M <= 9; ++M) {
      for (int64_t K : {1, 15, 16, 17, 31, 32, 33, 64, 96, 1280}) {
        const int64_t ldx = K + 2, ldw = K + 5, ldy = N + 1;
        std::vector<int8_t> x(static_cast<size_t>(M * ldx)), w(static_cast<size_t>(N * ldw));
        for (auto& v : x) v = static_cast<int8_t>(rng.uniform_int(-127, 127));
        for (auto& v : w) v = static_cast<int8_t>(rng.uniform_int(-127, 127));
        // extremes: every product at +-127*127 (no saturation allowed anywhere)
        if (K == 64) {
          for (int64_t k = 0; k < K; ++k) {
            x[k] = 127;
            w[n0 * ldw + k] = -127;
          }
        }
        std::vector<float> xs(static_cast<size_t>(M)), ws(static_cast<size_t>(N));
        for (auto& v : xs) v = static_cast<float>(rng.uniform(0.01, 0.1));
        for (auto& v : ws) v = static_cast<float>(rng.uniform(0.01, 0.1));
        std::vector<float> y(static_cast<size_t>(M * ldy), kSentinel);
        t->gemv_nk_i8(M, K, x.data(), ldx, xs.data(), w.data(), ldw, ws.data(), n0, n1, y.data(), ldy);
        for (int64_t m = 0; m < M; ++m) {
          for (int64_t n = 0; n < ldy; ++n) {
            if (n < n0 || n >= n1) {
              EXPECT_EQ(y[m * ldy + n], kSentinel) << name(t);
              continue;
            }
            int64_t s = 0;
            for (int64_t k = 0; k < K; ++k) s += static_cast<int64_t>(x[m * ldx + k]) * w[n * ldw + k];
            const float want = static_cast<float>(s) * xs[m] * ws[n];
            EXPECT_EQ(y[m * ldy + n], want) << name(t) << " i8 M=" << M << " K=" << K << " m=" << m << " n=" << n;
          }
        }
        if (wg_test::failure_count() > 10) return;
      }
    }
  }
}

TEST(Kernels, LinearWithStoredWeightTypes) {
  wg_test::Rng rng(47);
  ThreadPool pool(3);
  for (int64_t M : {1, 3, 8, 9, 40}) {
    for (int64_t N : {5, 130}) {
      for (int64_t K : {32, 100, 512}) {
        const std::vector<float> x = rng.floats(static_cast<size_t>(M * K));
        const std::vector<float> w = rng.floats(static_cast<size_t>(N * K));
        const std::vector<float> bias = rng.floats(static_cast<size_t>(N));
        std::vector<uint16_t> w16(w.size());
        for (size_t i = 0; i < w.size(); ++i) w16[i] = float_to_half(w[i]);
        std::vector<int8_t> w8(w.size());
        std::vector<float> scales(static_cast<size_t>(N));
        for (int64_t n = 0; n < N; ++n) scales[n] = cpu::quantize_row_i8(w.data() + n * K, K, w8.data() + n * K);
        for (int type = 0; type < 2; ++type) {
          cpu::WeightView wv;
          wv.n = N;
          wv.k = K;
          if (type == 0) {
            wv.type = cpu::WeightType::kF16;
            wv.data = w16.data();
          } else {
            wv.type = cpu::WeightType::kI8;
            wv.data = w8.data();
            wv.scales = scales.data();
          }
          for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
            std::vector<float> y(static_cast<size_t>(M * N), kSentinel);
            cpu::linear(x.data(), M, wv, bias.data(), y.data(), N, p);
            for (int64_t m = 0; m < M; ++m) {
              float xamax = 0;
              for (int64_t k = 0; k < K; ++k) xamax = std::max(xamax, std::fabs(x[m * K + k]));
              for (int64_t n = 0; n < N; ++n) {
                double exact = bias[n], stored = bias[n], a = 0, wabs = 0;
                for (int64_t k = 0; k < K; ++k) {
                  const double wk = type == 0 ? half_to_float(w16[n * K + k]) : w8[n * K + k] * scales[n];
                  exact += static_cast<double>(x[m * K + k]) * w[n * K + k];
                  stored += static_cast<double>(x[m * K + k]) * wk;
                  a += std::fabs(x[m * K + k] * wk);
                  wabs += std::fabs(wk);
                }
                // Against the stored weights: float rounding, plus (int8, few rows) the
                // activation quantisation error of at most half a step per element.
                double tol = dot_tol(K + 1, a + std::fabs(bias[n]));
                if (type == 1 && M <= 8) tol += 0.5 * xamax / 127.0 * wabs;
                EXPECT_NEAR(y[m * N + n], stored, tol) << (type ? "i8" : "f16") << " M=" << M << " N=" << N << " K=" << K;
                // ...and the stored weights are a close approximation of the float ones.
                EXPECT_NEAR(stored, exact, type == 0 ? 1e-3 * (a + 1) : 0.02 * (a + 1));
              }
            }
            if (wg_test::failure_count() > 10) return;
          }
        }
      }
    }
  }
}

TEST(Kernels, WeightedRowsEveryTable) {
  wg_test::Rng rng(53);
  for (const KernelTable* t : tables()) {
    for (int64_t T : {1, 7, 1500}) {
      for (int64_t n : {1, 3, 8, 12, 64, 72, 130}) {
        const int64_t ldv = n + 5;
        const std::vector<float> p = rng.floats(static_cast<size_t>(T), 0.0, 1.0);
        const std::vector<float> V = rng.floats(static_cast<size_t>(T * ldv));
        std::vector<uint16_t> V16(V.size());
        for (size_t i = 0; i < V.size(); ++i) V16[i] = float_to_half(V[i]);
        std::vector<float> y(static_cast<size_t>(n + 1), kSentinel), y16(static_cast<size_t>(n + 1), kSentinel);
        t->weighted_rows(p.data(), T, V.data(), ldv, n, y.data());
        t->weighted_rows_f16(p.data(), T, V16.data(), ldv, n, y16.data());
        EXPECT_EQ(y[n], kSentinel) << name(t) << " wrote past n";
        EXPECT_EQ(y16[n], kSentinel) << name(t) << " f16 wrote past n";
        for (int64_t c = 0; c < n; ++c) {
          double s = 0, s16 = 0, a = 0;
          for (int64_t r = 0; r < T; ++r) {
            s += static_cast<double>(p[r]) * V[r * ldv + c];
            s16 += static_cast<double>(p[r]) * half_to_float(V16[r * ldv + c]);
            a += std::fabs(p[r] * V[r * ldv + c]);
          }
          EXPECT_NEAR(y[c], s, dot_tol(T, a)) << name(t) << " T=" << T << " n=" << n << " c=" << c;
          EXPECT_NEAR(y16[c], s16, dot_tol(T, a)) << name(t) << " f16 T=" << T << " n=" << n << " c=" << c;
        }
        if (wg_test::failure_count() > 10) return;
      }
    }
  }
}
