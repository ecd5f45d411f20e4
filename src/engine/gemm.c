/* gemm.c - the matrix products behind linear layers.
 *
 * One routine, C (M, N) = [C +] op(A) B, where op(A)(i, k) = A[i*ars + k*aks]
 * covers A (the forward and dx products) and A^T (the weight gradient dy^T x)
 * without copying. A register tile of 4 rows by up to 64 columns stays in
 * vector registers for the whole k loop (GCC vector extensions: AVX-512 with
 * -march=native, narrower vectors or scalar code elsewhere). Every C element
 * is the sum over k in increasing order, added to C at the end when
 * accumulating, so results do not depend on the thread count or on what C held.
 * Threads split row tiles of C and never share an output.
 */
#include "internal.h"

#include <stddef.h>
#include <string.h>

#define VL 16 /* floats per vector */
typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef float vfu __attribute__((vector_size(VL * sizeof(float)), aligned(4), may_alias));

static inline vf vload(const float *p) { return *(const vfu *)p; }
static inline void vstore(float *p, vf v) { *(vfu *)p = v; }

/* Rows [0, mr) and vector columns [0, nv) of a tile; mr <= 4, nv <= 4 are
 * compile-time constants at every call so the accumulators live in registers. */
static inline __attribute__((always_inline)) void tile(int mr, int nv, int K, const float *A, ptrdiff_t ars,
                                                       ptrdiff_t aks, const float *B, ptrdiff_t ldb, float *C,
                                                       ptrdiff_t ldc, int acc)
{
    vf c[4][4];
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 4; j++) c[r][j] = (vf){0};
    for (int k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        vf bv[4];
        for (int j = 0; j < nv; j++) bv[j] = vload(b + j * VL);
        for (int r = 0; r < mr; r++) {
            vf a = (vf){0} + A[r * ars + k * aks];
            for (int j = 0; j < nv; j++) c[r][j] += a * bv[j];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nv; j++) {
            float *p = C + r * ldc + j * VL;
            vstore(p, acc ? vload(p) + c[r][j] : c[r][j]);
        }
}

/* Columns that do not fill a vector. */
static void tail_cols(int mr, int n0, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t aks, const float *B,
                      ptrdiff_t ldb, float *C, ptrdiff_t ldc, int acc)
{
    for (int r = 0; r < mr; r++)
        for (int n = n0; n < N; n++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++) s += A[r * ars + k * aks] * B[k * ldb + n];
            C[r * ldc + n] = acc ? C[r * ldc + n] + s : s;
        }
}

#define TILE_ROWS(MR)                                                                                       \
    do {                                                                                                    \
        int n = 0;                                                                                          \
        for (; n + 4 * VL <= N; n += 4 * VL) tile(MR, 4, K, a, ars, aks, B + n, ldb, c + n, ldc, acc);      \
        switch ((N - n) / VL) {                                                                             \
        case 3: tile(MR, 3, K, a, ars, aks, B + n, ldb, c + n, ldc, acc); n += 3 * VL; break;               \
        case 2: tile(MR, 2, K, a, ars, aks, B + n, ldb, c + n, ldc, acc); n += 2 * VL; break;               \
        case 1: tile(MR, 1, K, a, ars, aks, B + n, ldb, c + n, ldc, acc); n += VL; break;                   \
        }                                                                                                   \
        if (n < N) tail_cols(MR, n, N, K, a, ars, aks, B, ldb, c, ldc, acc);                                \
    } while (0)

void fm__gemm(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t aks, const float *B, int ldb, float *C,
              int ldc, int acc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!acc)
            for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    int tiles = (M + 3) / 4;
    int nt = fm__threads_for((double)M * N * K);
    (void)nt;
    FM__PARALLEL_FOR(nt)
    for (int t = 0; t < tiles; t++) {
        int i = 4 * t, mr = M - i < 4 ? M - i : 4;
        const float *a = A + (ptrdiff_t)i * ars;
        float *c = C + (ptrdiff_t)i * ldc;
        switch (mr) {
        case 4: TILE_ROWS(4); break;
        case 3: TILE_ROWS(3); break;
        case 2: TILE_ROWS(2); break;
        default: TILE_ROWS(1); break;
        }
    }
}
