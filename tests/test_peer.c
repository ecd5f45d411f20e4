/* test_peer.c - the reference libraries' own tests, ported: what torchcfm
 * (tests/test_conditional_flow_matcher.py, test_optimal_transport.py,
 * test_time_t.py) and Meta's flow_matching (tests/path/, tests/solver/,
 * tests/utils/) assert, asserted of flowmatch's counterparts, one check per
 * peer assertion, each labelled with the peer's file and test.
 *
 * Conventions mapped (both peers and flowmatch run time from the source at
 * t = 0 to the data at t = 1, x0 the source, x1 the data):
 *   torchcfm ConditionalFlowMatcher(sigma)              path icfm, sigma; coupling independent
 *   torchcfm ExactOptimalTransportCFM(sigma)            path icfm, sigma; coupling ot
 *   torchcfm TargetConditionalFlowMatcher(sigma)        path ot, sigma_min = sigma; its noise eps
 *                                                       is our source draw x0 (x0 itself unused)
 *   torchcfm SchrodingerBridgeCFM(sigma, "sinkhorn")    path sb, sigma; coupling sb (reg 2 sigma^2)
 *   torchcfm VariancePreservingCFM(sigma)               path cosine, sigma
 *   flow_matching CondOTScheduler                       path ot (sigma_min 0) = poly with n = 1
 *   flow_matching PolynomialConvexScheduler(n)          path poly, exponent n
 *   flow_matching CosineScheduler                       path cosine (sigma 0)
 *   flow_matching LinearVPScheduler                     path linear-vp
 *   flow_matching VPScheduler(0.1, 20)                  path vp (beta 0.1 .. 20)
 *   flow_matching's target / epsilon / velocity          fm_predict x1 / eps / v
 * Where flowmatch deliberately differs the check tests flowmatch's documented
 * behaviour and says why: exact OT pairs each point once (torchcfm redraws
 * pairs with replacement from the plan), a path without extra noise draws no
 * eps (torchcfm draws one and multiplies it by 0), and values are compared
 * to float rounding where torchcfm compares bits of its own op order.
 * Peer assertions with no counterpart here (Python shapes and broadcasting,
 * autograd through the solvers, constructor attributes) are listed in
 * docs/testing.md, not faked.
 */
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 128 /* torchcfm's TEST_BATCH_SIZE */
#define SEED 1994

static const char *CFM = "torchcfm test_conditional_flow_matcher.py::test_fm";

/* Largest |got - ref| / (1 + |ref|). */
static double relmax(const float *got, const double *ref, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]) / (1 + fabs(ref[i]));
        e = isnan(d) ? INFINITY : fmax(e, d);
    }
    return e;
}

/* The times fm_batch_draw draws: u ~ U[0, 1) from r, mapped into (0, t_end). */
static void ref_times(fm_rng *r, double t_end, float *t, int n)
{
    fm_rng_uniform_fill(r, t, (size_t)n, 0.0f, 1.0f);
    for (int i = 0; i < n; i++) {
        float v = (float)(t_end * (t[i] + 0x1.0p-25));
        while ((double)v >= t_end) v = nextafterf(v, 0.0f);
        t[i] = v;
    }
}

enum { VP_CFM, T_CFM, SB_CFM, EXACT_OT_CFM, I_CFM, NMETHODS };
static const char *const method_names[NMETHODS] = {"vp_cfm", "t_cfm", "sb_cfm", "exact_ot_cfm", "i_cfm"};

static fm_path method_path(int m, double sigma, fm_coupling *c)
{
    fm_path p;
    *c = FM_COUPLING_INDEPENDENT;
    switch (m) {
    case VP_CFM: p = fm_path_default(FM_PATH_COSINE), p.sigma = sigma; break;
    case T_CFM: p = fm_path_default(FM_PATH_OT), p.sigma_min = sigma; break;
    case SB_CFM: p = fm_path_default(FM_PATH_SB), p.sigma = sigma, *c = FM_COUPLING_SB; break;
    case EXACT_OT_CFM: p = fm_path_default(FM_PATH_ICFM), p.sigma = sigma, *c = FM_COUPLING_OT; break;
    default: p = fm_path_default(FM_PATH_ICFM), p.sigma = sigma; break;
    }
    return p;
}

/* torchcfm's compute_xt_ut for one method, in double, from the paired points,
 * the times and the noise (for t_cfm the noise is x0, see above). */
static void ref_xt_ut(int m, double sigma, const float *x0, const float *x1, const float *t, const float *eps, int n,
                      int d, double *xt, double *ut)
{
    const double h = M_PI / 2;
    for (int i = 0; i < n; i++) {
        double ti = t[i];
        for (int j = 0; j < d; j++) {
            size_t k = (size_t)i * d + j;
            double a = x0[k], b = x1[k], e = eps ? eps[k] : 0;
            switch (m) {
            case VP_CFM:
                xt[k] = cos(h * ti) * a + sin(h * ti) * b + sigma * e;
                ut[k] = h * (cos(h * ti) * b - sin(h * ti) * a);
                break;
            case T_CFM: { /* eps is x0 */
                double st = 1 - (1 - sigma) * ti;
                xt[k] = ti * b + st * a;
                ut[k] = (b - (1 - sigma) * xt[k]) / st;
                break;
            }
            case SB_CFM: { /* torchcfm adds 1e-8 to 2 t (1 - t) to dodge t = 0; our t lies strictly in (0, 1) */
                double mu = ti * b + (1 - ti) * a;
                xt[k] = mu + sigma * sqrt(ti * (1 - ti)) * e;
                ut[k] = (1 - 2 * ti) / (2 * ti * (1 - ti)) * (xt[k] - mu) + b - a;
                break;
            }
            default:
                xt[k] = ti * b + (1 - ti) * a + sigma * e;
                ut[k] = b - a;
            }
        }
    }
}

/* test_fm: 5 methods x sigma {0.0, 5e-4, 0.5, 1.5, 0, 1} x shapes {[1], [2],
 * [1, 2], [3, 4, 5]} at batch 128; each case asserts ut, xt, eps and t. */
