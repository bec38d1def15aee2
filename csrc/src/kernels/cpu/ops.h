// CPU operators built on the per-ISA kernel table: the layer code calls only these.
// All matrices are row-major float32. Every function accepts pool == nullptr (runs on the
// caller); with a pool the work is split over its threads.
#pragma once

#include <cstdint>

#include "whisper_genio/thread_pool.h"

namespace whisper_genio::cpu {

// How a weight matrix [n, k] (PyTorch Linear layout) is stored.
enum class WeightType : uint8_t {
  kF32,  // float32
  kF16,  // IEEE float16 bits
  kI8,   // int8, symmetric per output row: w[n, k] = q[n, k] * scales[n]
};

struct WeightView {
  WeightType type = WeightType::kF32;
  const void* data = nullptr;     // row-major [n, k]; may be null for a packed-only weight
  const float* scales = nullptr;  // kI8 only: [n]
  // kI8 only, optional: the weight packed for gemm_i8 on kernels() (pack_weight_i8). When set,
  // large-M products run in int8 x int8 instead of dequantising into the float GEMM.
  const int8_t* packed = nullptr;
  // kF32 only, optional: the weight packed by sgemm_pack_b; large-M products then run
  // sgemm_prepacked (data may be null: packed-only).
  const float* packed_f32 = nullptr;
  int64_t n = 0;
  int64_t k = 0;
};

struct KernelTable;

// int8-weight GEMM with dynamically quantised activations, for one kernel table's layout
// (kernel_table.h): each row of A is quantised symmetrically (scale max|row| / qmax, see
// gemm_i8_a_qmax), the products are summed in int32 and dequantised with the row and
// weight scales, plus bias:
//   C[m, n] = as[m] * ws[n] * sum_k qa[m, k] * qw[n, k] + bias[n]   (bias may be null)
// The weight [N, K] is packed once (at load) by pack_weight_i8 into packed_i8_size bytes.
// Activation levels of gemm_i8 for K: the largest qmax whose K-term int32 sums cannot
// overflow, capped at 32767 for int16 tables (AVX2: 32767 for K <= 516, 8256 at K = 2048)
// and 32639 for split tables (generic, NEON: two int8 passes, q = 256 hi + lo). Never below 127.
int32_t gemm_i8_a_qmax(const KernelTable& kt, int64_t K);
int64_t packed_i8_size(const KernelTable& kt, int64_t n, int64_t k);
void pack_weight_i8(const KernelTable& kt, const int8_t* w, int64_t n, int64_t k, int8_t* out);
void gemm_i8(const KernelTable& kt, int64_t M, const float* A, int64_t lda, const int8_t* packed, const float* ws,
             int64_t N, int64_t K, const float* bias, float* C, int64_t ldc, ThreadPool* pool);
// The same on kernels() (the table the layers use).
int64_t packed_i8_size(int64_t n, int64_t k);
void pack_weight_i8(const int8_t* w, int64_t n, int64_t k, int8_t* out);
void gemm_i8(int64_t M, const float* A, int64_t lda, const int8_t* packed, const float* ws, int64_t N, int64_t K,
             const float* bias, float* C, int64_t ldc, ThreadPool* pool);

// Row r of a weight as float32 (embedding lookup from a stored-as-weight table).
void weight_row(const WeightView& w, int64_t r, float* out);

// C[M,N] (+)= A[M,K] * op(B). B is [N,K] when b_nk (a Linear weight: C = A B^T), else [K,N].
void sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
           bool b_nk, float* C, int64_t ldc, bool accumulate, ThreadPool* pool);

// Rows of the float GEMM's micro-tile on kernels(): row counts that are multiples of it run
// without edge tiles (which compute a padded tile on scratch and copy it back).
int sgemm_tile_rows();

// The same with B packed once by sgemm_pack_b (sgemm_packed_b_size floats) for many products
// with one B (the encoder's per-head keys and values); the packing belongs to kernels().
int64_t sgemm_packed_b_size(int64_t N, int64_t K);
void sgemm_pack_b(int64_t N, int64_t K, const float* B, int64_t ldb, bool b_nk, float* out);
void sgemm_prepacked(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* packed_b, float* C,
                     int64_t ldc, bool accumulate, ThreadPool* pool);

// C[M,N] (+)= A[M,K] * W^T for a stored weight W [N,K] of any WeightType (dequantised while
// packing: the large-M path computes in float32 whatever the storage).
void sgemm_weight(int64_t M, const float* A, int64_t lda, const WeightView& w, float* C, int64_t ldc,
                  bool accumulate, ThreadPool* pool);

// y[M,N] = x[M,K] * W^T (+ bias[N]). Small M (the decoder's per-token rows) streams W once
// with the storage type's own kernel (int8 W: activations are quantised per row and the dot
// products run in int8 with int32 sums); large M uses gemm_i8 for an int8 W with a packed
// copy (also any M when only the packed copy exists), sgemm_weight otherwise.
void linear(const float* x, int64_t M, const WeightView& w, const float* bias, float* y, int64_t ldy,
            ThreadPool* pool);

// Symmetric per-row int8 quantisation of a row of n floats: q = round(x / s), s = max|x| / 127.
// Returns s (0 for an all-zero row, whose q are all 0).
float quantize_row_i8(const float* x, int64_t n, int8_t* q);

// Row-wise LayerNorm over d features (eps 1e-5, as torch.nn.LayerNorm). y may alias x.
void layer_norm(const float* x, int64_t rows, int64_t d, const float* gamma, const float* beta,
                float* y, ThreadPool* pool);

// In-place exact-form GELU.
void gelu(float* x, int64_t n, ThreadPool* pool);

// In-place softmax of one row of n values. -inf entries become 0.
void softmax(float* x, int64_t n);

// y[i] += x[i]
void add_inplace(float* y, const float* x, int64_t n);

// For m < M and n in [n0, n1): y[m * ldy + n] = dot(x + m * ldx, w + n * ldw, K).
void gemv_nk(int64_t M, int64_t K, const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t n0,
             int64_t n1, float* y, int64_t ldy);

// y[0..n) = sum_t p[t] * V[t, 0..n) (V float32 or float16 bits, row stride ldv).
void weighted_rows(const float* p, int64_t T, const float* V, int64_t ldv, int64_t n, float* y);
void weighted_rows_f16(const float* p, int64_t T, const uint16_t* V, int64_t ldv, int64_t n, float* y);
void gemv_nk_f16(int64_t M, int64_t K, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, int64_t n0,
                 int64_t n1, float* y, int64_t ldy);
// int8 rows (V, W) widened to float without scales: the caller scales p before / y after.
void weighted_rows_i8(const float* p, int64_t T, const int8_t* V, int64_t ldv, int64_t n, float* y);
void gemv_nk_i8w(int64_t M, int64_t K, const float* x, int64_t ldx, const int8_t* w, int64_t ldw, int64_t n0,
                 int64_t n1, float* y, int64_t ldy);

// y[i] = float_to_half(x[i]), vectorised (F16C, NEON) with the same bits.
void floats_to_half(const float* x, int64_t n, uint16_t* y);

float dot(const float* a, const float* b, int64_t n);
void axpy(float alpha, const float* x, float* y, int64_t n);

}  // namespace whisper_genio::cpu
