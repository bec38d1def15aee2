// AVX2 + FMA kernels (x86_64). This file alone is compiled with -mavx2 -mfma; it is only
// called after active_isa() confirmed the CPU supports both. The loops shared with the
// other ISAs come from kernel_templates.h over the Avx2 vector type (simd_avx2.h); what is
// here is AVX2 only: the GEMM register tiles and the int8 dot step.
#include <immintrin.h>

#include <cstring>

#include "kernel_table.h"
#include "kernel_templates.h"
#include "simd_avx2.h"

namespace whisper_genio::cpu {
namespace {

// Float GEMM micro-tile (kernel_table.h gemm_tile): 6 rows x 16 columns, 12 accumulators of
// 16 ymm registers. Named accumulators: an array indexed in a loop is kept on the stack.
struct Avx2Tile {
  static constexpr int kMr = 6;
  static constexpr int kNr = 16;
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_loadu_ps(b);
      const __m256 b1 = _mm256_loadu_ps(b + 8);
      __m256 av;
#define WG_ROW(i)                             \
  av = _mm256_broadcast_ss(a + (i));          \
  c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0); \
  c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1);
      WG_ROW(0) WG_ROW(1) WG_ROW(2) WG_ROW(3) WG_ROW(4) WG_ROW(5)
#undef WG_ROW
      a += kMr;
      b += kNr;
    }
    __m256 rows[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    simd::store_tile<Avx2>(rows, c, ldc, accumulate);
  }
};

// The int8 dot step of the small-M GEMV (kernel_templates.h gemv_nk_i8). maddubs multiplies
// unsigned by signed bytes, so |x| goes on the unsigned side and x's sign moves onto w. With
// |q| <= 127 a pair sums to at most 2 * 127 * 127 < 32767: no saturation, the sums are exact.
struct Avx2I8 {
  using Acc = __m256i;
  using Bytes = __m256i;
  static constexpr int kStep = 32;
  static Acc zero() { return _mm256_setzero_si256(); }
  static Bytes load(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static Acc madd(Acc acc, Bytes x, Bytes w) {
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(w, x));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
  }
  static int32_t hsum(Acc v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
  }
  // Few rows are bound by memory: fetch 2 KiB ahead of the stream (the hardware prefetcher
  // alone falls short of the DRAM bandwidth on the vocabulary projection).
  template <int MB>
  static void stream(const int8_t* w) {
    if constexpr (MB <= 2) _mm_prefetch(reinterpret_cast<const char*>(w + 2048), _MM_HINT_T0);
  }
};

// int8-weight GEMM tile, 6 rows x 16 columns. Products are formed with vpmaddwd on int16:
// A is packed as int16 pairs (k, k+1), B stays int8 in memory and is sign-extended once per
// load for all 6 rows. vpmaddwd adds two int16 products into int32 and cannot saturate
// here (|b| <= 127, |a| <= gemm_i8_a_qmax(K) <= 32767), unlike vpmaddubsw's int16 pair
// sums, which can reach 2 * 255 * 127 with unsigned-shifted activations. Its throughput
// equals vpmaddubsw + vpsignb's, so the activations get more than 8 bits for free.
struct Avx2I8Tile {
  static constexpr int kMr = 6;
  static constexpr int kNr = 16;
  static constexpr int kKg = 2;
  static constexpr bool kWideA = true;
  static __m256i bcast_pair(const int16_t* p) {
    int32_t v;
    std::memcpy(&v, p, sizeof(v));
    return _mm256_set1_epi32(v);
  }
  static void run(int64_t kgroups, const void* ap, const int8_t* b, const float* as, const float* ws,
                  const float* bias, float* out, int64_t ldo) {
    const int16_t* a = static_cast<const int16_t*>(ap);
    __m256i c00 = _mm256_setzero_si256(), c01 = _mm256_setzero_si256();
    __m256i c10 = _mm256_setzero_si256(), c11 = _mm256_setzero_si256();
    __m256i c20 = _mm256_setzero_si256(), c21 = _mm256_setzero_si256();
    __m256i c30 = _mm256_setzero_si256(), c31 = _mm256_setzero_si256();
    __m256i c40 = _mm256_setzero_si256(), c41 = _mm256_setzero_si256();
    __m256i c50 = _mm256_setzero_si256(), c51 = _mm256_setzero_si256();
    for (int64_t g = 0; g < kgroups; ++g) {
      const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
      const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
      __m256i av;
#define WG_ROW(i)                                                  \
  av = bcast_pair(a + 2 * (i));                                    \
  c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(av, b0)); \
  c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(av, b1));
      WG_ROW(0) WG_ROW(1) WG_ROW(2) WG_ROW(3) WG_ROW(4) WG_ROW(5)
#undef WG_ROW
      a += kMr * kKg;
      b += kNr * kKg;
    }
    const __m256i rows[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    simd::store_i8_tile<Avx2>(rows, as, ws, bias, out, ldo);
  }
};

}  // namespace

const KernelTable& avx2_kernels() {
  static const KernelTable table = [] {
    KernelTable t = simd::vector_table<Avx2, Avx2I8>(Isa::kAvx2);
    simd::set_tiles<Avx2Tile, Avx2I8Tile>(t);
    return t;
  }();
  return table;
}

}  // namespace whisper_genio::cpu
