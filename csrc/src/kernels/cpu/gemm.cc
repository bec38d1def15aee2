// Blocked SGEMM: B and A are packed per block into the micro-tile layout of the active ISA
// (kernel_table.h) and the micro-tile runs over the packed panels. Work is split into
// (M block x N block) tasks, each of which packs what it needs, so tasks never share
// scratch memory and threads never wait on each other inside one GEMM.
#include <algorithm>
#include <cstring>

#include "kernel_table.h"
#include "ops.h"
#include "whisper_genio/buffer.h"
#include "whisper_genio/model.h"

namespace whisper_genio::cpu {
namespace {

constexpr int64_t kKc = 256;  // K block: one A panel column block + B panel rows stay in L1/L2

struct Scratch {
  Buffer<float> a;
  Buffer<float> b;
};

Scratch& scratch(int64_t a_size, int64_t b_size) {
  thread_local Scratch s;
  if (static_cast<int64_t>(s.a.size()) < a_size) s.a.reset(static_cast<size_t>(a_size));
  if (static_cast<int64_t>(s.b.size()) < b_size) s.b.reset(static_cast<size_t>(b_size));
  return s;
}

// Packs rows [m0, m0+mlen) x cols [k0, k0+kc) of A into panels of mr rows, k-major.
void pack_a(const float* A, int64_t lda, int64_t m0, int64_t mlen, int64_t k0, int64_t kc, int mr, float* out) {
  for (int64_t p = 0; p < mlen; p += mr) {
    const int64_t rows = std::min<int64_t>(mr, mlen - p);
    for (int64_t k = 0; k < kc; ++k) {
      float* dst = out + k * mr;
      int64_t i = 0;
      for (; i < rows; ++i) dst[i] = A[(m0 + p + i) * lda + k0 + k];
      for (; i < mr; ++i) dst[i] = 0.0f;
    }
    out += kc * mr;
  }
}

// Where B comes from: a float matrix in either layout, or a stored weight [N, K].
struct BSource {
  const float* f = nullptr;  // float B with row stride ldb
  int64_t ldb = 0;
  bool b_nk = true;
  const WeightView* w = nullptr;  // set for stored weights (always [N, K])
};

// Element k0..k0+kc of weight row n, converted to float.
inline void weight_row_part(const WeightView& w, int64_t n, int64_t k0, int64_t kc, float* dst) {
  switch (w.type) {
    case WeightType::kF32: {
      const float* src = static_cast<const float*>(w.data) + n * w.k + k0;
      std::memcpy(dst, src, static_cast<size_t>(kc) * sizeof(float));
      break;
    }
    case WeightType::kF16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + n * w.k + k0;
      for (int64_t k = 0; k < kc; ++k) dst[k] = half_to_float(src[k]);
      break;
    }
    case WeightType::kI8: {
      const int8_t* src = static_cast<const int8_t*>(w.data) + n * w.k + k0;
      const float s = w.scales[n];
      for (int64_t k = 0; k < kc; ++k) dst[k] = static_cast<float>(src[k]) * s;
      break;
    }
  }
}

// Packs op(B) rows [k0, k0+kc) x cols [n0, n0+nlen) into panels of nr columns, k-major.
void pack_b(const BSource& src_b, int64_t n0, int64_t nlen, int64_t k0, int64_t kc, int nr, float* out) {
  const float* B = src_b.f;
  const int64_t ldb = src_b.ldb;
  float row[kKc];
  for (int64_t p = 0; p < nlen; p += nr) {
    const int64_t cols = std::min<int64_t>(nr, nlen - p);
    if (src_b.w != nullptr) {
      for (int64_t j = 0; j < cols; ++j) {
        weight_row_part(*src_b.w, n0 + p + j, k0, kc, row);
        for (int64_t k = 0; k < kc; ++k) out[k * nr + j] = row[k];
      }
      for (int64_t j = cols; j < nr; ++j) {
        for (int64_t k = 0; k < kc; ++k) out[k * nr + j] = 0.0f;
      }
    } else if (src_b.b_nk) {
      // B[n][k]: read each weight row contiguously, scatter into the panel.
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = B + (n0 + p + j) * ldb + k0;
        for (int64_t k = 0; k < kc; ++k) out[k * nr + j] = src[k];
      }
      for (int64_t j = cols; j < nr; ++j) {
        for (int64_t k = 0; k < kc; ++k) out[k * nr + j] = 0.0f;
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + (k0 + k) * ldb + n0 + p;
        float* dst = out + k * nr;
        std::memcpy(dst, src, static_cast<size_t>(cols) * sizeof(float));
        for (int64_t j = cols; j < nr; ++j) dst[j] = 0.0f;
      }
    }
    out += kc * nr;
  }
}

}  // namespace

