/* likelihood.c - log-densities by the instantaneous change of variables.
 *
 * d/dt log p_t(x_t) = -div v_t(x_t), so integrating the ODE backwards from a
 * point x at t1 to x0 at t = 0 with l(t1) = 0 and dl/dt = div v gives
 *     log p_t1(x) = log p_0(x0) + l(0).
 * The augmented state [x | l] is integrated in double. The divergence is exact
 * (one vector-Jacobian product per dimension: e_j^T dv/dx picks column j) or
 * Hutchinson's estimate e^T (dv/dx) e with K probes fixed for the solve; each
 * probe keeps its own integral, so the K estimates give a standard error.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const div_names[FM_DIV_COUNT] = {"exact", "rademacher", "gaussian"};

const char *fm_div_name(fm_div_kind k) { return fm__name_of(div_names, FM_DIV_COUNT, k); }

typedef struct {
    fm_vjp_fn f;
    void *ctx;
    int n, d, k;       /* points, dimension, cotangents per evaluation */
    int exact;
    const float *e;    /* (k, n, d) cotangents */
    float *x, *v, *u;  /* (n d), (n d), (k n d) */
} aug;

static fm_status aug_field(void *ctx, double t, const double *y, double *dy, size_t total)
{
    aug *a = ctx;
    size_t nd = (size_t)a->n * a->d;
    (void)total;
    for (size_t i = 0; i < nd; i++) a->x[i] = (float)y[i];
    fm_status s = a->f(a->ctx, t, a->x, a->n, a->d, a->e, a->k, a->v, a->u);
    if (s) return s;
    for (size_t i = 0; i < nd; i++) dy[i] = a->v[i];
    double *dl = dy + nd;
    if (a->exact) {
        /* div_i = sum_j (e_j^T dv/dx)_ij with e_j the j-th unit vector */
        for (int i = 0; i < a->n; i++) {
            double s2 = 0;
            for (int j = 0; j < a->d; j++) s2 += a->u[(size_t)j * nd + (size_t)i * a->d + j];
            dl[i] = s2;
        }
    } else {
        /* probe k: e_k^T (dv/dx) e_k per point */
        for (int k = 0; k < a->k; k++)
            for (int i = 0; i < a->n; i++) {
                const float *uk = a->u + (size_t)k * nd + (size_t)i * a->d, *ek = a->e + (size_t)k * nd + (size_t)i * a->d;
                double s2 = 0;
                for (int j = 0; j < a->d; j++) s2 += (double)uk[j] * ek[j];
                dl[(size_t)k * a->n + i] = s2;
            }
    }
    return FM_OK;
}

fm_status fm_log_likelihood(fm_vjp_fn f, void *fctx, fm_logp0_fn p0, void *pctx, const float *x, int n, int d,
                            const fm_nll_config *c, double *logp, double *se, fm_solve_stats *st)
{
    if (n < 1 || d < 1) return fm__fail(FM_ERR_ARG, "likelihood of %d points of dimension %d", n, d);
    if (c->div < 0 || c->div >= FM_DIV_COUNT) return fm__fail(FM_ERR_ARG, "unknown divergence estimator");
    int exact = c->div == FM_DIV_EXACT;
    int probes = exact ? 1 : c->probes;
    if (!exact && (probes < 1 || probes > 1024))
        return fm__fail(FM_ERR_ARG, "Hutchinson needs 1 to 1024 probes, not %d", probes);
    if (exact && d > 4096) return fm__fail(FM_ERR_ARG, "exact divergence in %d dimensions is too costly: use Hutchinson", d);
    if (!c->grid || c->ngrid < 2 || c->grid[c->ngrid - 1] != 0.0 || !(c->grid[0] > 0.0))
        return fm__fail(FM_ERR_ARG, "the likelihood's time grid must run from the points' time (> 0) down to 0");
    int k = exact ? d : probes; /* cotangents per evaluation */
    size_t nd = (size_t)n * d, total = nd + (size_t)n * probes;
    if ((double)k * nd * 2 * sizeof(float) > 4e9)
        return fm__fail(FM_ERR_ARG, "%s divergence of %d points in %d dimensions needs %.1f GB: use fewer points%s",
                        exact ? "the exact" : "Hutchinson's", n, d, (double)k * nd * 2 * sizeof(float) / 1e9,
                        exact ? " or Hutchinson's estimate" : " or probes");
    aug a = {f, fctx, n, d, k, exact, NULL, NULL, NULL, NULL};
    float *e = malloc((size_t)k * nd * sizeof(float));
    a.x = malloc(nd * sizeof(float));
    a.v = malloc(nd * sizeof(float));
    a.u = malloc((size_t)k * nd * sizeof(float));
    double *y = malloc(total * sizeof(double)), *l0 = malloc((size_t)n * sizeof(double));
    fm_status s = FM_OK;
    if (!e || !a.x || !a.v || !a.u || !y || !l0) {
        s = fm__fail(FM_ERR_NOMEM, "out of memory for the likelihood of %d points", n);
        goto out;
    }
    if (exact) {
        memset(e, 0, (size_t)k * nd * sizeof(float));
        for (int j = 0; j < d; j++)
            for (int i = 0; i < n; i++) e[(size_t)j * nd + (size_t)i * d + j] = 1.0f;
    } else {
        fm_rng r;
        fm_rng_seed(&r, c->seed, FM_STREAM_NOISE);
        if (c->div == FM_DIV_HUTCH_GAUSSIAN) {
            fm_rng_normal_fill(&r, e, (size_t)k * nd, 0.0f, 1.0f);
        } else {
            for (size_t i = 0; i < (size_t)k * nd; i++) e[i] = (fm_rng_next(&r) >> 63) ? 1.0f : -1.0f;
        }
    }
    a.e = e;
    for (size_t i = 0; i < nd; i++) y[i] = x[i];
    memset(y + nd, 0, (size_t)n * probes * sizeof(double));
    s = fm__solve_d(&c->solver, aug_field, &a, c->grid, c->ngrid, y, total, NULL, NULL, st);
    if (s) goto out;
    for (size_t i = 0; i < nd; i++) a.x[i] = (float)y[i];
    if ((s = p0(pctx, a.x, n, d, l0))) goto out;
    for (int i = 0; i < n; i++) {
        double m = 0, v2 = 0;
        for (int p = 0; p < probes; p++) m += y[nd + (size_t)p * n + i];
        m /= probes;
        for (int p = 0; p < probes; p++) {
            double dd = y[nd + (size_t)p * n + i] - m;
            v2 += dd * dd;
        }
        logp[i] = l0[i] + m;
        if (se) se[i] = probes > 1 ? sqrt(v2 / (probes - 1) / probes) : 0.0;
    }
out:
    free(e);
    free(a.x);
    free(a.v);
    free(a.u);
    free(y);
    free(l0);
    return s;
}