static void port_test_fm(void)
{
    const double sigmas[6] = {0.0, 5e-4, 0.5, 1.5, 0, 1};
    const char *sig_names[6] = {"0.0", "0.0005", "0.5", "1.5", "0", "1"};
    const int dims[4] = {1, 2, 2, 60};
    const char *shape_names[4] = {"[1]", "[2]", "[1, 2]", "[3, 4, 5]"};
    size_t cap = (size_t)B * 60;
    float *x0 = malloc(cap * sizeof(float)), *x1 = malloc(cap * sizeof(float)), *a0 = malloc(cap * sizeof(float)),
          *a1 = malloc(cap * sizeof(float)), *eps = malloc(cap * sizeof(float)), *xt = malloc(cap * sizeof(float)),
          *ut = malloc(cap * sizeof(float)), *e_ref = malloc(cap * sizeof(float));
    double *xt_ref = malloc(cap * sizeof(double)), *ut_ref = malloc(cap * sizeof(double));
    float t[B], t_ref[B];
    fm_rng data;
    fm_rng_seed(&data, 7, FM_STREAM_DATA);
    for (int m = 0; m < NMETHODS; m++)
        for (int q = 0; q < 6; q++)
            for (int s = 0; s < 4; s++) {
                int d = dims[s];
                size_t nd = (size_t)B * d;
                char label[200];
                snprintf(label, sizeof label, "%s[%s-%s-%s]", CFM, method_names[m], sig_names[q], shape_names[s]);
                fm_coupling cp;
                fm_path p = method_path(m, sigmas[q], &cp);
                /* random_samples: two standard normal batches */
                fm_rng_normal_fill(&data, x0, nd, 0, 1);
                fm_rng_normal_fill(&data, x1, nd, 0, 1);
                memcpy(a0, x0, nd * sizeof(float));
                memcpy(a1, x1, nd * sizeof(float));
                fm_rng r;
                fm_rng_seed(&r, SEED, FM_STREAM_NOISE);
                fm_batch b = {a0, a1, NULL, NULL, t, eps, xt, ut};
                fm_status st = fm_batch_draw(&p, cp, &r, B, d, 0, &b);
                if (m == SB_CFM && !(sigmas[q] > 0)) { /* pytest.raises(ValueError) */
                    t_check(st == FM_ERR_ARG && strstr(fm_last_error(), "sigma > 0"), "%s raises: %s", label,
                            fm_last_error());
                    continue;
                }
                if (st) {
                    t_check(0, "%s: %s", label, fm_last_error());
                    continue;
                }
                /* the reference: reseed, redo the pairing with the same stream
                 * (sample_plan), then the times (torch.rand) and the noise
                 * (randn_like), as torchcfm's test does */
                fm_rng_seed(&r, SEED, FM_STREAM_NOISE);
                int pi[B], pj[B], it = 0, pair_ok = 1;
                if (cp == FM_COUPLING_OT) {
                    pair_ok = fm_ot_pairing(x0, x1, B, d, pj) == FM_OK;
                    for (int i = 0; i < B; i++) pi[i] = i;
                } else if (cp == FM_COUPLING_SB) {
                    pair_ok = fm_sinkhorn_pairs(x0, x1, B, d, 2 * sigmas[q] * sigmas[q], FM_SINKHORN_MAX_ITER, 1e-4, &r,
                                                pi, pj, &it) == FM_OK && it >= 0;
                } else {
                    for (int i = 0; i < B; i++) pi[i] = pj[i] = i;
                }
                for (int i = 0; i < B; i++) {
                    pair_ok &= !memcmp(a0 + (size_t)i * d, x0 + (size_t)pi[i] * d, (size_t)d * sizeof(float));
                    pair_ok &= !memcmp(a1 + (size_t)i * d, x1 + (size_t)pj[i] * d, (size_t)d * sizeof(float));
                }
                ref_times(&r, p.t_end, t_ref, B);
                int noisy = fm__path_extra_noise(&p);
                if (noisy) fm_rng_normal_fill(&r, e_ref, nd, 0, 1);
                else memset(e_ref, 0, nd * sizeof(float));
                ref_xt_ut(m, sigmas[q], a0, a1, t, eps, B, d, xt_ref, ut_ref);
                double eu = relmax(ut, ut_ref, nd), ex = relmax(xt, xt_ref, nd);
                /* torch.all(ut.eq(computed_ut)): bit equality of torchcfm's own op
                 * order; here float rounding of the double reference */
                t_check(pair_ok && eu < 2e-6, "%s ut (max error %.2e%s)", label, eu, pair_ok ? "" : ", pairs differ");
                t_check(ex < 2e-6, "%s xt (max error %.2e)", label, ex);
                /* torch.all(eps.eq(epsilon)): the seeded normal draw after the
                 * times; a path without extra noise draws none (eps = 0) */
                t_check(!memcmp(eps, e_ref, nd * sizeof(float)), "%s eps (%s)", label,
                        noisy ? "the seeded draw after the times" : "zero: the path draws no extra noise");
                /* any(t_given_init == t): the seeded uniform times */
                t_check(!memcmp(t, t_ref, sizeof t), "%s t equals the seeded uniform draw", label);
            }
    free(x0), free(x1), free(a0), free(a1), free(eps), free(xt), free(ut), free(e_ref), free(xt_ref), free(ut_ref);
}

/* Squared Euclidean costs and Euclidean distances as fm_cost_fn. */
typedef struct {
    const float *a, *b;
    int d, power;
} cost_ctx;

static void cost_fn(void *ctx, int i, const int *cols, int ncols, double *out)
{
    const cost_ctx *c = ctx;
    for (int k = 0; k < ncols; k++) {
        int j = cols ? cols[k] : k;
        double s = 0;
        for (int q = 0; q < c->d; q++) {
            double v = (double)c->a[(size_t)i * c->d + q] - c->b[(size_t)j * c->d + q];
            s += v * v;
        }
        out[k] = c->power == 2 ? s : sqrt(s);
    }
}

/* An optimality certificate for an assignment: dual prices u_i + v_j <= C_ij
 * everywhere, with equality on the assignment, so no plan costs less (linear
 * programming duality; POT's emd solves the same linear programme). Returns
 * the largest violation. */
