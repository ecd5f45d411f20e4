/* coupling.c - how a batch's source and data points are paired.
 *
 * Minibatch OT (Tong et al.): the exact assignment of the n source points to
 * the n data points minimising the sum of squared distances, so each point is
 * used once. Schrodinger bridge: the entropic plan with regularisation eps,
 * computed by Sinkhorn's iterations in log space (stable for small eps), from
 * which n pairs are drawn with replacement, as torchcfm does.
 */
#include "internal.h"
#include "engine/vmath.h"

#include <math.h>
#include <string.h>

static const char *const coupling_names[FM_COUPLING_COUNT] = {"independent", "ot", "sb"};

const char *fm_coupling_name(fm_coupling k) { return fm__name_of(coupling_names, FM_COUPLING_COUNT, k); }

int fm_coupling_from_name(const char *name) { return fm__name_index(coupling_names, FM_COUPLING_COUNT, name); }

fm_status fm_ot_pairing(const float *x0, const float *x1, int n, int d, int *match)
{
    fm__sqdist p = {x0, x1, d};
    return fm_assignment(n, fm__sqdist_cost, &p, match, NULL, NULL, NULL);
}

/* Entropic OT between two batches with uniform weights 1/n:
 *     min <P, C> - eps H(P),   C_ij = |x0_i - x1_j|^2,
 * whose solution is P_ij = exp((f_i + g_j - C_ij) / eps) for dual potentials
 * f and g. Sinkhorn's iterations alternate
 *     f_i = eps (log(1/n) - LSE_j((g_j - C_ij) / eps)),   g_j likewise over i,
 * each one making the row (column) sums exactly 1/n. Everything that touches
 * C / eps is double: at eps = 5e-7 and costs of 100 the exponents are 2e8,
 * which float cannot hold to one unit. Small eps converge slowly from a cold
 * start, so eps is annealed (epsilon scaling): the iterations start at
 * eps_0 = max C and halve it stage by stage down to the target, each stage
 * starting from the last one's potentials; below eps = 1e-3 max C they start
 * at the target from the exact matching's dual prices instead. Where
 * Sinkhorn still crawls at the target (30 iterations without reaching the
 * tolerance), Newton's method on the semi-dual finishes, for up to 512
 * points (its steps cost n^3). Below eps = 1e-9 max C double cannot resolve
 * the exponents either; there the plan is its eps -> 0 limit, the exact OT
 * matching (unique for points in general position). */

#define SINKHORN_STAGE_TOL 1e-2 /* column error that ends an annealing stage */
#define SINKHORN_STAGE_ITERS 50 /* and the most iterations one may take */
#define SINKHORN_BEFORE_NEWTON 30 /* target iterations before Newton's steps */
#define SINKHORN_NEWTON_MAX_N 512 /* Newton's O(n^3) steps only up to this many points */
#define NEWTON_RIDGE 1e-9 /* of diag(c) in Newton's system */
#define SINKHORN_FROM_MATCHING 1e-3 /* eps / max C below which it starts from the OT matching */
#define SINKHORN_RESOLVABLE 1e-9 /* smallest eps / max C run by iterations */

/* sum_j exp(buf_j) for n floats: float vectors, summed in double. */
static double sum_exp(const float *buf, int n)
{
    fm_vf acc = fm_vsplat(0.0f);
    int j = 0;
    for (; j + FM_VL <= n; j += FM_VL) acc += fm_vexp(fm_vload(buf + j));
    float lanes[FM_VL];
    fm_vstore(lanes, acc);
    double sum = 0;
    for (int q = 0; q < FM_VL; q++) sum += lanes[q];
    for (; j < n; j++) sum += exp((double)buf[j]);
    return sum;
}

/* LSE_j z_j for z_j = (g_j - c_j) s, c a row of costs. The exponents are
 * formed in double and shifted before float's exponentials (which need only
 * float's relative accuracy once the shift is near the largest). The shift is
 * the row's previous LSE (hint) when that keeps the sum within [1e-30, 1e30],
 * one pass; else the exact maximum, in two. */
