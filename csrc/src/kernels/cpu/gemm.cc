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
  const float* packed = nullptr;  // set for B packed by sgemm_pack_b (then nothing is packed per call)
  int64_t n_pad = 0;              // packed: N rounded up to nr
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
    Scratch& s = scratch(m_pad * kKc, B.packed != nullptr ? 0 : n_pad * kKc);
    float edge[16 * 16];  // >= mr * nr for every ISA
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0);
      const bool acc = accumulate || k0 > 0;
      // Prepacked B: K block k0 starts at k0 * n_pad; its panel for column n0 at n0 * kc.
      const float* b_block = B.packed != nullptr ? B.packed + k0 * B.n_pad + n0 * kc : s.b.data();
      if (B.packed == nullptr) pack_b(B, n0, nlen, k0, kc, nr, s.b.data());
      pack_a(A, lda, m0, mlen, k0, kc, mr, s.a.data());
      for (int64_t jp = 0; jp < nlen; jp += nr) {
        const float* bp = b_block + (jp / nr) * kc * nr;
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

int sgemm_tile_rows() { return kernels().mr; }

int64_t sgemm_packed_b_size(int64_t N, int64_t K) {
  const int nr = kernels().nr;
  return (N + nr - 1) / nr * nr * std::max<int64_t>(K, 0);
}

void sgemm_pack_b(int64_t N, int64_t K, const float* B, int64_t ldb, bool b_nk, float* out) {
  BSource src;
  src.f = B;
  src.ldb = ldb;
  src.b_nk = b_nk;
  const int nr = kernels().nr;
  const int64_t n_pad = (N + nr - 1) / nr * nr;
  for (int64_t k0 = 0; k0 < K; k0 += kKc) pack_b(src, 0, N, k0, std::min(kKc, K - k0), nr, out + k0 * n_pad);
}

void sgemm_prepacked(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* packed_b, float* C,
                     int64_t ldc, bool accumulate, ThreadPool* pool) {
  BSource src;
  src.packed = packed_b;
  const int nr = kernels().nr;
  src.n_pad = (N + nr - 1) / nr * nr;
  sgemm_impl(M, N, K, A, lda, src, C, ldc, accumulate, pool);
}

void weight_row(const WeightView& w, int64_t r, float* out) { weight_row_part(w, r, 0, w.k, out); }

// ---- int8 x int8 GEMM ------------------------------------------------------------------------
//
// A is quantised and packed once per call (all row panels, shared read-only by the tasks);
// the weight was packed at load. Tasks are (block of row panels x block of column panels);
// inside a task each column panel (nr x K bytes) stays in L1 while the block's row panels
// (about 72 rows) stream from L2. K is not blocked: the tile keeps its int32 sums in
// registers over the whole K and dequantises once.

namespace {

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

struct I8Scratch {
  Buffer<int8_t> a;      // packed A panels
  Buffer<float> scales;  // per packed row
};

// Row m of A quantised to qmax levels into q[0, Kp), zero past K; a row past M is all zero
// with scale 0. Returns the scale.
float quantize_padded_row(const KernelTable& kt, const float* A, int64_t lda, int64_t M, int64_t K, int64_t Kp,
                          int64_t m, float qmax, int16_t* q) {
  if (m >= M) {
    std::memset(q, 0, static_cast<size_t>(Kp) * sizeof(int16_t));
    return 0.0f;
  }
  const float scale = kt.quantize_row_i16(A + m * lda, K, qmax, q);
  for (int64_t k = K; k < Kp; ++k) q[k] = 0;
  return scale;
}

// Group g of a row (group_bytes long) goes to dst + g * stride bytes. One copy per group runs
// once per activation element per GEMM, so the usual 4-byte group gets a constant size.
void scatter_groups(const void* src, int64_t groups, size_t group_bytes, int64_t stride, void* dst) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  if (group_bytes == 4) {
    for (int64_t g = 0; g < groups; ++g) std::memcpy(d + g * stride, s + g * 4, 4);
  } else {
    for (int64_t g = 0; g < groups; ++g) std::memcpy(d + g * stride, s + g * group_bytes, group_bytes);
  }
}

// Quantises rows [p*mr, p*mr + mr) of A and writes panel p (rows past M are zero, scale 0):
// int16 (i8_a_wide), or split q = 256 hi + lo into a hi panel then a lo panel, each laid out
// like an int8 panel.
void pack_a_panel(const KernelTable& kt, const float* A, int64_t lda, int64_t M, int64_t K, int64_t Kp, int64_t p,
                  void* panel, float* scales) {
  const int mr = kt.i8_mr, kg = kt.i8_kg;
  const int64_t groups = Kp / kg;
  const float qmax = static_cast<float>(gemm_i8_a_qmax(kt, K));
  thread_local Buffer<int16_t> row16;
  thread_local Buffer<int8_t> parts;
  if (static_cast<int64_t>(row16.size()) < Kp) row16.reset(static_cast<size_t>(Kp));
  if (!kt.i8_a_wide && static_cast<int64_t>(parts.size()) < 2 * Kp) parts.reset(static_cast<size_t>(2 * Kp));
  int16_t* q = row16.data();
  for (int r = 0; r < mr; ++r) {
    scales[r] = quantize_padded_row(kt, A, lda, M, K, Kp, p * mr + r, qmax, q);
    if (kt.i8_a_wide) {
      scatter_groups(q, groups, static_cast<size_t>(kg) * 2, int64_t{mr} * kg * 2,
                     static_cast<int16_t*>(panel) + r * kg);
      continue;
    }
    int8_t* hi = parts.data();
    int8_t* lo = parts.data() + Kp;
    for (int64_t k = 0; k < Kp; ++k) {
      const int32_t t = static_cast<int32_t>(q[k]) + 128;
      const int32_t h = t / 256 - (t % 256 < 0 ? 1 : 0);  // floor(t / 256): lo in [-128, 127]
      hi[k] = static_cast<int8_t>(h);
      lo[k] = static_cast<int8_t>(q[k] - h * 256);
    }
    for (int half = 0; half < 2; ++half) {
      scatter_groups(half == 0 ? hi : lo, groups, static_cast<size_t>(kg), int64_t{mr} * kg,
                     static_cast<int8_t*>(panel) + half * mr * Kp + r * kg);
    }
  }
}

}  // namespace