static double certificate(const cost_ctx *c, int n, const int *x, const double *u, const double *v)
{
    double worst = 0, *row = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        cost_fn((void *)c, i, NULL, n, row);
        for (int j = 0; j < n; j++) worst = fmax(worst, u[i] + v[j] - row[j]);
        worst = fmax(worst, fabs(u[i] + v[x[i]] - row[x[i]]));
    }
    free(row);
    return worst;
}

static void port_test_optimal_transport(void)
{
    const char *F = "torchcfm test_optimal_transport.py";
    int d = 8; /* randn(128, 2, 2, 2) flattened */
    float *x0 = malloc((size_t)B * d * sizeof(float)), *x1 = malloc((size_t)B * d * sizeof(float));
    float *a0 = malloc((size_t)B * d * sizeof(float)), *a1 = malloc((size_t)B * d * sizeof(float));
    float t[B], xt[B * 8], ut[B * 8];
    fm_rng r;
    fm_rng_seed(&r, 1980, FM_STREAM_DATA);
    fm_rng_normal_fill(&r, x0, (size_t)B * d, 0, 1);
    fm_rng_normal_fill(&r, x1, (size_t)B * d, 0, 1);

    /* test_sample_map: the exact plan's nonzeros each drawn exactly once
     * (replace=False); flowmatch's OT coupling is that permutation itself */
    memcpy(a0, x0, (size_t)B * d * sizeof(float));
    memcpy(a1, x1, (size_t)B * d * sizeof(float));
    fm_path p = fm_path_default(FM_PATH_ICFM);
    fm_batch b = {a0, a1, NULL, NULL, t, NULL, xt, ut};
    int seen[B] = {0}, once = fm_batch_draw(&p, FM_COUPLING_OT, &r, B, d, 0, &b) == FM_OK;
    for (int i = 0; once && i < B; i++) {
        int found = -1;
        for (int j = 0; j < B && found < 0; j++)
            if (!memcmp(a1 + (size_t)i * d, x1 + (size_t)j * d, (size_t)d * sizeof(float))) found = j;
        once &= found >= 0 && seen[found]++ == 0 && !memcmp(a0 + (size_t)i * d, x0 + (size_t)i * d, (size_t)d * sizeof(float));
    }
    t_check(once, "%s::test_sample_map: the OT coupling uses every point of the 128 exactly once", F);

    /* test_get_map: the exact plan equals POT's emd; here its optimality
     * certificate (the emd plan is the unique optimum for points in general
     * position) */
    int x[B];
    double u[B], v[B], total = 0;
    cost_ctx c2 = {x0, x1, d, 2}, c1 = {x0, x1, d, 1};
    int match[B];
    fm_status s = fm_assignment(B, cost_fn, &c2, x, u, v, &total);
    double viol = s ? INFINITY : certificate(&c2, B, x, u, v);
    int same = fm_ot_pairing(x0, x1, B, d, match) == FM_OK && !memcmp(match, x, sizeof x);
    t_check(viol < 1e-9 && same, "%s::test_get_map: the OT matching is optimal (dual certificate, largest violation "
            "%.1e) and fm_ot_pairing returns it", F, viol);

    /* test_sample_plan: sample_plan equals get_map + sample_map under the same
     * seed; here fm_batch_draw's sb pairs equal fm_sinkhorn_pairs' under one seed */
    memcpy(a0, x0, (size_t)B * d * sizeof(float));
    memcpy(a1, x1, (size_t)B * d * sizeof(float));
    fm_path sb = fm_path_default(FM_PATH_SB);
    fm_batch bs = {a0, a1, NULL, NULL, t, NULL, xt, ut};
    float *e = malloc((size_t)B * d * sizeof(float));
    bs.eps = e;
    int pi[B], pj[B], it = 0, eq = 1;
    fm_rng r1, r2;
    fm_rng_seed(&r1, 1980, FM_STREAM_NOISE);
    fm_rng_seed(&r2, 1980, FM_STREAM_NOISE);
    eq = fm_batch_draw(&sb, FM_COUPLING_SB, &r1, B, d, 0, &bs) == FM_OK &&
         fm_sinkhorn_pairs(x0, x1, B, d, 2 * sb.sigma * sb.sigma, FM_SINKHORN_MAX_ITER, 1e-4, &r2, pi, pj, &it) == FM_OK;
    for (int i = 0; eq && i < B; i++)
        eq = !memcmp(a0 + (size_t)i * d, x0 + (size_t)pi[i] * d, (size_t)d * sizeof(float)) &&
             !memcmp(a1 + (size_t)i * d, x1 + (size_t)pj[i] * d, (size_t)d * sizeof(float));
    t_check(eq, "%s::test_sample_plan: the batch's plan pairs equal fm_sinkhorn_pairs' under the same seed", F);

    /* test_wasserstein: W2 = sqrt(emd2 on squared costs), W1 = emd2 on
     * distances, the entropic cost against POT's sinkhorn2, an unknown method
     * refused */
    double w2 = NAN;
    s = fm_w2_exact(x0, x1, B, d, &w2, NULL);
    double dual = 0;
    for (int i = 0; i < B; i++) dual += u[i] + v[i];
    t_check(!s && fabs(w2 * w2 - dual / B) < 1e-9 * (1 + dual / B),
            "%s::test_wasserstein W2: fm_w2_exact %.9f = sqrt of the LP optimum (dual value %.9f)", F, w2,
            sqrt(dual / B));
    double t1 = 0;
    s = fm_assignment(B, cost_fn, &c1, x, u, v, &t1);
    viol = s ? INFINITY : certificate(&c1, B, x, u, v);
    t_check(viol < 1e-9, "%s::test_wasserstein W1: the assignment on distances is optimal (W1 %.6f, largest dual "
            "violation %.1e)", F, t1 / B, viol);
    /* sinkhorn2 at reg 0.01 on distances: flowmatch's entropic plan is on
     * squared costs, so the check is its defining bound there: the plan's cost
     * lies between W2^2 and W2^2 + eps log n */
    double *P = malloc((size_t)B * B * sizeof(double)), cost = 0, eps = 0.01, row[B];
    s = fm_sinkhorn_plan(x0, x1, B, d, eps, FM_SINKHORN_MAX_ITER, 1e-6, P, &it, NULL);
    for (int i = 0; !s && i < B; i++) {
        cost_fn(&c2, i, NULL, B, row);
        for (int j = 0; j < B; j++) cost += P[(size_t)i * B + j] * row[j];
    }
    t_check(!s && it >= 0 && cost >= w2 * w2 - 1e-9 && cost <= w2 * w2 + eps * log(B),
            "%s::test_wasserstein entropic: plan cost %.6f within [W2^2, W2^2 + eps log n] = [%.6f, %.6f]", F, cost,
            w2 * w2, w2 * w2 + eps * log(B));
    t_check(fm_coupling_from_name("noname") < 0, "%s::test_wasserstein: an unknown method is refused", F);
    free(P), free(e), free(x0), free(x1), free(a0), free(a1);
}

