/* gemm.c - the matrix products behind linear layers.
 *
 * One routine, C (M, N) = [C +] [bias +] op(A) B, where
 * op(A)(i, k) = A[i*ars + k*aks] covers A (the forward and dx products) and A^T
 * (the weight gradient dy^T x) without copying. Columns in groups of 16 go
 * through a register tile of 4 rows by up to 64 columns that stays in vector
 * registers for the whole k loop (GCC vector extensions: AVX-512 with
 * -march=native, narrower vectors or scalar code elsewhere). The last N % 16
 * columns, a whole output for layers of width 2 or 3, use kernels that
 * vectorise along k (dot products) or along the rows of C instead.
 *
 * Every C element is its bias, then the sum over k in a fixed order, added to
 * C at the end when accumulating, so results depend neither on the thread
 * count nor on what C held. Long k loops are cut into slices that keep B in
 * cache; the slices are summed in a scratch block before C sees them. Threads split rows of C and never share an output;
 * a single thread runs without entering OpenMP at all. fm__gemm_bshift and
 * fm__gemm_ashift are the convolutions' products (below).
 */
#include "internal.h"
#include "engine/profile.h"

#include <stddef.h>
#include <string.h>

#define VL 16 /* floats per vector */
typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef float vfu __attribute__((vector_size(VL * sizeof(float)), aligned(4), may_alias));

static inline vf vload(const float *p) { return *(const vfu *)p; }
static inline void vstore(float *p, vf v) { *(vfu *)p = v; }
/* x in every lane. Not (vf){0} + x: adding +0 is not an identity for -0, so the
 * compiler must emit the add. */
