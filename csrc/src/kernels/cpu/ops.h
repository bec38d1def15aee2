// CPU operators built on the per-ISA kernel table: the layer code calls only these.
// All matrices are row-major float32. Every function accepts pool == nullptr (runs on the
// caller); with a pool the work is split over its threads.
#pragma once

#include <cstdint>

#include "whisper_genio/thread_pool.h"

namespace whisper_genio::cpu {

// C[M,N] (+)= A[M,K] * op(B). B is [N,K] when b_nk (a Linear weight: C = A B^T), else [K,N].
void sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
           bool b_nk, float* C, int64_t ldc, bool accumulate, ThreadPool* pool);

// y[M,N] = x[M,K] * w[N,K]^T (+ bias[N]); small M streams w once (decoder), large M uses sgemm.
void linear(const float* x, int64_t M, int64_t K, const float* w, const float* bias, int64_t N,
            float* y, int64_t ldy, ThreadPool* pool);

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

float dot(const float* a, const float* b, int64_t n);
void axpy(float alpha, const float* x, float* y, int64_t n);

}  // namespace whisper_genio::cpu