/* t_given: the times a batch of 128 two-dimensional points draws from the
 * seed, after its pairing's draws (the sb plan's). */
static void seeded_times(const fm_path *p, fm_coupling cp, const float *x0, const float *x1, float *tg)
{
    fm_rng g;
    fm_rng_seed(&g, SEED, FM_STREAM_NOISE);
    int pi[B], pj[B], it;
    if (cp == FM_COUPLING_SB)
        fm_sinkhorn_pairs(x0, x1, B, 2, 2 * p->sigma * p->sigma, FM_SINKHORN_MAX_ITER, 1e-4, &g, pi, pj, &it);
    ref_times(&g, p->t_end, tg, B);
}

/* test_time_t: with the same seed, the times drawn inside equal a seeded
 * torch.rand(128) (t_given); and the labelled variant carries labels with
 * their points. */
static void port_test_time_t(void)
{
    const char *F = "torchcfm test_time_t.py";
    struct {
        const char *name;
        int m;
        double sigma;
    } fms[5] = {{"ConditionalFlowMatcher(0)", I_CFM, 0},
                {"ExactOptimalTransportConditionalFlowMatcher(0)", EXACT_OT_CFM, 0},
                {"TargetConditionalFlowMatcher(0)", T_CFM, 0},
                {"SchrodingerBridgeConditionalFlowMatcher(0.1)", SB_CFM, 0.1},
                {"VariancePreservingConditionalFlowMatcher(0)", VP_CFM, 0}};
    float x0[B * 2], x1[B * 2], a0[B * 2], a1[B * 2], t[B], tg[B], eps[B * 2], xt[B * 2], ut[B * 2];
    fm_rng r;
    fm_rng_seed(&r, 5, FM_STREAM_DATA);
    for (int k = 0; k < 5; k++) {
        fm_rng_normal_fill(&r, x0, B * 2, 0, 1);
        fm_rng_normal_fill(&r, x1, B * 2, 0, 1);
        fm_coupling cp;
        fm_path p = method_path(fms[k].m, fms[k].sigma, &cp);
        seeded_times(&p, cp, x0, x1, tg);
        memcpy(a0, x0, sizeof x0), memcpy(a1, x1, sizeof x1);
        fm_rng g;
        fm_rng_seed(&g, SEED, FM_STREAM_NOISE);
        fm_batch b = {a0, a1, NULL, NULL, t, eps, xt, ut};
        int ok = fm_batch_draw(&p, cp, &g, B, 2, 0, &b) == FM_OK && !memcmp(t, tg, sizeof t);
        /* and the batch with t given keeps it */
        memcpy(a0, x0, sizeof x0), memcpy(a1, x1, sizeof x1);
        fm_rng_seed(&g, SEED, FM_STREAM_NOISE);
        ok &= fm_batch_draw(&p, cp, &g, B, 2, 1, &b) == FM_OK && !memcmp(t, tg, sizeof t);
        t_check(ok, "%s::test_random_Tensor_t[%s]: drawn t equals the seeded t_given", F, fms[k].name);
    }
    /* test_guided_random_Tensor_t: ExactOT(0) and SB(0.1) x return_noise; the
     * labels are each point's row, so a pair's labels name its rows */
    for (int k = 0; k < 4; k++) {
        int m = k < 2 ? EXACT_OT_CFM : SB_CFM, rn = k % 2 == 0, y0[B], y1[B];
        fm_coupling cp;
        fm_path p = method_path(m, m == SB_CFM ? 0.1 : 0, &cp);
        fm_rng_normal_fill(&r, x0, B * 2, 0, 1);
        fm_rng_normal_fill(&r, x1, B * 2, 0, 1);
        memcpy(a0, x0, sizeof x0), memcpy(a1, x1, sizeof x1);
        for (int i = 0; i < B; i++) y0[i] = y1[i] = i;
        seeded_times(&p, cp, x0, x1, tg);
        fm_rng g;
        fm_rng_seed(&g, SEED, FM_STREAM_NOISE);
        fm_batch b = {a0, a1, y0, y1, t, rn || fm__path_extra_noise(&p) ? eps : NULL, xt, ut};
        int ok = fm_batch_draw(&p, cp, &g, B, 2, 0, &b) == FM_OK && !memcmp(t, tg, sizeof t);
        for (int i = 0; ok && i < B; i++)
            ok = !memcmp(a0 + 2 * i, x0 + 2 * y0[i], 2 * sizeof(float)) && !memcmp(a1 + 2 * i, x1 + 2 * y1[i], 2 * sizeof(float));
        t_check(ok, "%s::test_guided_random_Tensor_t[%s, return_noise=%s]: t equals the seeded draw, labels travel "
                "with their points", F, m == SB_CFM ? "SB(0.1)" : "ExactOT(0)", rn ? "True" : "False");
    }
}

/* ------------------------------------------------------------------ flow_matching: paths */

