/* assign.c - exact linear assignment (Jonker and Volgenant, 1987).
 *
 * Minimises sum_i c(i, x_i) over permutations x of n rows onto n columns.
 * Costs come from a callback, a row or a list of columns at a time, so an
 * n = 5000 problem needs O(n) memory, not a 200 MB matrix, and the shortest-
 * path phase computes only the costs it reads. The phases: column reduction, reduction
 * transfer, two passes of augmenting row reduction, then shortest augmenting
 * paths (Dijkstra on reduced costs) for the rows still free. The dual prices
 * returned certify optimality: u_i + v_j <= c(i, j) everywhere, with equality
 * on the assignment.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Problems up to this size get their whole cost matrix computed once (8 MB at
 * most); larger ones compute rows on demand. */
#define DENSE_MAX 1024

typedef struct {
    fm_cost_fn cost;
    void *ctx;
    int n;
    double *buf;   /* (n) */
    const double *dense; /* (n, n) or NULL */
} costs;

/* Minimum of n doubles (no NaN), in 8 independent lanes: a minimum does not
 * depend on the grouping, and the lanes keep the dependency chain short. */
static double min_of(const double *x, int n)
{
    double m[8] = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int q = 0; q < 8; q++) m[q] = x[j + q] < m[q] ? x[j + q] : m[q];
    for (; j < n; j++) m[0] = x[j] < m[0] ? x[j] : m[0];
    for (int q = 1; q < 8; q++) m[0] = m[q] < m[0] ? m[q] : m[0];
    return m[0];
}

static const double *get_row(costs *c, int i)
{
    if (c->dense) return c->dense + (size_t)i * c->n;
    c->cost(c->ctx, i, NULL, c->n, c->buf);
    return c->buf;
}

/* fm_assignment with the whole cost matrix given (given, (n, n), kept by the
 * caller) or, when given is NULL, computed here for small n. */