int32_t gemm_i8_a_qmax(const KernelTable& kt, int64_t K) {
  // |sum| <= Kp * qmax * 127 must stay below 2^31 (int32 accumulators, no K blocking). Split
  // tables shift their hi sums by 8 and add the lo products: partial sums may pass 2^31, but
  // the SIMD int32 lanes wrap (modular), so the final sum is exact when it fits (the generic
  // table sums in int64). Their cap, 127 * 256 + 127 (|hi| <= 127 in int8), is within 0.4% of
  // int16's: the same precision as the int16 tables.
  const int64_t Kp = round_up(std::max<int64_t>(K, 1), kt.i8_kg);
  const int64_t bound = ((int64_t{1} << 31) - 1) / (127 * Kp);
  const int64_t q = std::min<int64_t>(kt.i8_a_wide ? 32767 : 32639, bound);
  return static_cast<int32_t>(std::max<int64_t>(127, q));
}

int64_t packed_i8_size(const KernelTable& kt, int64_t n, int64_t k) {
  return round_up(n, kt.i8_nr) * round_up(std::max<int64_t>(k, 1), kt.i8_kg);
}

void pack_weight_i8(const KernelTable& kt, const int8_t* w, int64_t n, int64_t k, int8_t* out) {
  const int nr = kt.i8_nr, kg = kt.i8_kg;
  const int64_t Kp = round_up(std::max<int64_t>(k, 1), kg), panels = (n + nr - 1) / nr;
  for (int64_t p = 0; p < panels; ++p) {
    int8_t* dst = out + p * nr * Kp;
    for (int64_t g = 0; g < Kp / kg; ++g) {
      for (int c = 0; c < nr; ++c) {
        const int64_t row = p * nr + c;
        for (int t = 0; t < kg; ++t) {
          const int64_t kk = g * kg + t;
          *dst++ = (row < n && kk < k) ? w[row * k + kk] : 0;
        }
      }
    }
  }
}