static inline vf splat(float x) { return (vf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
/* Keep v in a register: without it the compiler re-reads B from memory for
 * every row of the tile, and the loads, not the FMAs, set the pace. */
#if defined(__AVX512F__)
#define PIN(v) __asm__("" : "+v"(v))
#else
#define PIN(v) ((void)0)
#endif

static inline float hsum(vf v)
{
    /* fixed pairwise order: lane i += lane i + w for w = 8, 4, 2, 1 */
#if VL == 16 && defined(__clang__) || VL == 16 && __GNUC__ >= 12
    v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0);
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    v += __builtin_shufflevector(v, v, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return v[0];
#else
    float s[VL];
    memcpy(s, &v, sizeof s);
    for (int w = VL / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) s[i] += s[i + w];
    return s[0];
#endif
}

enum { MR = 6 }; /* most rows of a tile: 6 x 4 accumulators, 4 vectors of B and a broadcast in 32 registers */

/* Rows [0, mr) and vector columns [0, nv) of a tile; mr <= MR, nv <= 4 are
 * compile-time constants at every call so the accumulators live in registers. */
static inline __attribute__((always_inline)) void tile(int mr, int nv, int K, const float *A, ptrdiff_t ars,
                                                       ptrdiff_t aks, const float *B, ptrdiff_t ldb, float *C,
                                                       ptrdiff_t ldc, const float *bias, int acc)
{
    vf c[MR][4];
    for (int j = 0; j < 4; j++) {
        vf b0 = bias && j < nv ? vload(bias + j * VL) : (vf){0};
        for (int r = 0; r < MR; r++) c[r][j] = b0;
    }
    for (int k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        vf bv[4];
        for (int j = 0; j < nv; j++) {
            bv[j] = vload(b + j * VL);
            PIN(bv[j]);
        }
        for (int r = 0; r < mr; r++) {
            vf a = splat(A[r * ars + k * aks]);
            for (int j = 0; j < nv; j++) c[r][j] += a * bv[j];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nv; j++) {
            float *p = C + r * ldc + j * VL;
            vstore(p, acc ? vload(p) + c[r][j] : c[r][j]);
        }
}

#define TILE_ROWS(MR)                                                                                       \
    do {                                                                                                    \
        int n = 0;                                                                                          \
        for (; n + 4 * VL <= nfull; n += 4 * VL)                                                            \
            tile(MR, 4, K, a, ars, aks, B + n, ldb, c + n, ldc, bias ? bias + n : NULL, acc);                \
        switch ((nfull - n) / VL) {                                                                         \
        case 3: tile(MR, 3, K, a, ars, aks, B + n, ldb, c + n, ldc, bias ? bias + n : NULL, acc); break;     \
        case 2: tile(MR, 2, K, a, ars, aks, B + n, ldb, c + n, ldc, bias ? bias + n : NULL, acc); break;     \
        case 1: tile(MR, 1, K, a, ars, aks, B + n, ldb, c + n, ldc, bias ? bias + n : NULL, acc); break;     \
        }                                                                                                   \
    } while (0)

typedef struct {
    int M, N, K, nfull;
    const float *A, *B, *bias;
    ptrdiff_t ars, aks;
    int ldb, ldc, acc;
    float *C;
    int panels; /* A packed in panels: tile t's entry (r, k) at A[t K MR + k MR + r] */
} job;

/* Row tiles [t0, t1) over the columns that fill whole vectors. */
static void wide_rows(const job *J, int t0, int t1)
{
    int K = J->K, nfull = J->nfull, acc = J->acc;
    ptrdiff_t ars = J->ars, aks = J->aks, ldb = J->ldb, ldc = J->ldc;
    const float *B = J->B, *bias = J->bias;
    for (int t = t0; t < t1; t++) {
        int i = MR * t, mr = J->M - i < MR ? J->M - i : MR;
        const float *a = J->panels ? J->A + (ptrdiff_t)t * K * MR : J->A + (ptrdiff_t)i * ars;
        if (J->panels) ars = 1, aks = MR;
        float *c = J->C + (ptrdiff_t)i * ldc;
        switch (mr) {
        case 6: TILE_ROWS(6); break;
        case 5: TILE_ROWS(5); break;
        case 4: TILE_ROWS(4); break;
        case 3: TILE_ROWS(3); break;
        case 2: TILE_ROWS(2); break;
        default: TILE_ROWS(1); break;
        }
    }
}

/* The last few columns [n0, N) when A's rows are contiguous (aks == 1): each
 * output is a dot product of a row of A with a column of B, vectorised along
 * k. The column is packed 256 values at a time so its loads are contiguous.
 * Rows [i0, i1) of the result go to out (row stride ldo, column n - n0). */
static void narrow_dot(const job *J, int i0, int i1, float *out, ptrdiff_t ldo)
{
    enum { KC = 256 };
    int K = J->K, N = J->N, n0 = J->nfull;
    float pack[VL][KC];
    for (int kc = 0; kc < K; kc += KC) {
        int kn = K - kc < KC ? K - kc : KC;
        for (int n = n0; n < N; n++)
            for (int k = 0; k < kn; k++) pack[n - n0][k] = J->B[(ptrdiff_t)(kc + k) * J->ldb + n];
        int i = i0;
        if (N - n0 == 2) /* the 2D models' output layer: two rows' two dot products at once, same sums */
            for (; i + 2 <= i1; i += 2) {
                const float *a0 = J->A + (ptrdiff_t)i * J->ars + kc, *a1 = a0 + J->ars;
                vf s00 = (vf){0}, s01 = (vf){0}, s10 = (vf){0}, s11 = (vf){0};
                int k = 0;
                for (; k + VL <= kn; k += VL) {
                    vf p0 = vload(pack[0] + k), p1 = vload(pack[1] + k), x0 = vload(a0 + k), x1 = vload(a1 + k);
                    s00 += x0 * p0;
                    s01 += x0 * p1;
                    s10 += x1 * p0;
                    s11 += x1 * p1;
                }
                float t[4] = {hsum(s00), hsum(s01), hsum(s10), hsum(s11)};
                for (; k < kn; k++) {
                    t[0] += a0[k] * pack[0][k];
                    t[1] += a0[k] * pack[1][k];
                    t[2] += a1[k] * pack[0][k];
                    t[3] += a1[k] * pack[1][k];
                }
                for (int q = 0; q < 4; q++) {
                    float *o = out + (ptrdiff_t)(i + q / 2 - i0) * ldo + q % 2;
                    *o = kc == 0 ? (J->bias ? J->bias[n0 + q % 2] : 0.0f) + t[q] : *o + t[q];
                }
            }
        for (; i < i1; i++) {
            const float *a = J->A + (ptrdiff_t)i * J->ars + kc;
            float *o = out + (ptrdiff_t)(i - i0) * ldo;
            for (int n = n0; n < N; n++) {
                vf s = (vf){0};
                int k = 0;
                for (; k + VL <= kn; k += VL) s += vload(a + k) * vload(pack[n - n0] + k);
                float t = hsum(s);
                for (; k < kn; k++) t += a[k] * pack[n - n0][k];
                /* bias first, then the chunks in order */
                o[n - n0] = kc == 0 ? (J->bias ? J->bias[n] : 0.0f) + t : o[n - n0] + t;
            }
        }
    }
}

/* The same when A is used transposed (ars == 1): vectorise along the rows of C,
 * which are contiguous in A. A last block of fewer than 16 rows goes through
 * the same vector arithmetic, zero-padded, so every row is computed the same
 * way wherever a thread's range happens to start. */
static void narrow_rows(const job *J, int i0, int i1)
{
    int K = J->K, N = J->N, n0 = J->nfull;
    for (int n = n0; n < N; n++) {
        int i = i0;
        for (; i + 4 * VL <= i1; i += 4 * VL) { /* 64 rows: four independent sums in flight */
            vf s[4];
            for (int v = 0; v < 4; v++) s[v] = splat(J->bias ? J->bias[n] : 0.0f);
            for (int k = 0; k < K; k++) {
                const float *a = J->A + (ptrdiff_t)k * J->aks + i;
                vf b = splat(J->B[(ptrdiff_t)k * J->ldb + n]);
                for (int v = 0; v < 4; v++) s[v] += vload(a + v * VL) * b;
            }
            for (int v = 0; v < 4; v++) {
                float out[VL];
                memcpy(out, &s[v], sizeof out);
                for (int r = 0; r < VL; r++) {
                    float *c = J->C + (ptrdiff_t)(i + v * VL + r) * J->ldc + n;
                    *c = J->acc ? *c + out[r] : out[r];
                }
            }
        }
        for (; i < i1; i += VL) {
            int m = i1 - i < VL ? i1 - i : VL;
            vf s = splat(J->bias ? J->bias[n] : 0.0f);
            for (int k = 0; k < K; k++) {
                const float *a = J->A + (ptrdiff_t)k * J->aks + i;
                vf av;
                if (m == VL) {
                    av = vload(a);
                } else {
                    float pad[VL] = {0};
                    memcpy(pad, a, (size_t)m * sizeof(float));
                    av = vload(pad);
                }
                s += av * splat(J->B[(ptrdiff_t)k * J->ldb + n]);
            }
            float v[VL];
            memcpy(v, &s, sizeof v);
            for (int r = 0; r < m; r++) {
                float *c = J->C + (ptrdiff_t)(i + r) * J->ldc + n;
                *c = J->acc ? *c + v[r] : v[r];
            }
        }
    }
}

/* Any other strides: plain sums (no caller uses them today). */
static void narrow_scalar(const job *J, int i0, int i1)
{
    for (int i = i0; i < i1; i++)
        for (int n = J->nfull; n < J->N; n++) {
            float s = J->bias ? J->bias[n] : 0.0f;
            for (int k = 0; k < J->K; k++) s += J->A[(ptrdiff_t)i * J->ars + (ptrdiff_t)k * J->aks] * J->B[(ptrdiff_t)k * J->ldb + n];
            float *c = J->C + (ptrdiff_t)i * J->ldc + n;
            *c = J->acc ? *c + s : s;
        }
}

static void narrow(const job *J, int i0, int i1)
{
    int w = J->N - J->nfull;
    if (w == 0) return;
    if (J->ars == 1 && J->aks != 1) {
        narrow_rows(J, i0, i1);
    } else if (J->aks != 1) {
        narrow_scalar(J, i0, i1);
    } else if (!J->acc) {
        narrow_dot(J, i0, i1, J->C + (ptrdiff_t)i0 * J->ldc + J->nfull, J->ldc);
    } else {
        /* sum apart, then add to C, 64 rows at a time */
        float tmp[64 * VL];
        for (int r0 = i0; r0 < i1; r0 += 64) {
            int r1 = i1 - r0 < 64 ? i1 : r0 + 64;
            narrow_dot(J, r0, r1, tmp, w);
            for (int i = r0; i < r1; i++)
                for (int n = 0; n < w; n++) J->C[(ptrdiff_t)i * J->ldc + J->nfull + n] += tmp[(i - r0) * w + n];
        }
    }
}

/* Long k loops (K > KC): the k loop is cut into slices of KC, as a BLIS-style
 * loop nest. For each slice, B's slice is packed once, in strips of 64
 * columns (each strip contiguous, streamed by the tiles), for all the rows a
 * thread has; its rows then go by blocks of MCB, whose slice of A stays in L2
 * while every strip passes over it (when A is used transposed, its rows are
 * packed in panels of MR rows, k-major: one stream per tile). The slices are
 * summed into C (or, when accumulating, into a scratch copy added to C at the
 * end) in slice order, so each element's arithmetic is the plain tiles' over
 * each slice in turn, whatever the blocking. */
enum { KC = 256, MCB = 256 };
int fm__gemm_pack = 1;

/* Rows [r0, r1) of C over one slice [kc, kc + ks) of k: B's strips packed in
 * bpack, the result summed into dst (row r0 at dst, row stride ldd). */
static void slice_rows(const job *J, int r0, int r1, int kc, int ks, const float *bpack, float *dst, ptrdiff_t ldd,
                       float *apack)
{
    for (int i0 = r0; i0 < r1; i0 += MCB) {
        int mrows = r1 - i0 < MCB ? r1 - i0 : MCB;
        const float *a = J->A + (ptrdiff_t)i0 * J->ars + (ptrdiff_t)kc * J->aks;
        int panels = apack && J->aks != 1;
        if (panels) /* A^T: panels of MR rows, k-major */
            for (int t = 0; t * MR < mrows; t++) {
                float *p = apack + (ptrdiff_t)t * ks * MR;
                int mr = mrows - t * MR < MR ? mrows - t * MR : MR;
                const float *at = a + (ptrdiff_t)t * MR * J->ars;
                for (int k = 0; k < ks; k++)
                    for (int r = 0; r < MR; r++) p[k * MR + r] = r < mr ? at[(ptrdiff_t)r * J->ars + (ptrdiff_t)k * J->aks] : 0.0f;
            }
        for (int n0 = 0; n0 < J->nfull; n0 += 4 * VL) {
            int ncols = J->nfull - n0 < 4 * VL ? J->nfull - n0 : 4 * VL;
            job S = *J;
            S.M = mrows;
            S.K = ks;
            S.nfull = ncols;
            S.A = panels ? apack : a;
            S.panels = panels;
            S.B = bpack ? bpack + (ptrdiff_t)n0 * ks : J->B + (ptrdiff_t)kc * J->ldb + n0;
            S.ldb = bpack ? ncols : J->ldb;
            S.C = dst + (ptrdiff_t)(i0 - r0) * ldd + n0;
            S.ldc = (int)ldd;
            S.bias = kc == 0 && J->bias ? J->bias + n0 : NULL;
            S.acc = kc > 0;
            wide_rows(&S, 0, (mrows + MR - 1) / MR);
        }
    }
}

/* Rows [b0 MCB, b1 MCB) of C. */
static void blocked_rows(const job *J, int b0, int b1)
{
    int r0 = b0 * MCB, r1 = b1 * MCB < J->M ? b1 * MCB : J->M, rows = r1 - r0;
    /* B's slice packed, A's panels, and when accumulating the rows' sums before C sees them */
    size_t nb = (size_t)KC * J->nfull, na = J->aks != 1 ? (size_t)(MCB + MR) * KC : 0;
    size_t ns = J->acc ? (size_t)rows * J->nfull : 0;
    float *buf = fm__gemm_pack ? malloc((nb + na + ns) * sizeof(float)) : NULL;
    if (!buf) { /* no memory: 64 rows at a time, nothing packed, summed on the stack */
        float scratch[64 * 4 * VL];
        for (int i0 = r0; i0 < r1; i0 += 64)
            for (int n0 = 0; n0 < J->nfull; n0 += 4 * VL) {
                int m = r1 - i0 < 64 ? r1 - i0 : 64, ncols = J->nfull - n0 < 4 * VL ? J->nfull - n0 : 4 * VL;
                job S = *J;
                S.nfull = ncols;
                S.B = J->B + n0;
                S.bias = J->bias ? J->bias + n0 : NULL;
                for (int kc = 0; kc < J->K; kc += KC)
                    slice_rows(&S, i0, i0 + m, kc, J->K - kc < KC ? J->K - kc : KC, NULL, scratch, 4 * VL, NULL);
                for (int i = 0; i < m; i++)
                    for (int n = 0; n < ncols; n++) {
                        float *c = J->C + (ptrdiff_t)(i0 + i) * J->ldc + n0 + n;
                        *c = J->acc ? *c + scratch[i * 4 * VL + n] : scratch[i * 4 * VL + n];
                    }
            }
        return;
    }
    float *bpack = buf, *apack = na ? buf + nb : NULL, *sc = J->acc ? buf + nb + na : NULL;
    for (int kc = 0; kc < J->K; kc += KC) {
        int ks = J->K - kc < KC ? J->K - kc : KC;
        for (int n0 = 0; n0 < J->nfull; n0 += 4 * VL) { /* strip n0: ks x ncols, contiguous */
            int ncols = J->nfull - n0 < 4 * VL ? J->nfull - n0 : 4 * VL;
            float *strip = bpack + (ptrdiff_t)n0 * ks;
            for (int k = 0; k < ks; k++) {
                const float *src = J->B + (ptrdiff_t)(kc + k) * J->ldb + n0;
                for (int v = 0; v < ncols; v += VL) vstore(strip + (ptrdiff_t)k * ncols + v, vload(src + v));
            }
        }
        if (sc)
            slice_rows(J, r0, r1, kc, ks, bpack, sc, J->nfull, apack);
        else
            slice_rows(J, r0, r1, kc, ks, bpack, J->C + (ptrdiff_t)r0 * J->ldc, J->ldc, apack);
    }
    for (int i = 0; sc && i < rows; i++) {
        float *c = J->C + (ptrdiff_t)(r0 + i) * J->ldc;
        for (int n = 0; n < J->nfull; n++) c[n] += sc[(ptrdiff_t)i * J->nfull + n];
    }
    free(buf);
}

/* ------------------------------------------------------------------ products on shifted planes
 *
 * The convolutions' products read their operands straight from a padded copy
 * of the image planes instead of unfolded matrices (ops_conv.c): row k of B
 * (forward, dx) or row i of A (weight gradient) starts at a table's offset,
 * and consecutive rows overlap. Where a kernel tap's column shift d carries a
 * row's edge into the next row, the entry must count as zero: the forward and
 * dx products mask those columns of B (their k loop is taken a shift at a
 * time, a mask per shift), the weight gradient's k loop skips those pixels
 * (a table of the pixels it visits).
 *
 * Their tiles are taller than the 4 rows above, so that each vector of B
 * loaded (often across two cache lines, from L2) serves more rows: 8 rows by
 * 3 vectors for the forward and dx products (plus 3 masks: 31 registers),
 * 6 by 4 or 8 by 2 for weight gradients 64 or 32 columns wide. The columns in
 * blocks are the outer loop, so a block of B stays in cache while every row
 * tile passes over it. N is a whole number of vectors. */

enum { OMR = 8 }; /* most rows of a tile */
typedef int vi __attribute__((vector_size(VL * sizeof(int))));

/* B by row offsets, columns masked per shift: rows [0, mr), vector columns
 * [0, nv) of C [+]= A B over k in [0, K), K = nseg segments; in segment s
 * (shift d = d0 + s) a column whose place in its row, owv, plus d falls
 * outside [0, W) takes zero from B (owv NULL: no masks). */
static inline __attribute__((always_inline)) void tile_b(int mr, int nv, int K, const float *const *ar,
                                                         const float *B, const ptrdiff_t *boff, const vi *owv, int W,
                                                         int d0, int nseg, float *C, ptrdiff_t ldc, int acc)
{
    vf c[OMR][3];
    for (int j = 0; j < nv; j++)
        for (int r = 0; r < mr; r++) c[r][j] = (vf){0};
    int ks = K / nseg;
    for (int sg = 0; sg < nseg; sg++) {
        int d = d0 + sg, k0 = sg * ks, k1 = k0 + ks;
        if (owv && d != 0) {
            vi m[3];
            for (int j = 0; j < nv; j++) {
                vi t = owv[j] + d;
                m[j] = (t >= 0) & (t < W);
                PIN(m[j]);
            }
            for (int k = k0; k < k1; k++) {
                const float *b = B + boff[k];
                vf bv[3];
                for (int j = 0; j < nv; j++) {
                    bv[j] = (vf)((vi)vload(b + j * VL) & m[j]);
                    PIN(bv[j]);
                }
                for (int r = 0; r < mr; r++) {
                    vf a = splat(ar[r][k]);
                    for (int j = 0; j < nv; j++) c[r][j] += a * bv[j];
                }
            }
        } else {
            for (int k = k0; k < k1; k++) {
                const float *b = B + boff[k];
                vf bv[3];
                for (int j = 0; j < nv; j++) {
                    bv[j] = vload(b + j * VL);
                    PIN(bv[j]);
                }
                for (int r = 0; r < mr; r++) {
                    vf a = splat(ar[r][k]);
                    for (int j = 0; j < nv; j++) c[r][j] += a * bv[j];
                }
            }
        }
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nv; j++) {
            float *p = C + r * ldc + j * VL;
            vstore(p, acc ? vload(p) + c[r][j] : c[r][j]);
        }
}

/* A by row offsets, k through a table: rows [0, mr), vector columns
 * [0, nv) of C [+]= A B with A's entry (r, k) ar[r][kk] and B's row k
 * B + kk ldb, kk = kidx[k] (kidx NULL: kk = k). */
static inline __attribute__((always_inline)) void tile_a(int mr, int nv, int K, const float *const *ar,
                                                         const ptrdiff_t *kidx, const float *B, ptrdiff_t ldb,
                                                         float *C, ptrdiff_t ldc, int acc)
{
    vf c[OMR][4];
    for (int j = 0; j < nv; j++)
        for (int r = 0; r < mr; r++) c[r][j] = (vf){0};
    for (int k = 0; k < K; k++) {
        ptrdiff_t kk = kidx ? kidx[k] : k;
        const float *b = B + kk * ldb;
        vf bv[4];
        for (int j = 0; j < nv; j++) {
            bv[j] = vload(b + j * VL);
            PIN(bv[j]);
        }
        for (int r = 0; r < mr; r++) {
            vf a = splat(ar[r][kk]);
            for (int j = 0; j < nv; j++) c[r][j] += a * bv[j];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nv; j++) {
            float *p = C + r * ldc + j * VL;
            vstore(p, acc ? vload(p) + c[r][j] : c[r][j]);
        }
}

/* Every tile shape used, mr rows by nv vectors. */
#define B_TILE(MR, NV, MASK) tile_b(MR, NV, K, ar, Bt, boff, MASK, W, d0, nseg, c, ldc, acc)
#define B_NV(MR, MASK)                                                                                      \
    switch (nv) {                                                                                           \
    case 3: B_TILE(MR, 3, MASK); break;                                                                     \
    case 2: B_TILE(MR, 2, MASK); break;                                                                     \
    default: B_TILE(MR, 1, MASK); break;                                                                    \
    }
#define B_TILES(MASK)                                                                                       \
    switch (mr) {                                                                                           \
    case 8: B_NV(8, MASK); break;                                                                           \
    case 7: B_NV(7, MASK); break;                                                                           \
    case 6: B_NV(6, MASK); break;                                                                           \
    case 5: B_NV(5, MASK); break;                                                                           \
    case 4: B_NV(4, MASK); break;                                                                           \
    case 3: B_NV(3, MASK); break;                                                                           \
    case 2: B_NV(2, MASK); break;                                                                           \
    default: B_NV(1, MASK); break;                                                                          \
    }
#define A_TILE(MR, NV, KIDX) tile_a(MR, NV, Kt, ar, KIDX, Bt, ldb, c, ldc, acc)
#define A_NV3(MR, KIDX)                                                                                     \
    switch (nv) {                                                                                           \
    case 3: A_TILE(MR, 3, KIDX); break;                                                                     \
    case 2: A_TILE(MR, 2, KIDX); break;                                                                     \
    default: A_TILE(MR, 1, KIDX); break;                                                                    \
    }
#define A_NV4(MR, KIDX)                                                                                     \
    switch (nv) {                                                                                           \
    case 4: A_TILE(MR, 4, KIDX); break;                                                                     \
    default: A_NV3(MR, KIDX);                                                                               \
    }
#define A_TILES(KIDX)                                                                                       \
    switch (mr) {                                                                                           \
    case 8: A_NV3(8, KIDX); break;                                                                          \
    case 7: A_NV3(7, KIDX); break;                                                                          \
    case 6: A_NV4(6, KIDX); break;                                                                          \
    case 5: A_NV4(5, KIDX); break;                                                                          \
    case 4: A_NV4(4, KIDX); break;                                                                          \
    case 3: A_NV4(3, KIDX); break;                                                                          \
    case 2: A_NV4(2, KIDX); break;                                                                          \
    default: A_NV4(1, KIDX); break;                                                                         \
    }

/* Row tiles [t0, t1) of rt rows of fm__gemm_bshift's product, column blocks
 * of 3 vectors outermost. */
static void bshift_rows(int M, int N, int K, const float *A, ptrdiff_t lda, const float *B, const ptrdiff_t *boff,
                        int W, int d0, int nseg, float *C, ptrdiff_t ldc, int acc, int t0, int t1)
{
    enum { RT = 8, CV = 3 };
    for (int n0 = 0; n0 < N; n0 += CV * VL) {
        int nv = (N - n0 < CV * VL ? N - n0 : CV * VL) / VL;
        vi owv[CV]; /* each column's place in its row */
        for (int j = 0; j < nv; j++)
            for (int l = 0; l < VL; l++) owv[j][l] = W ? (n0 + j * VL + l) % W : 0;
        const float *Bt = B + n0;
        for (int t = t0; t < t1; t++) {
            int i = RT * t, mr = M - i < RT ? M - i : RT;
            const float *ar[OMR];
            for (int r = 0; r < OMR; r++) ar[r] = A + (ptrdiff_t)(i + (r < mr ? r : 0)) * lda;
            float *c = C + (ptrdiff_t)i * ldc + n0;
            if (W) {
                B_TILES(owv);
            } else {
                B_TILES(NULL);
            }
        }
    }
}

void fm__gemm_bshift(int M, int N, int K, const float *A, ptrdiff_t lda, const float *B, const ptrdiff_t *boff, int W,
                     int d0, int nseg, float *C, int ldc, int acc)
{
    FM_ASSERT(N % VL == 0 && K > 0 && nseg > 0 && K % nseg == 0); /* whole vectors, whole segments */
    if (M <= 0 || N <= 0) return;
    int tiles = (M + 7) / 8, nt = fm__threads_over((double)M * N * K, tiles);
    if (nt <= 1) {
        bshift_rows(M, N, K, A, lda, B, boff, W, d0, nseg, C, ldc, acc, 0, tiles);
        return;
    }
    FM__PARALLEL_FOR(nt)
    for (int w = 0; w < nt; w++)
        bshift_rows(M, N, K, A, lda, B, boff, W, d0, nseg, C, ldc, acc, fm__split(tiles, w, nt),
                    fm__split(tiles, w + 1, nt));
}

/* Row tiles [t0, t1) of rt rows of fm__gemm_ashift's product: the k loop in
 * slices of KC summed in a scratch block of 8 row tiles, as in blocked_rows,
 * so that a slice of B serves every row tile of the block. */
static void ashift_rows(int M, int N, int K, const float *A, const ptrdiff_t *aoff, const ptrdiff_t *kidx,
                        const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldcC, int accC, int rt, int cv, int t0,
                        int t1)
{
    enum { TB = 8 }; /* row tiles per block */
    float scratch[OMR * TB * 4 * VL];
    for (int n0 = 0; n0 < N; n0 += cv * VL) {
        int nv = (N - n0 < cv * VL ? N - n0 : cv * VL) / VL;
        for (int tb = t0; tb < t1; tb += TB) {
            int te = tb + TB < t1 ? tb + TB : t1;
            for (int k0 = 0; k0 < K; k0 += KC) {
                int Kt = K - k0 < KC ? K - k0 : KC, single = Kt == K;
                /* one slice goes straight to C; several are summed in scratch first */
                int acc = single ? accC : k0 > 0;
                ptrdiff_t ldc = single ? ldcC : 4 * VL;
                const float *Bt = B + n0 + (kidx ? 0 : (ptrdiff_t)k0 * ldb);
                const ptrdiff_t *ki = kidx ? kidx + k0 : NULL;
                for (int t = tb; t < te; t++) {
                    int i = rt * t, mr = M - i < rt ? M - i : rt;
                    const float *ar[OMR];
                    for (int r = 0; r < OMR; r++) ar[r] = A + aoff[i + (r < mr ? r : 0)] + (kidx ? 0 : k0);
                    float *c = single ? C + (ptrdiff_t)i * ldcC + n0 : scratch + (ptrdiff_t)(i - rt * tb) * 4 * VL;
                    if (ki) {
                        A_TILES(ki);
                    } else {
                        A_TILES(NULL);
                    }
                }
            }
            if (K > KC)
                for (int i = rt * tb; i < rt * te && i < M; i++) {
                    float *d = C + (ptrdiff_t)i * ldcC + n0;
                    const float *sc = scratch + (ptrdiff_t)(i - rt * tb) * 4 * VL;
                    for (int n = 0; n < nv * VL; n++) d[n] = accC ? d[n] + sc[n] : sc[n];
                }
        }
    }
}

void fm__gemm_ashift(int M, int N, int K, const float *A, const ptrdiff_t *aoff, const ptrdiff_t *kidx, const float *B,
                     int ldb, float *C, int ldc, int acc)
{
    FM_ASSERT(N % VL == 0 && K > 0); /* whole vectors only */
    if (M <= 0 || N <= 0) return;
    int nvec = N / VL, rt = nvec == 4 ? 6 : 8, cv = nvec == 4 ? 4 : nvec == 2 ? 2 : nvec == 1 ? 1 : 3;
    int tiles = (M + rt - 1) / rt, nt = fm__threads_over((double)M * N * K, tiles);
    if (nt <= 1) {
        ashift_rows(M, N, K, A, aoff, kidx, B, ldb, C, ldc, acc, rt, cv, 0, tiles);
        return;
    }
    FM__PARALLEL_FOR(nt)
    for (int w = 0; w < nt; w++)
        ashift_rows(M, N, K, A, aoff, kidx, B, ldb, C, ldc, acc, rt, cv, fm__split(tiles, w, nt),
                    fm__split(tiles, w + 1, nt));
}

void fm__gemm(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t aks, const float *B, int ldb, float *C,
              int ldc, const float *bias, int acc)
{
    if (M <= 0 || N <= 0) return;
    fm__prof_flops(2.0 * M * N * K);
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int n = 0; n < N; n++) {
                float b = bias ? bias[n] : 0.0f;
                C[(size_t)i * ldc + n] = acc ? C[(size_t)i * ldc + n] + b : b;
            }
        return;
    }
    job J = {M, N, K, N / VL * VL, A, B, bias, ars, aks, ldb, ldc, acc, C, 0};
    if (K > KC && J.nfull > 0) {
        int blocks = (M + MCB - 1) / MCB, nt = fm__threads_for((double)M * N * K);
        if (nt > blocks) nt = blocks;
        if (nt <= 1) {
            blocked_rows(&J, 0, blocks);
            narrow(&J, 0, M);
            return;
        }
        FM__PARALLEL_FOR(nt)
        for (int w = 0; w < nt; w++) {
            int b0 = (int)((long)blocks * w / nt), b1 = (int)((long)blocks * (w + 1) / nt);
            blocked_rows(&J, b0, b1);
            int i1 = b1 * MCB < M ? b1 * MCB : M;
            narrow(&J, b0 * MCB, i1);
        }
        return;
    }
    int tiles = (M + MR - 1) / MR;
    int nt = fm__threads_for((double)M * N * K);
    if (nt > tiles) nt = tiles;
    if (nt <= 1) {
        wide_rows(&J, 0, tiles);
        narrow(&J, 0, M);
        return;
    }
    /* each thread a contiguous range of row tiles; narrow columns by the same rows */
    FM__PARALLEL_FOR(nt)
    for (int w = 0; w < nt; w++) {
        int t0 = (int)((long)tiles * w / nt), t1 = (int)((long)tiles * (w + 1) / nt);
        wide_rows(&J, t0, t1);
        int i0 = MR * t0, i1 = MR * t1 < M ? MR * t1 : M;
        narrow(&J, i0, i1);
    }
}