static fm_status assign(int n, fm_cost_fn row, void *ctx, const double *given, int *x, double *u, double *v,
                        double *total)
{
    if (n < 1) return fm__fail(FM_ERR_ARG, "assignment of %d rows", n);
    size_t N = (size_t)n;
    int *y = malloc(N * sizeof(int)), *freer = malloc(N * sizeof(int)), *col = malloc(N * sizeof(int));
    int *pred = malloc(N * sizeof(int)), *matches = calloc(N, sizeof(int)), *amin = malloc(N * sizeof(int));
    double *d = malloc(N * sizeof(double)), *buf = malloc(N * sizeof(double)), *vv = v ? v : malloc(N * sizeof(double));
    costs C = {row, ctx, n, buf, given};
    double *own = NULL; /* the matrix computed here */
    fm_status s = FM_OK;
    if (!y || !freer || !col || !pred || !matches || !amin || !d || !buf || !vv) {
        s = fm__fail(FM_ERR_NOMEM, "out of memory for an assignment of %d", n);
        goto out;
    }
    if (!given && n <= DENSE_MAX && (own = malloc(N * N * sizeof(double))) != NULL) {
        for (int i = 0; i < n; i++) row(ctx, i, NULL, n, own + (size_t)i * n);
        C.dense = own;
    }
    /* Column reduction: v_j = min_i c(i, j), found one row at a time. */
    for (int j = 0; j < n; j++) vv[j] = INFINITY;
    for (int i = 0; i < n; i++) {
        const double *c = get_row(&C, i);
        for (int j = 0; j < n; j++) {
            if (!(c[j] > -INFINITY && c[j] < INFINITY)) {
                s = fm__fail(FM_ERR_NUMERIC, "assignment cost (%d, %d) is %g", i, j, c[j]);
                goto out;
            }
            if (c[j] < vv[j]) {
                vv[j] = c[j];
                amin[j] = i;
            }
        }
    }
    for (int i = 0; i < n; i++) x[i] = -1;
    for (int j = n - 1; j >= 0; j--) {
        int i = amin[j];
        if (++matches[i] == 1) {
            x[i] = j;
            y[j] = i;
        } else {
            y[j] = -1;
        }
    }
    /* Reduction transfer from rows assigned once; collect the free rows. */
    int nfree = 0;
    for (int i = 0; i < n; i++) {
        if (matches[i] == 0) {
            freer[nfree++] = i;
        } else if (matches[i] == 1) {
            int j1 = x[i];
            const double *c = get_row(&C, i);
            double m = INFINITY;
            for (int j = 0; j < n; j++)
                if (j != j1 && c[j] - vv[j] < m) m = c[j] - vv[j];
            if (m < INFINITY) vv[j1] -= m;
        }
    }
    /* Augmenting row reduction, twice. The inner loop may revisit a row many
     * times; a generous cap guards against rounding making it cycle. */
    for (int pass = 0; pass < 2; pass++) {
        int k = 0, prev = nfree;
        long guard = 16L * n + 1000;
        nfree = 0;
        while (k < prev) {
            int i = freer[k++];
            const double *c = get_row(&C, i);
            /* the smallest reduced cost (first column reaching it) and the
             * smallest among the other columns (first reaching it), as the
             * sequential scan finds them, in branch-free passes */
            for (int j = 0; j < n; j++) d[j] = c[j] - vv[j];
            double umin = min_of(d, n), usub;
            int j1 = 0;
            while (d[j1] != umin) j1++;
            d[j1] = INFINITY; /* the smallest of the others */
            usub = min_of(d, n);
            d[j1] = umin;
            int j2 = -1;
            if (n > 1) {
                j2 = 0;
                while (j2 == j1 || d[j2] != usub) j2++;
            }
            int i0 = y[j1];
            if (umin < usub) {
                vv[j1] -= usub - umin;
            } else if (i0 >= 0 && j2 >= 0) {
                j1 = j2;
                i0 = y[j2];
            }
            x[i] = j1;
            y[j1] = i;
            if (i0 >= 0) {
                x[i0] = -1;
                if (umin < usub && --guard > 0) freer[--k] = i0;
                else freer[nfree++] = i0;
            }
        }
    }
    /* Shortest augmenting paths for the remaining free rows. */
    for (int f = 0; f < nfree; f++) {
        int fr = freer[f];
        const double *c = get_row(&C, fr);
        for (int j = 0; j < n; j++) {
            d[j] = c[j] - vv[j];
            pred[j] = fr;
            col[j] = j;
        }
        int low = 0, up = 0, last = 0, end = -1;
        double mn = 0;
        while (end < 0) {
            if (up == low) {
                /* next set of columns at the current minimum distance */
                last = low - 1;
                mn = d[col[up++]];
                for (int k = up; k < n; k++) {
                    int j = col[k];
                    double h = d[j];
                    if (h <= mn) {
                        if (h < mn) {
                            up = low;
                            mn = h;
                        }
                        col[k] = col[up];
                        col[up++] = j;
                    }
                }
                for (int k = low; k < up; k++)
                    if (y[col[k]] < 0) {
                        end = col[k];
                        break;
                    }
            }
            if (end >= 0) break;
            /* scan a column at the minimum: relax through its row, computing the
             * costs of the columns not yet reached only */
            int j1 = col[low++], i = y[j1], up0 = up;
            const double *crow = C.dense ? C.dense + (size_t)i * n : NULL;
            double cij1;
            if (crow) {
                cij1 = crow[j1];
            } else {
                row(ctx, i, &j1, 1, &cij1);
                row(ctx, i, col + up0, n - up0, buf);
            }
            double h = cij1 - vv[j1] - mn;
            for (int k = up0; k < n; k++) {
                int j = col[k];
                double v2 = (crow ? crow[j] : buf[k - up0]) - vv[j] - h;
                if (v2 < d[j]) {
                    pred[j] = i;
                    if (v2 == mn) {
                        if (y[j] < 0) {
                            end = j;
                            break;
                        }
                        col[k] = col[up];
                        col[up++] = j;
                    }
                    d[j] = v2;
                }
            }
        }
        for (int k = 0; k <= last; k++) {
            int j = col[k];
            vv[j] += d[j] - mn;
        }
        /* flip the alternating path */
        int i;
        do {
            i = pred[end];
            y[end] = i;
            int j = end;
            end = x[i];
            x[i] = j;
        } while (i != fr);
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const double *c = get_row(&C, i);
        FM_ASSERT(x[i] >= 0);
        sum += c[x[i]];
        if (u) u[i] = c[x[i]] - vv[x[i]];
    }
    if (total) *total = sum;
out:
    free(y);
    free(freer);
    free(col);
    free(pred);
    free(matches);
    free(amin);
    free(d);
    free(buf);
    free(own);
    if (!v) free(vv);
    return s;
}