void gemm_i8(const KernelTable& kt, int64_t M, const float* A, int64_t lda, const int8_t* packed, const float* ws,
             int64_t N, int64_t K, const float* bias, float* C, int64_t ldc, ThreadPool* pool) {
  if (M <= 0 || N <= 0) return;
  const int mr = kt.i8_mr, nr = kt.i8_nr, kg = kt.i8_kg;
  const int64_t Kp = round_up(std::max<int64_t>(K, 1), kg), groups = Kp / kg;
  const int64_t m_panels = (M + mr - 1) / mr, n_panels = (N + nr - 1) / nr;
  const int64_t a_panel_bytes = mr * Kp * 2;  // int16, or two int8 halves
  thread_local I8Scratch s;
  if (static_cast<int64_t>(s.a.size()) < m_panels * a_panel_bytes) s.a.reset(static_cast<size_t>(m_panels * a_panel_bytes));
  if (static_cast<int64_t>(s.scales.size()) < m_panels * mr) s.scales.reset(static_cast<size_t>(m_panels * mr));
  int8_t* apack = s.a.data();
  float* ascale = s.scales.data();
  const bool parallel = pool != nullptr && M * N * K >= (1 << 18);

  auto pack = [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) pack_a_panel(kt, A, lda, M, K, Kp, p, apack + p * a_panel_bytes, ascale + p * mr);
  };
  if (parallel && m_panels > 1) pool->parallel_for(m_panels, 4, pack); else pack(0, m_panels);

  const int64_t mc_panels = std::max<int64_t>(1, 72 / mr);
  const int64_t nc_panels = std::max<int64_t>(1, 256 / nr);
  const int64_t m_blocks = (m_panels + mc_panels - 1) / mc_panels;
  const int64_t n_blocks = (n_panels + nc_panels - 1) / nc_panels;
  auto task = [&](int64_t t) {
    const int64_t mb = t % m_blocks, nb = t / m_blocks;
    const int64_t ip0 = mb * mc_panels, ip1 = std::min(m_panels, ip0 + mc_panels);
    const int64_t jp0 = nb * nc_panels, jp1 = std::min(n_panels, jp0 + nc_panels);
    float edge[256];   // >= i8_mr * i8_nr of every table
    float wpad[32], bpad[32];  // >= i8_nr
    for (int64_t jp = jp0; jp < jp1; ++jp) {
      const int64_t n0 = jp * nr, cols = std::min<int64_t>(nr, N - n0);
      const int8_t* bp = packed + jp * nr * Kp;
      const float* wsp = ws + n0;
      const float* bsp = bias != nullptr ? bias + n0 : nullptr;
      if (cols < nr) {  // last panel: scales and bias zero-padded to the tile width
        for (int j = 0; j < nr; ++j) {
          wpad[j] = j < cols ? ws[n0 + j] : 0.0f;
          bpad[j] = (j < cols && bias != nullptr) ? bias[n0 + j] : 0.0f;
        }
        wsp = wpad;
        bsp = bpad;
      }
      for (int64_t ip = ip0; ip < ip1; ++ip) {
        const int64_t m0 = ip * mr, rows = std::min<int64_t>(mr, M - m0);
        const int8_t* ap = apack + ip * a_panel_bytes;
        float* c = C + m0 * ldc + n0;
        if (rows == mr && cols == nr) {
          kt.gemm_i8_tile(groups, ap, bp, ascale + m0, wsp, bsp, c, ldc);
          continue;
        }
        kt.gemm_i8_tile(groups, ap, bp, ascale + m0, wsp, bsp, edge, nr);
        for (int64_t i = 0; i < rows; ++i) std::memcpy(c + i * ldc, edge + i * nr, static_cast<size_t>(cols) * sizeof(float));
      }
    }
  };
  const int64_t tasks = m_blocks * n_blocks;
  if (parallel && tasks > 1) {
    pool->run(tasks, task);
  } else {
    for (int64_t t = 0; t < tasks; ++t) task(t);
  }
}

int64_t packed_i8_size(int64_t n, int64_t k) { return packed_i8_size(kernels(), n, k); }

void pack_weight_i8(const int8_t* w, int64_t n, int64_t k, int8_t* out) { pack_weight_i8(kernels(), w, n, k, out); }

void gemm_i8(int64_t M, const float* A, int64_t lda, const int8_t* packed, const float* ws, int64_t N, int64_t K,
             const float* bias, float* C, int64_t ldc, ThreadPool* pool) {
  gemm_i8(kernels(), M, A, lda, packed, ws, N, K, bias, C, ldc, pool);
}

}  // namespace whisper_genio::cpu