static double lse_row(const double *c, const double *g, int n, double s, double hint, double *z, float *buf)
{
    if (isfinite(hint)) {
        for (int j = 0; j < n; j++) buf[j] = (float)((g[j] - c[j]) * s - hint);
        double sum = sum_exp(buf, n);
        if (sum >= 1e-30 && sum <= 1e30) return hint + log(sum);
    }
    double m = -INFINITY;
    for (int j = 0; j < n; j++) {
        z[j] = (g[j] - c[j]) * s;
        m = z[j] > m ? z[j] : m;
    }
    if (!isfinite(m)) return m;
    for (int j = 0; j < n; j++) buf[j] = (float)(z[j] - m);
    return m + log(sum_exp(buf, n));
}

typedef struct {
    int n;
    const double *C, *CT; /* costs by rows and by columns */
    double *f, *g, *z;
    float *buf;
} sinkhorn;

/* f_i from g: row i's sum exactly 1/n. Returns the L1 error the rows had
 * just before. */
static double sinkhorn_rows(sinkhorn *k, double eps)
{
    int n = k->n;
    double la = -log((double)n), s = 1 / eps, err = 0;
    for (int i = 0; i < n; i++) {
        double fi = eps * (la - lse_row(k->C + (size_t)i * n, k->g, n, s, la - k->f[i] * s, k->z, k->buf));
        err += fabs(expm1((k->f[i] - fi) * s)) / n; /* row i held exp((f_old - f_new) / eps) / n */
        k->f[i] = fi;
    }
    return err;
}

/* One Sinkhorn iteration at eps, rows then columns. Returns the L1 errors of
 * the row sums before the first half plus the column sums before the second:
 * zero only at the fixed point. */
static double sinkhorn_iter(sinkhorn *k, double eps)
{
    int n = k->n;
    double la = -log((double)n), s = 1 / eps, err = sinkhorn_rows(k, eps);
    for (int j = 0; j < n; j++) {
        double gj = eps * (la - lse_row(k->CT + (size_t)j * n, k->f, n, s, la - k->g[j] * s, k->z, k->buf));
        err += fabs(expm1((k->g[j] - gj) * s)) / n;
        k->g[j] = gj;
    }
    return err;
}

/* The plan P_ij (double, n x n) from the potentials and its column sums
 * (col, n); returns the larger L1 error of its row and column sums against
 * 1/n, measured on P itself. */
static double sinkhorn_fill(sinkhorn *k, double eps, double *P, double *col)
{
    int n = k->n;
    double s = 1 / eps, rows = 0;
    for (int j = 0; j < n; j++) col[j] = 0;
    for (int i = 0; i < n; i++) {
        const double *c = k->C + (size_t)i * n;
        double *p = P + (size_t)i * n, row = 0;
        /* exponents at most about 0: float holds those that matter to float's
         * relative accuracy, and below -100 their terms vanish anyway */
        for (int j = 0; j < n; j++) k->buf[j] = (float)((k->f[i] + k->g[j] - c[j]) * s);
        int j = 0;
        float e[FM_VL];
        for (; j + FM_VL <= n; j += FM_VL) {
            fm_vstore(e, fm_vexp(fm_vload(k->buf + j)));
            for (int q = 0; q < FM_VL; q++) p[j + q] = e[q];
        }
        for (; j < n; j++) p[j] = exp((double)k->buf[j]);
        for (j = 0; j < n; j++) row += p[j], col[j] += p[j];
        rows += fabs(row - 1.0 / n);
    }
    double cols = 0;
    for (int j = 0; j < n; j++) cols += fabs(col[j] - 1.0 / n);
    return fmax(rows, cols);
}

/* The semi-dual objective mean f + mean g (f from g, rows exact), which the
 * potentials maximise. */
static double semidual(const sinkhorn *k)
{
    double s = 0;
    for (int i = 0; i < k->n; i++) s += k->f[i] + k->g[i];
    return s / k->n;
}

/* Cholesky factor of the symmetric n x n matrix A in place (lower triangle);
 * 0 when A is not numerically positive definite. */
static int cholesky(double *A, int n)
{
    for (int j = 0; j < n; j++) {
        double *aj = A + (size_t)j * n, dj = aj[j];
        for (int q = 0; q < j; q++) dj -= aj[q] * aj[q];
        if (!(dj > 0)) return 0;
        dj = sqrt(dj);
        aj[j] = dj;
        for (int i = j + 1; i < n; i++) {
            double *ai = A + (size_t)i * n, v = ai[j];
            for (int q = 0; q < j; q++) v -= ai[q] * aj[q];
            ai[j] = v / dj;
        }
    }
    return 1;
}