static void port_test_path(void)
{
    const char *F = "flow_matching tests/path/test_path.py";
    float x0[50], x1[50], c0[50], c1[50], t[10], tc[10], xt[50], ut[50];
    fm_rng r;
    fm_rng_seed(&r, 11, FM_STREAM_DATA);
    fm_rng_normal_fill(&r, x0, 50, 0, 1);
    fm_rng_normal_fill(&r, x1, 50, 0, 1);
    fm_rng_uniform_fill(&r, t, 10, 0, 1);
    memcpy(c0, x0, sizeof x0), memcpy(c1, x1, sizeof x1), memcpy(tc, t, sizeof t);
    fm_path ot = fm_path_default(FM_PATH_OT);
    fm_batch b = {c0, c1, NULL, NULL, tc, NULL, xt, ut};
    int ok = fm_batch_draw(&ot, FM_COUPLING_INDEPENDENT, &r, 10, 5, 1, &b) == FM_OK;
    /* test_affine_prob_path_sample: (sample.t == t), (x_0 == x_0), (x_1 == x_1)
     * (the shape assertions have no counterpart: C arrays are the caller's) */
    t_check(ok && !memcmp(tc, t, sizeof t), "%s::test_affine_prob_path_sample: t kept", F);
    t_check(ok && !memcmp(c0, x0, sizeof x0), "%s::test_affine_prob_path_sample: x_0 kept", F);
    t_check(ok && !memcmp(c1, x1, sizeof x1), "%s::test_affine_prob_path_sample: x_1 kept", F);
    /* test_assert_sample_shape: a t the batch cannot use is refused (in C,
     * times outside [0, t_end] rather than a wrong length) */
    tc[3] = 1.5f;
    t_check(fm_batch_draw(&ot, FM_COUPLING_INDEPENDENT, &r, 10, 5, 1, &b) == FM_ERR_ARG, "%s::test_assert_sample_shape: "
            "an unusable t refused: %s", F, fm_last_error());
    /* test_cond_ot_prob_path_sample: CondOTProbPath = AffineProbPath(CondOT):
     * here the ot path (sigma_min 0) and the poly path with n = 1 */
    float xt2[50], ut2[50];
    fm_path poly = fm_path_default(FM_PATH_POLY);
    poly.exponent = 1;
    memcpy(tc, t, sizeof t), memcpy(c0, x0, sizeof x0), memcpy(c1, x1, sizeof x1);
    fm_batch b2 = {c0, c1, NULL, NULL, tc, NULL, xt2, ut2};
    ok = fm_batch_draw(&ot, FM_COUPLING_INDEPENDENT, &r, 10, 5, 1, &b) == FM_OK &&
         fm_batch_draw(&poly, FM_COUPLING_INDEPENDENT, &r, 10, 5, 1, &b2) == FM_OK;
    double e = ok ? t_relerr(xt2, xt, 50) : INFINITY;
    t_check(e < 1e-6, "%s::test_cond_ot_prob_path_sample: ot and poly(1) give the same x_t (error %.1e)", F, e);
    /* the conversions, round trips at random t (flow_matching: float64, allclose
     * rtol 1e-5; here float through the path's coefficients) */
    const struct {
        const char *name;
        fm_predict a, b;
    } trips[3] = {{"test_to_velocity", FM_PREDICT_X1, FM_PREDICT_V},
                  {"test_to_epsilon", FM_PREDICT_X1, FM_PREDICT_EPS},
                  {"test_epsilson_velocity", FM_PREDICT_V, FM_PREDICT_EPS}};
    for (int k = 0; k < 3; k++) {
        double worst = 0;
        for (int i = 0; i < 10; i++) {
            float y[5], z[5], w[5], xx[5];
            double ti = 0.05 + 0.9 * t[i];
            fm_rng_normal_fill(&r, y, 5, 0, 1);
            fm_rng_normal_fill(&r, xx, 5, 0, 1);
            fm_predict_convert(&ot, ti, trips[k].a, trips[k].b, xx, y, z, 5);
            fm_predict_convert(&ot, ti, trips[k].b, trips[k].a, xx, z, w, 5);
            for (int j = 0; j < 5; j++) worst = fmax(worst, fabs(w[j] - y[j]) / (1e-5 * fabs(y[j]) + 1e-6));
        }
        t_check(worst <= 1, "%s::%s: %s -> %s -> %s round trip within rtol 1e-5 + atol 1e-6 (worst %.2f of it)", F,
                trips[k].name, fm_predict_name(trips[k].a), fm_predict_name(trips[k].b), fm_predict_name(trips[k].a),
                worst);
    }
    /* TestGeodesicProbPath: points on the sphere's geodesic have norm 1; on the
     * torus every coordinate stays below 2 pi */
    float s0[15], s1[15], st[15], sv[15], g0[10], g1[10], gt[10], gv[10], tt[5];
    fm_rng_normal_fill(&r, s0, 15, 0, 1);
    fm_rng_uniform_fill(&r, s1, 15, 0, 1);
    fm_manifold_project(FM_MANIFOLD_SPHERE, s0, 5);
    fm_manifold_project(FM_MANIFOLD_SPHERE, s1, 5);
    fm_rng_uniform_fill(&r, tt, 5, 0, 1);
    fm_manifold_geodesic(FM_MANIFOLD_SPHERE, s0, s1, tt, 5, st, sv);
    double dn = 0;
    for (int i = 0; i < 5; i++) dn = fmax(dn, fabs(sqrt(st[3 * i] * st[3 * i] + st[3 * i + 1] * st[3 * i + 1] + st[3 * i + 2] * st[3 * i + 2]) - 1));
    t_check(dn < 1e-5, "%s::TestGeodesicProbPath::test_sphere: |x_t| = 1 (largest error %.1e)", F, dn);
    for (int i = 0; i < 5; i++) { /* flow_matching's torus coordinates, wrapped */
        g1[2 * i] = 4 * tt[i] - 2;
        g1[2 * i + 1] = tt[(i + 1) % 5] - 2 * (i % 2) + fmodf(floorf(g1[2 * i]), 2);
    }
    fm_rng_normal_fill(&r, g0, 10, 0, 1);
    fm_manifold_project(FM_MANIFOLD_TORUS, g0, 5);
    fm_manifold_project(FM_MANIFOLD_TORUS, g1, 5);
    fm_manifold_geodesic(FM_MANIFOLD_TORUS, g0, g1, tt, 5, gt, gv);
    int below = 1;
    for (int i = 0; i < 10; i++) below &= gt[i] >= 0 && gt[i] < 2 * M_PI;
    t_check(below, "%s::TestGeodesicProbPath::test_torus: x_t < 2 pi", F);
}

/* test_scheduler.py: at t = 0.1, 0.5, 0.9 the snr inverse recovers t (atol
 * 1e-5), and for the convex schedulers kappa's inverse (kappa = alpha,
 * snr = kappa / (1 - kappa)); the four outputs' shapes have no counterpart:
 * their values are checked against finite differences instead */
