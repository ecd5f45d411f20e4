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

/* log sum_j exp(p_j - c_j) for float rows p and c of length n: the maximum,
 * then exp and a sum, in vectors (exp is float-accurate; the sum and the log
 * are double). */
static double lse_diff(const float *p, const float *c, int n)
{
    fm_vf mv = fm_vsplat(-INFINITY);
    int j = 0;
    for (; j + FM_VL <= n; j += FM_VL) mv = fm_vmax(mv, fm_vload(p + j) - fm_vload(c + j));
    float lanes[FM_VL], m = -INFINITY;
    fm_vstore(lanes, mv);
    for (int q = 0; q < FM_VL; q++) m = lanes[q] > m ? lanes[q] : m;
    for (int k = j; k < n; k++) m = p[k] - c[k] > m ? p[k] - c[k] : m;
    if (!isfinite(m)) return m;
    fm_vf acc = fm_vsplat(0.0f);
    for (j = 0; j + FM_VL <= n; j += FM_VL) acc += fm_vexp(fm_vload(p + j) - fm_vload(c + j) - m);
    fm_vstore(lanes, acc);
    double s = 0;
    for (int q = 0; q < FM_VL; q++) s += lanes[q];
    for (; j < n; j++) s += exp((double)p[j] - c[j] - m);
    return m + log(s);
}

fm_status fm_sinkhorn_pairs(const float *x0, const float *x1, int n, int d, double eps, int max_iter, double tol,
                            fm_rng *r, int *i_out, int *j_out, int *iters)
{
    if (n < 1 || !(eps > 0)) return fm__fail(FM_ERR_ARG, "Sinkhorn needs points and eps > 0 (got %g)", eps);
    size_t nn = (size_t)n * n;
    /* C / eps row by row and transposed, so both half-iterations read rows */
    float *C = malloc(nn * sizeof(float)), *CT = malloc(nn * sizeof(float));
    float *uf = calloc((size_t)n, sizeof(float)), *vf = calloc((size_t)n, sizeof(float));
    double *u = calloc((size_t)n, sizeof(double)), *v = calloc((size_t)n, sizeof(double));
    double *cdf = malloc(nn * sizeof(double));
    fm_status s = FM_OK;
    if (!C || !CT || !uf || !vf || !u || !v || !cdf) {
        s = fm__fail(FM_ERR_NOMEM, "out of memory for a %d x %d plan", n, n);
        goto out;
    }
    fm__sqdist p = {x0, x1, d};
    double *row = cdf; /* scratch for one row of costs */
    for (int i = 0; i < n; i++) {
        fm__sqdist_cost(&p, i, NULL, n, row);
        for (int j = 0; j < n; j++) C[(size_t)i * n + j] = CT[(size_t)j * n + i] = (float)(row[j] / eps);
    }
    /* log pi_ij = u_i + v_j - C_ij / eps with uniform marginals 1/n */
    double la = -log((double)n);
    int it = 0, converged = 0;
    for (; it < max_iter; it++) {
        for (int i = 0; i < n; i++) {
            u[i] = la - lse_diff(vf, C + (size_t)i * n, n);
            uf[i] = (float)u[i];
        }
        double err = 0;
        for (int j = 0; j < n; j++) {
            double lv = la - lse_diff(uf, CT + (size_t)j * n, n);
            /* after the u update the rows are exact; the column error is the
             * change this v update makes to the column mass */
            err += fabs(exp(v[j] - lv) - 1.0) / n;
            v[j] = lv;
            vf[j] = (float)lv;
        }
        if (err < tol) {
            it++;
            converged = 1;
            break;
        }
    }
    if (iters) *iters = converged ? it : -1;
    /* draw n pairs from the plan (with replacement) */
    double acc = 0;
    float e[FM_VL];
    for (int i = 0; i < n; i++) {
        const float *ci = C + (size_t)i * n;
        float ui = uf[i];
        int j = 0;
        for (; j + FM_VL <= n; j += FM_VL) {
            fm_vstore(e, fm_vexp(fm_vsplat(ui) + fm_vload(vf + j) - fm_vload(ci + j)));
            for (int q = 0; q < FM_VL; q++) cdf[(size_t)i * n + j + q] = acc += e[q];
        }
        for (; j < n; j++) cdf[(size_t)i * n + j] = acc += exp(u[i] + v[j] - (double)ci[j]);
    }
    if (!(acc > 0) || !isfinite(acc)) {
        s = fm__fail(FM_ERR_NUMERIC, "Sinkhorn plan is degenerate (eps %g too small for these costs?)", eps);
        goto out;
    }
    for (int k = 0; k < n; k++) {
        double q = fm_rng_uniform(r) * acc;
        size_t lo = 0, hi = nn - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cdf[mid] > q) hi = mid;
            else lo = mid + 1;
        }
        i_out[k] = (int)(lo / (size_t)n);
        j_out[k] = (int)(lo % (size_t)n);
    }
out:
    free(C);
    free(CT);
    free(uf);
    free(vf);
    free(u);
    free(v);
    free(cdf);
    return s;
}
