/* gemm.c - the matrix products behind linear layers.
 *
 * Portable C written so the compiler vectorises the innermost loop (over a row
 * of C) and so every element of C is summed in the same order whatever the
 * thread count: threads split rows of C and never share an output.
 * Not here (yet): register-tiled microkernels and packing; see the
 * performance issue and bench/.
 */
#include "internal.h"

#include <string.h>

/* c (n) += a * b (n): the loop the compiler vectorises. */
static inline void axpy_row(float *restrict c, float a, const float *restrict b, int n)
{
    for (int j = 0; j < n; j++) c[j] += a * b[j];
}

void fm__gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    int nt = fm__threads_for((double)M * N * K);
    (void)nt;
    FM__PARALLEL_FOR(nt)
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
        const float *a = A + (size_t)i * lda;
        for (int k = 0; k < K; k++) axpy_row(c, a[k], B + (size_t)k * ldb, N);
    }
}

void fm__gemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    int nt = fm__threads_for((double)M * N * K);
    (void)nt;
    FM__PARALLEL_FOR(nt)
    for (int i = 0; i < M; i++) {
        const float *a = A + (size_t)i * lda;
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++) {
            const float *b = B + (size_t)j * ldb;
            float s = beta == 0.0f ? 0.0f : c[j];
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc += a[k] * b[k];
            c[j] = s + acc;
        }
    }
}

void fm__gemm_tn_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                     float *C, int ldc)
{
    int nt = fm__threads_for((double)M * N * K);
    (void)nt;
    FM__PARALLEL_FOR(nt)
    for (int m = 0; m < M; m++) {
        float *c = C + (size_t)m * ldc;
        for (int k = 0; k < K; k++) {
            float a = A[(size_t)k * lda + m];
            axpy_row(c, a, B + (size_t)k * ldb, N);
        }
    }
}