static void port_test_scheduler(void)
{
    const char *F = "flow_matching tests/path/test_scheduler.py";
    const struct {
        const char *test;
        fm_path_kind k;
        double n;
        int convex;
    } sch[5] = {{"test_cond_ot_scheduler", FM_PATH_OT, 0, 1},
                {"test_cosine_scheduler", FM_PATH_COSINE, 0, 0},
                {"test_scheduler_vp", FM_PATH_VP, 0, 0},
                {"test_scheduler_vp_linear", FM_PATH_LINEAR_VP, 0, 0},
                {"test_polynomial_convex_scheduler", FM_PATH_POLY, 2, 1}};
    const double ts[3] = {0.1, 0.5, 0.9};
    for (int k = 0; k < 5; k++) {
        fm_path p = fm_path_default(sch[k].k);
        if (sch[k].n) p.exponent = sch[k].n;
        double esnr = 0, ekappa = 0, ed = 0;
        for (int i = 0; i < 3; i++) {
            double t = ts[i];
            esnr = fmax(esnr, fabs(fm_path_snr_inverse(&p, fm_path_snr(&p, t)) - t));
            fm_path_coef c, cp, cm;
            fm_path_coef_at(&p, t, &c);
            /* convex: alpha = kappa and sigma = 1 - kappa, so snr = kappa / (1 - kappa)
             * and kappa's inverse is the snr inverse of that */
            if (sch[k].convex)
                ekappa = fmax(ekappa, fmax(fabs(c.a + c.b - 1), fabs(fm_path_snr_inverse(&p, c.a / (1 - c.a)) - t)));
            double h = 1e-6;
            fm_path_coef_at(&p, t + h, &cp);
            fm_path_coef_at(&p, t - h, &cm);
            ed = fmax(ed, fmax(fabs((cp.a - cm.a) / (2 * h) - c.da), fabs((cp.b - cm.b) / (2 * h) - c.db)) /
                              (1 + fabs(c.da) + fabs(c.db)));
        }
        t_check(esnr < 1e-5, "%s::%s: snr_inverse(alpha / sigma) recovers t (error %.1e)", F, sch[k].test, esnr);
        if (sch[k].convex)
            t_check(ekappa < 1e-5, "%s::%s: alpha + sigma = 1 (kappa = alpha) and kappa_inverse(kappa) recovers t (error "
                    "%.1e)", F, sch[k].test, ekappa);
        t_check(ed < 1e-6, "%s::%s: d_alpha_t and d_sigma_t against central differences (error %.1e)", F,
                sch[k].test, ed);
    }
}

/* u(x, t) = x t^2 (test_schedule_transform.py's DummyModel) */
static fm_status dummy_xt2(void *ctx, double t, const float *x, float *v, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) v[i] = (float)(x[i] * t * t);
    return FM_OK;
}

/* test_schedule_transform.py: the CondOT-trained field sampled along the
 * cosine schedule ends where the original does: x0 exp(1/3) (Euler, 1000
 * steps, atol 1e-2; the peer compares one batch row, this all ten) */
static void port_test_schedule_transform(void)
{
    float x[20], y[20];
    fm_rng r;
    fm_rng_seed(&r, 3, FM_STREAM_NOISE);
    fm_rng_normal_fill(&r, x, 20, 0, 1);
    memcpy(y, x, sizeof x);
    double *grid = malloc(1001 * sizeof(double));
    fm_time_grid_uniform(grid, 1000, 0, 1);
    fm_solver_config eu = fm_solver_config_default(FM_SOLVER_EULER);
    fm_path from = fm_path_default(FM_PATH_OT), to = fm_path_default(FM_PATH_COSINE);
    fm_schedule_transform tf = {&from, &to, dummy_xt2, NULL};
    int ok = fm_solve(&eu, dummy_xt2, NULL, grid, 1001, x, 20, NULL, NULL, NULL) == FM_OK &&
             fm_solve(&eu, fm_schedule_transform_field, &tf, grid, 1001, y, 20, NULL, NULL, NULL) == FM_OK;
    double e = 0;
    for (int i = 0; i < 20; i++) e = fmax(e, fabs(x[i] - y[i]));
    t_check(ok && e < 1e-2, "flow_matching tests/path/test_schedule_transform.py::test_schedule_transformation: "
            "CondOT -> Cosine ends at the same points (largest difference %.2e)", e);
    free(grid);
}

/* ------------------------------------------------------------------ flow_matching: solvers */

static fm_status field_3t2(void *ctx, double t, const float *x, float *v, size_t n)
{
    (void)ctx, (void)x;
    for (size_t i = 0; i < n; i++) v[i] = (float)(3 * t * t);
    return FM_OK;
}

static fm_status field_const(void *ctx, double t, const float *x, float *v, size_t n)
{
    (void)t, (void)x;
    for (size_t i = 0; i < n; i++) v[i] = (float)*(const double *)ctx;
    return FM_OK;
}

/* x(1) from x_init (2 values) over [0, 1]: fixed methods take 1000 steps
 * (step_size 0.001), dopri5 adapts (step_size None). */
static int solve_01(fm_solver_kind k, fm_field_fn f, void *ctx, float *x, long *nfe)
{
    static double grid[1001];
    fm_time_grid_uniform(grid, 1000, 0, 1);
    fm_solver_config c = fm_solver_config_default(k);
    double g2[2] = {0, 1};
    fm_solve_stats st;
    int ok = fm_solve(&c, f, ctx, k == FM_SOLVER_DOPRI5 ? g2 : grid, k == FM_SOLVER_DOPRI5 ? 2 : 1001, x, 2, NULL, NULL,
                      &st) == FM_OK;
    if (nfe) *nfe = st.nfe;
    return ok;
}

/* v(t, x) = a with vector-Jacobian products 0: the likelihood tests' fields. */
typedef struct {
    double a;  /* constant: v = a */
    int t2;    /* 1: v = 3 t^2 instead */
} lik_field;

static fm_status lik_vjp(void *ctx, double t, const float *x, int n, int d, const float *e, int k, float *v, float *u)
{
    const lik_field *f = ctx;
    (void)x, (void)e;
    for (int i = 0; i < n * d; i++) v[i] = (float)(f->t2 ? 3 * t * t : f->a);
    if (u) memset(u, 0, (size_t)k * n * d * sizeof(float));
    return FM_OK;
}