namespace {

void sgemm_impl(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const BSource& B, float* C,
                int64_t ldc, bool accumulate, ThreadPool* pool) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, static_cast<size_t>(N) * sizeof(float));
    }
    return;
  }
  const KernelTable& kt = kernels();
  const int mr = kt.mr, nr = kt.nr;
  const int64_t mc = mr * std::max<int64_t>(1, 120 / mr);
  const int64_t nc = nr * std::max<int64_t>(1, 512 / nr);
  const int64_t m_blocks = (M + mc - 1) / mc;
  const int64_t n_blocks = (N + nc - 1) / nc;

  auto task = [&](int64_t t) {
    const int64_t mb = t % m_blocks, nb = t / m_blocks;
    const int64_t m0 = mb * mc, mlen = std::min(mc, M - m0);
    const int64_t n0 = nb * nc, nlen = std::min(nc, N - n0);
    const int64_t m_pad = (mlen + mr - 1) / mr * mr, n_pad = (nlen + nr - 1) / nr * nr;
    Scratch& s = scratch(m_pad * kKc, n_pad * kKc);
    float edge[16 * 16];  // >= mr * nr for every ISA
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0);
      const bool acc = accumulate || k0 > 0;
      pack_b(B, n0, nlen, k0, kc, nr, s.b.data());
      pack_a(A, lda, m0, mlen, k0, kc, mr, s.a.data());
      for (int64_t jp = 0; jp < nlen; jp += nr) {
        const float* bp = s.b.data() + (jp / nr) * kc * nr;
        const int64_t cols = std::min<int64_t>(nr, nlen - jp);
        for (int64_t ip = 0; ip < mlen; ip += mr) {
          const float* ap = s.a.data() + (ip / mr) * kc * mr;
          const int64_t rows = std::min<int64_t>(mr, mlen - ip);
          float* c = C + (m0 + ip) * ldc + n0 + jp;
          if (rows == mr && cols == nr) {
            kt.gemm_tile(kc, ap, bp, c, ldc, acc);
            continue;
          }
          // Edge tile: run the full tile on a scratch block, copy back the valid part.
          for (int64_t i = 0; i < mr; ++i) {
            for (int64_t j = 0; j < nr; ++j) {
              edge[i * nr + j] = (acc && i < rows && j < cols) ? c[i * ldc + j] : 0.0f;
            }
          }
          kt.gemm_tile(kc, ap, bp, edge, nr, true);
          for (int64_t i = 0; i < rows; ++i) std::memcpy(c + i * ldc, edge + i * nr, static_cast<size_t>(cols) * sizeof(float));
        }
      }
    }
  };
  const int64_t tasks = m_blocks * n_blocks;
  // Tiny products are not worth waking the pool for.
  if (pool == nullptr || tasks == 1 || M * N * K < (1 << 18)) {
    for (int64_t t = 0; t < tasks; ++t) task(t);
  } else {
    pool->run(tasks, task);
  }
}

}  // namespace

void sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
           bool b_nk, float* C, int64_t ldc, bool accumulate, ThreadPool* pool) {
  BSource src;
  src.f = B;
  src.ldb = ldb;
  src.b_nk = b_nk;
  sgemm_impl(M, N, K, A, lda, src, C, ldc, accumulate, pool);
}

void sgemm_weight(int64_t M, const float* A, int64_t lda, const WeightView& w, float* C, int64_t ldc,
                  bool accumulate, ThreadPool* pool) {
  BSource src;
  src.w = &w;
  sgemm_impl(M, w.n, w.k, A, lda, src, C, ldc, accumulate, pool);
}

void weight_row(const WeightView& w, int64_t r, float* out) { weight_row_part(w, r, 0, w.k, out); }

}  // namespace whisper_genio::cpu