fm_status fm_assignment(int n, fm_cost_fn row, void *ctx, int *x, double *u, double *v, double *total)
{
    return assign(n, row, ctx, NULL, x, u, v, total);
}

fm_status fm__assignment_dense(int n, const double *cost, int *x, double *u, double *v, double *total)
{
    return assign(n, NULL, NULL, cost, x, u, v, total);
}

/* ---- squared Euclidean costs between two point sets */

void fm__sqdist_cost(void *ctx, int i, const int *cols, int ncols, double *out)
{
    const fm__sqdist *s = ctx;
    int d = s->d;
    const float *ai = s->a + (size_t)i * d;
    if (d == 2) { /* the common case, without the inner loop */
        double x = ai[0], y = ai[1];
        for (int k = 0; k < ncols; k++) {
            const float *bj = s->b + 2 * (size_t)(cols ? cols[k] : k);
            double dx = x - bj[0], dy = y - bj[1];
            out[k] = dx * dx + dy * dy;
        }
        return;
    }
    for (int k = 0; k < ncols; k++) {
        const float *bj = s->b + (size_t)(cols ? cols[k] : k) * d;
        double acc = 0;
        for (int m = 0; m < d; m++) {
            double t = (double)ai[m] - bj[m];
            acc += t * t;
        }
        out[k] = acc;
    }
}

/* Points of many dimensions (images): a cost is d multiply-adds and the
 * shortest-path phase reads rows over and over, so above DENSE_MAX the whole
 * matrix is computed once, rows spread over threads (the same sums, so the
 * same bits), when it takes at most this much memory (n up to 8192). */
#define DENSE_BYTES ((size_t)512 << 20)
#define DENSE_MIN_DIM 16

fm_status fm_w2_exact(const float *a, const float *b, int n, int d, double *w2, int *match)
{
    if (n < 1 || d < 1) return fm__fail(FM_ERR_ARG, "W2 needs points (got %d of dimension %d)", n, d);
    fm__sqdist ctx = {a, b, d};
    int *x = match ? match : malloc((size_t)n * sizeof(int));
    if (!x) return fm__fail(FM_ERR_NOMEM, "out of memory");
    double total = 0, *full = NULL;
    if (d >= DENSE_MIN_DIM && n > DENSE_MAX && (size_t)n * n * sizeof(double) <= DENSE_BYTES &&
        (full = malloc((size_t)n * n * sizeof(double))) != NULL) {
        int nt = fm__threads_over((double)n * n * d, n);
        FM__PARALLEL_FOR(nt)
        for (int i = 0; i < n; i++) fm__sqdist_cost(&ctx, i, NULL, n, full + (size_t)i * n);
    }
    fm_status s = assign(n, fm__sqdist_cost, &ctx, full, x, NULL, NULL, &total);
    free(full);
    if (!match) free(x);
    if (s == FM_OK) *w2 = sqrt(total / n);
    return s;
}