/* log_p0(x) = -0.5 |x|^2 */
static fm_status logp0_half(void *ctx, const float *x0, int n, int d, double *out)
{
    (void)ctx;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x0[i * d + j] * x0[i * d + j];
        out[i] = -0.5 * s;
    }
    return FM_OK;
}

/* log-likelihood of x1 (1 point of 2) by Euler with step 0.1 from t = 1 to 0 */
static double loglik(lik_field *f, const float *x1, fm_div_kind div)
{
    double grid[11], lp = NAN;
    fm_time_grid_uniform(grid, 10, 1, 0);
    fm_nll_config c = {fm_solver_config_default(FM_SOLVER_EULER), grid, 11, div, 1, 3};
    return fm_log_likelihood(lik_vjp, f, logp0_half, NULL, x1, 1, 2, &c, &lp, NULL, NULL) == FM_OK ? lp : NAN;
}

static void port_test_ode_solver(void)
{
    const char *F = "flow_matching tests/solver/test_ode_solver.py";
    /* test_sample: a constant field [1, 1] from 0, Euler step 0.1 */
    double one = 1;
    float x[2] = {0, 0};
    double grid[11];
    fm_time_grid_uniform(grid, 10, 0, 1);
    fm_solver_config eu = fm_solver_config_default(FM_SOLVER_EULER);
    fm_solve_stats st;
    int ok = fm_solve(&eu, field_const, &one, grid, 11, x, 2, NULL, NULL, &st) == FM_OK;
    t_check(ok && st.nfe == 10 && fabs(x[0] - 1) < 1e-6 && fabs(x[1] - 1) < 1e-6,
            "%s::test_sample: the field is called (%ld evaluations) and the state keeps its shape (x = [%g, %g])", F,
            st.nfe, x[0], x[1]);
    /* test_sample_with_different_methods: u = 3 t^2 from [1, 0] ends at [2, 1] (atol 1e-2) */
    const fm_solver_kind kinds[4] = {FM_SOLVER_EULER, FM_SOLVER_DOPRI5, FM_SOLVER_MIDPOINT, FM_SOLVER_HEUN3};
    for (int k = 0; k < 4; k++) {
        float y[2] = {1, 0};
        ok = solve_01(kinds[k], field_3t2, NULL, y, NULL);
        t_check(ok && fabs(y[0] - 2) < 1e-2 && fabs(y[1] - 1) < 1e-2,
                "%s::test_sample_with_different_methods[%s]: x(1) = [%.5f, %.5f], want [2, 1]", F,
                fm_solver_name(kinds[k]), y[0], y[1]);
    }
    /* test_gradients: d sum x(1) / da = 2 for v = a (delta 1e-4); flowmatch's
     * solvers are not on the tape, so the derivative is a central difference */
    for (int k = 0; k < 4; k++) {
        double ap = 1 + 1e-3, am = 1 - 1e-3;
        float yp[2] = {1, 0}, ym[2] = {1, 0};
        ok = solve_01(kinds[k], field_const, &ap, yp, NULL) && solve_01(kinds[k], field_const, &am, ym, NULL);
        double g = ((double)yp[0] + yp[1] - ym[0] - ym[1]) / (ap - am);
        t_check(ok && fabs(g - 2) < 1e-4, "%s::test_gradients[%s]: d sum x(1) / da = %.6f, want 2", F,
                fm_solver_name(kinds[k]), g);
    }
    /* test_compute_likelihood: a finite log-likelihood per point (Hutchinson) */
    lik_field f3 = {0, 1}, f1 = {1, 0};
    float x1[2] = {0, 0};
    double lp = loglik(&f3, x1, FM_DIV_HUTCH_RADEMACHER);
    t_check(isfinite(lp), "%s::test_compute_likelihood: one finite log-likelihood per point (%.4f)", F, lp);
    /* test_compute_likelihood_gradients_non_zero: d ll / d x1 is not 1 (Euler's
     * x0 = x1 - 1.155 on u = 3 t^2 makes it 1.155) */
    float xp[2] = {1e-3f, 0}, xm[2] = {-1e-3f, 0};
    double gx = (loglik(&f3, xp, FM_DIV_HUTCH_RADEMACHER) - loglik(&f3, xm, FM_DIV_HUTCH_RADEMACHER)) / 2e-3;
    t_check(fabs(gx - 1) > 1e-2, "%s::test_compute_likelihood_gradients_non_zero: d ll / d x1 = %.4f, not 1", F, gx);
    /* test_compute_likelihood_exact_divergence: v = 1 gives ll = log_p0(x1 - 1)
     * = -1 and x0 = x1 - 1 (atol 1e-2), d ll / d x1 = 1 */
    lp = loglik(&f1, x1, FM_DIV_EXACT);
    t_check(fabs(lp - -1.0) < 1e-2, "%s::test_compute_likelihood_exact_divergence: ll = %.5f = log_p0(x1 - 1) = -1", F,
            lp);
    float z[2] = {0, 0};
    fm_solver_config c = fm_solver_config_default(FM_SOLVER_EULER);
    fm_time_grid_uniform(grid, 10, 1, 0);
    ok = fm_solve(&c, field_const, &one, grid, 11, z, 2, NULL, NULL, NULL) == FM_OK;
    t_check(ok && fabs(z[0] + 1) < 1e-2 && fabs(z[1] + 1) < 1e-2,
            "%s::test_compute_likelihood_exact_divergence: x0 = x1 - 1 = [%.4f, %.4f]", F, z[0], z[1]);
    gx = (loglik(&f1, xp, FM_DIV_EXACT) - loglik(&f1, xm, FM_DIV_EXACT)) / 2e-3;
    t_check(fabs(gx - 1) < 1e-2, "%s::test_compute_likelihood_exact_divergence: d ll / d x1 = %.5f, want 1", F, gx);
}

/* The projected constant field 100 (1, 1, 1) on the sphere, or zero. */
static fm_status sphere_field(void *ctx, double t, const float *x, int n, float *v, double *div)
{
    (void)t;
    double a = *(const double *)ctx;
    for (int i = 0; i < 3 * n; i++) v[i] = (float)a;
    fm_manifold_tangent(FM_MANIFOLD_SPHERE, x, v, n);
    if (div) memset(div, 0, (size_t)n * sizeof(double));
    return FM_OK;
}