/* x = A^-1 b for A = L L^T from cholesky(), in place on b. */
static void cholesky_solve(const double *L, int n, double *b)
{
    for (int i = 0; i < n; i++) {
        const double *li = L + (size_t)i * n;
        double v = b[i];
        for (int q = 0; q < i; q++) v -= li[q] * b[q];
        b[i] = v / li[i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double v = b[i];
        for (int q = i + 1; q < n; q++) v -= L[(size_t)q * n + i] * b[q];
        b[i] = v / L[(size_t)i * n + i];
    }
}

/* Where Sinkhorn crawls (eps small but the plan not yet a matching) Newton's
 * method on the semi-dual converges in a few steps. With f = f(g) making the
 * rows exact, the objective mean f + mean g has gradient 1/n - c_j (c the
 * column sums) and Hessian -(diag(c) - n P^T P) / eps, singular along the
 * constant vector (adding a constant to g and removing it from f changes
 * nothing), which the term 11^T / n^2 fixes without changing the step (the
 * gradient sums to 0). Each step halves its length until the objective
 * rises enough (Armijo). Returns the plan's marginal error after the step, or
 * a negative value when the system is singular or no step rises. P, M (n x n) and col, d (n) are scratch. */
static double newton_step(sinkhorn *k, double eps, double *P, double *M, double *col, double *d)
{
    int n = k->n;
    /* diag(c) - n P^T P is the Laplacian of the weights W_jl = n sum_i P_ij P_il
     * (the rows sum to 1/n): built from the weights it is positive
     * semi-definite to the last bit, where diag(c) - n P^T P would cancel */
    for (int j = 0; j < n; j++) memset(M + (size_t)j * n, 0, (size_t)(j + 1) * sizeof(double));
    for (int i = 0; i < n; i++) { /* the lower triangle, row i of P at a time */
        const double *p = P + (size_t)i * n;
        for (int j = 1; j < n; j++) {
            double pj = n * p[j], *mj = M + (size_t)j * n;
            if (pj == 0) continue;
            for (int l = 0; l < j; l++) mj[l] -= pj * p[l];
        }
    }
    for (int j = 0; j < n; j++) {
        double *mj = M + (size_t)j * n, deg = 0;
        for (int l = 0; l < j; l++) deg -= mj[l];
        for (int l = j + 1; l < n; l++) deg -= M[(size_t)l * n + j];
        mj[j] = deg + NEWTON_RIDGE * col[j];
    }
    for (int j = 0; j < n; j++) { /* the lower triangle is all cholesky() reads */
        double *mj = M + (size_t)j * n;
        for (int l = 0; l <= j; l++) mj[l] += 1.0 / ((double)n * n);
    }
    if (!cholesky(M, n)) return -1;
    double *grad = P; /* P is recomputed below: keep the gradient there */
    for (int j = 0; j < n; j++) grad[j] = 1.0 / n - col[j], d[j] = eps * grad[j];
    cholesky_solve(M, n, d);
    double slope = 0, phi0 = semidual(k);
    for (int j = 0; j < n; j++) slope += grad[j] * d[j];
    double *g0 = M; /* the factor is spent: keep g there */
    memcpy(g0, k->g, (size_t)n * sizeof(double));
    for (double tau = 1; tau > 1e-6; tau *= 0.5) { /* Armijo's rule on the semi-dual */
        for (int j = 0; j < n; j++) k->g[j] = g0[j] + tau * d[j];
        sinkhorn_rows(k, eps);
        double phi = semidual(k);
        if (phi >= phi0 + 1e-4 * tau * slope) return sinkhorn_fill(k, eps, P, col);
    }
    memcpy(k->g, g0, (size_t)n * sizeof(double));
    sinkhorn_rows(k, eps);
    sinkhorn_fill(k, eps, P, col);
    return -1;
}

fm_status fm_sinkhorn_plan(const float *x0, const float *x1, int n, int d, double eps, int max_iter, double tol,
                           double *plan, int *iters, double *err)
{
    if (n < 1 || d < 1 || !x0 || !x1 || !plan)
        return fm__fail(FM_ERR_ARG, "Sinkhorn needs points (got n %d, d %d) and a plan to fill", n, d);
    if (!(eps > 0) || !isfinite(eps)) return fm__fail(FM_ERR_ARG, "Sinkhorn needs a finite eps > 0 (got %g)", eps);
    if (max_iter < 1 || !(tol > 0)) return fm__fail(FM_ERR_ARG, "Sinkhorn needs max_iter >= 1 and tol > 0");
    size_t nn = (size_t)n * n;
    double *C = malloc(nn * sizeof(double)), *CT = malloc(nn * sizeof(double));
    double *f = calloc((size_t)n, sizeof(double)), *g = calloc((size_t)n, sizeof(double));
    double *z = malloc((size_t)n * sizeof(double)), *col = malloc((size_t)n * sizeof(double));
    double *dg = malloc((size_t)n * sizeof(double));
    float *buf = malloc((size_t)n * sizeof(float));
    int *match = malloc((size_t)n * sizeof(int));
    fm_status st = FM_OK;
    if (!C || !CT || !f || !g || !z || !col || !dg || !buf || !match) {
        st = fm__fail(FM_ERR_NOMEM, "out of memory for a %d x %d plan", n, n);
        goto out;
    }
    fm__sqdist p = {x0, x1, d};
    double cmax = 0;
    for (int i = 0; i < n; i++) {
        fm__sqdist_cost(&p, i, NULL, n, C + (size_t)i * n);
        for (int j = 0; j < n; j++) {
            double c = C[(size_t)i * n + j];
            if (!isfinite(c)) {
                st = fm__fail(FM_ERR_ARG, "Sinkhorn: the cost of pair (%d, %d) is not finite (a NaN or infinite "
                                          "coordinate)", i, j);
                goto out;
            }
            CT[(size_t)j * n + i] = c;
            cmax = c > cmax ? c : cmax;
        }
    }
    int it = 0;
    double e = 0;
    if (eps < SINKHORN_RESOLVABLE * cmax) { /* the eps -> 0 limit */
        st = fm__assignment_dense(n, C, match, NULL, NULL, NULL);
        if (st) goto out;
        memset(plan, 0, nn * sizeof(double));
        for (int i = 0; i < n; i++) plan[(size_t)i * n + match[i]] = 1.0 / n;
    } else {
        sinkhorn k = {n, C, CT, f, g, z, buf};
        double start = fmax(eps, cmax);
        if (eps < SINKHORN_FROM_MATCHING * cmax) {
            /* near the limit: start from the exact matching's dual prices,
             * u_i + v_j <= C_ij with equality on the matching, whose plan is
             * the matching plus exp(-slack / eps) elsewhere */
            st = fm__assignment_dense(n, C, match, f, g, NULL);
            if (st) goto out;
            for (int i = 0; i < n; i++) f[i] -= eps * log((double)n);
            start = eps;
        }
        /* annealing stages */
        for (double s = start; s > eps && it < max_iter; s = fmax(eps, 0.5 * s))
            for (int q = 0; q < SINKHORN_STAGE_ITERS && it < max_iter; q++) {
                it++;
                if (sinkhorn_iter(&k, s) < SINKHORN_STAGE_TOL) break;
            }
        /* the target: Sinkhorn while it converges quickly, then Newton */
        int newton = 0;
        for (int q = 0; it < max_iter; q++) {
            it++;
            if (sinkhorn_iter(&k, eps) < tol) break;
            if (q + 1 == SINKHORN_BEFORE_NEWTON && n <= SINKHORN_NEWTON_MAX_N) {
                newton = 1;
                break;
            }
        }
        sinkhorn_rows(&k, eps);
        e = sinkhorn_fill(&k, eps, plan, col);
        if (newton) {
            double *M = malloc(nn * sizeof(double));
            if (!M) {
                st = fm__fail(FM_ERR_NOMEM, "out of memory for a %d x %d Newton system", n, n);
                goto out;
            }
            while (e > tol && it < max_iter) {
                it++;
                double en = newton_step(&k, eps, plan, M, col, dg);
                if (en < 0) { /* no step: one of Sinkhorn's slow but sure ones, then Newton again */
                    sinkhorn_iter(&k, eps);
                    sinkhorn_rows(&k, eps);
                    en = sinkhorn_fill(&k, eps, plan, col);
                }
                e = en;
            }
            free(M);
        }
    }
    if (iters) *iters = e <= tol ? it : -1;
    if (err) *err = e;
out:
    free(C);
    free(CT);
    free(f);
    free(g);
    free(z);
    free(col);
    free(dg);
    free(buf);
    free(match);
    return st;
}

fm_status fm_sinkhorn_pairs(const float *x0, const float *x1, int n, int d, double eps, int max_iter, double tol,
                            fm_rng *r, int *i_out, int *j_out, int *iters)
{
    if (n < 1) return fm__fail(FM_ERR_ARG, "Sinkhorn needs points (got n %d)", n);
    size_t nn = (size_t)n * n;
    double *P = malloc(nn * sizeof(double));
    if (!P) return fm__fail(FM_ERR_NOMEM, "out of memory for a %d x %d plan", n, n);
    fm_status s = fm_sinkhorn_plan(x0, x1, n, d, eps, max_iter, tol, P, iters, NULL);
    if (s) goto out;
    /* draw n pairs from the plan (with replacement) through its running sum */
    double acc = 0;
    for (size_t q = 0; q < nn; q++) P[q] = acc += P[q];
    if (!(acc > 0) || !isfinite(acc)) {
        s = fm__fail(FM_ERR_NUMERIC, "Sinkhorn plan is degenerate (eps %g)", eps);
        goto out;
    }
    for (int k = 0; k < n; k++) {
        double q = fm_rng_uniform(r) * acc;
        size_t lo = 0, hi = nn - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (P[mid] > q) hi = mid;
            else lo = mid + 1;
        }
        i_out[k] = (int)(lo / (size_t)n);
        j_out[k] = (int)(lo % (size_t)n);
    }
out:
    free(P);
    return s;
}