static void port_test_riemannian_ode_solver(void)
{
    const char *F = "flow_matching tests/solver/test_riemannian_ode_solver.py";
    const char *names[3] = {"euler", "midpoint", "rk4"};
    float c[3] = {(float)(1 / sqrt(3)), (float)(1 / sqrt(3)), (float)(1 / sqrt(3))};
    double hundred = 100, zero = 0, grid[101], g100[100];
    fm_time_grid_uniform(grid, 100, 0, 1); /* step 0.01 */
    fm_time_grid_uniform(g100, 99, 0, 1);  /* linspace(0, 1, 100) */
    fm_rng r;
    fm_rng_seed(&r, 17, FM_STREAM_NOISE);
    for (int k = 0; k < 3; k++) {
        float x[3], x0[3];
        fm_rng_normal_fill(&r, x0, 3, 0, 1);
        fm_manifold_project(FM_MANIFOLD_SPHERE, x0, 1);
        memcpy(x, x0, sizeof x);
        int ok = fm__manifold_integrate(FM_MANIFOLD_SPHERE, k, sphere_field, &hundred, grid, 101, x, 1, NULL, NULL, NULL,
                                        NULL) == FM_OK;
        double e = 0;
        for (int j = 0; j < 3; j++) e = fmax(e, fabs(x[j] - c[j]) / fabs(c[j]));
        t_check(ok && e < 1e-3, "%s::test_sample_%s: ends at (1, 1, 1) / sqrt 3 (relative error %.1e)", F, names[k], e);
        memcpy(x, x0, sizeof x);
        ok = fm__manifold_integrate(FM_MANIFOLD_SPHERE, k, sphere_field, &zero, grid, 101, x, 1, NULL, NULL, NULL,
                                    NULL) == FM_OK;
        e = 0;
        for (int j = 0; j < 3; j++) e = fmax(e, fabs(x[j] - x0[j]));
        t_check(ok && e < 1e-5, "%s::test_zero_velocity_%s: stays put (error %.1e)", F, names[k], e);
    }
    float x[3];
    fm_rng_normal_fill(&r, x, 3, 0, 1);
    fm_manifold_project(FM_MANIFOLD_SPHERE, x, 1);
    int ok = fm__manifold_integrate(FM_MANIFOLD_SPHERE, 0, sphere_field, &hundred, g100, 100, x, 1, NULL, NULL, NULL,
                                    NULL) == FM_OK;
    double e = 0;
    for (int j = 0; j < 3; j++) e = fmax(e, fabs(x[j] - c[j]) / fabs(c[j]));
    t_check(ok && e < 1e-3, "%s::test_sample_euler_step_size_none: the grid's 99 steps end at the same point (relative "
            "error %.1e)", F, e);
}

/* p_{1|t} always on token 2 (test_discrete_solver.py's DummyModel). */
static fm_status post_two(void *ctx, const float *t, const int *x, int n, float *logits)
{
    (void)ctx, (void)t, (void)x;
    for (int i = 0; i < n; i++) logits[3 * i] = logits[3 * i + 1] = -1e4f, logits[3 * i + 2] = 0;
    return FM_OK;
}

static void port_test_discrete_solver(void)
{
    const char *F = "flow_matching tests/solver/test_discrete_solver.py";
    /* kappa = t (PolynomialConvexScheduler(1)), vocabulary 3, x_init [0] */
    fm_rng r;
    fm_rng_seed(&r, 5, FM_STREAM_NOISE);
    double g11[11], g3[3] = {0, 0.5, 1};
    fm_time_grid_uniform(g11, 10, 0, 1);
    int x = 0;
    int ok = fm__dfm_euler(3, 1, 1, 1.0, 0, post_two, NULL, &r, g11, 11, &x, 1, NULL) == FM_OK;
    t_check(ok && x == 2, "%s::test_sample: step 0.1 ends at token 2 (got %d)", F, x);
    x = 0;
    ok = fm__dfm_euler(3, 1, 1, 1.0, 1.0, post_two, NULL, &r, g11, 11, &x, 1, NULL) == FM_OK;
    t_check(ok && x == 2, "%s::test_sample_with_sym_term: with the divergence-free term (weight 1) too (got %d)", F, x);
    x = 0;
    ok = fm__dfm_euler(3, 1, 1, 1.0, 0, post_two, NULL, &r, g11, 11, &x, 1, NULL) == FM_OK;
    t_check(ok && x == 2, "%s::test_sample_time_grid: over linspace(0, 1, 11) the last state is 2 (got %d)", F, x);
    x = 0;
    ok = fm__dfm_euler(3, 1, 1, 1.0, 0, post_two, NULL, &r, g3, 3, &x, 1, NULL) == FM_OK;
    t_check(ok && x == 2, "%s::test_sample_return_intermediate: over [0, 0.5, 1] the last state is 2 (got %d)", F, x);
}

/* tests/utils/test_utils.py::test_gradient: d(x^2)/dx = 2x through the tape */
static void port_test_utils(void)
{
    fm_tape *tp = fm_tape_new(0);
    float xv[3] = {0.3f, -1.2f, 2.5f};
    int sh[1] = {3};
    fm_tensor *x = fm_tensor_copy(tp, xv, 1, sh);
    fm_tensor_requires_grad(x, 1);
    fm_tensor *y = fm_mul(tp, x, x);
    float ones[3] = {1, 1, 1};
    double e = INFINITY;
    if (y && fm_backward(tp, y, ones) == FM_OK && x->grad) {
        e = 0;
        for (int i = 0; i < 3; i++) e = fmax(e, fabs(x->grad[i] - 2 * xv[i]));
    }
    t_check(e < 1e-6, "flow_matching tests/utils/test_utils.py::test_gradient: d(x^2)/dx = 2x (error %.1e)", e);
    fm_tape_free(tp);
}

void test_peer(void)
{
    port_test_fm();
    port_test_optimal_transport();
    port_test_time_t();
    port_test_path();
    port_test_scheduler();
    port_test_schedule_transform();
    port_test_ode_solver();
    port_test_riemannian_ode_solver();
    port_test_discrete_solver();
    port_test_utils();
}