/* ------------------------------------------------------------------ re-pairing a batch */

fm_status fm__coupling_check(const fm_path *p, fm_coupling c)
{
    if (c < 0 || c >= FM_COUPLING_COUNT) return fm__fail(FM_ERR_ARG, "unknown coupling %d", (int)c);
    if (c == FM_COUPLING_SB && !(p->kind == FM_PATH_SB && p->sigma > 0))
        return fm__fail(FM_ERR_ARG, "the Schrodinger-bridge coupling needs the sb path with sigma > 0 (its plan's "
                                    "regularisation is 2 sigma^2)");
    return FM_OK;
}

/* rows[i] = rows[idx[i]] for n rows of `size` bytes, through scratch. */
static void gather(void *rows, const int *idx, int n, size_t size, void *scratch)
{
    memcpy(scratch, rows, (size_t)n * size);
    for (int i = 0; i < n; i++) memcpy((char *)rows + (size_t)i * size, (char *)scratch + (size_t)idx[i] * size, size);
}

fm_status fm__couple(fm_coupling c, double reg, fm_rng *r, float *x0, float *x1, int *y0, int *y1, int n, int d,
                     int64_t *unconverged)
{
    if (c == FM_COUPLING_INDEPENDENT) return FM_OK;
    size_t row = (size_t)d * sizeof(float);
    float *scratch = malloc((size_t)n * row);
    int *pj = malloc((size_t)n * sizeof(int)), *pi = c == FM_COUPLING_SB ? malloc((size_t)n * sizeof(int)) : NULL;
    fm_status s = FM_OK;
    if (!scratch || !pj || (c == FM_COUPLING_SB && !pi)) {
        s = fm__fail(FM_ERR_NOMEM, "out of memory for pairing a batch of %d", n);
    } else if (c == FM_COUPLING_OT) { /* x1 (and its labels) permuted to the matching */
        s = fm_ot_pairing(x0, x1, n, d, pj);
        if (!s) {
            gather(x1, pj, n, row, scratch);
            if (y1) gather(y1, pj, n, sizeof(int), scratch);
        }
    } else { /* pairs drawn from the entropic plan */
        int it = 0;
        s = fm_sinkhorn_pairs(x0, x1, n, d, reg, FM_SINKHORN_MAX_ITER, 1e-4, r, pi, pj, &it);
        if (!s) {
            if (unconverged) *unconverged += it < 0;
            gather(x0, pi, n, row, scratch);
            gather(x1, pj, n, row, scratch);
            if (y0) gather(y0, pi, n, sizeof(int), scratch);
            if (y1) gather(y1, pj, n, sizeof(int), scratch);
        }
    }
    free(scratch);
    free(pi);
    free(pj);
    return s;
}
