/* test_coupling.c - minibatch OT and Schrodinger-bridge pairings, path
 * energy, and rectified flow through the library: OT pairs are optimal, the
 * entropic plan goes from independent to OT as its regularisation shrinks,
 * OT-CFM learns straighter paths than independent coupling, and a reflow round
 * makes one Euler step far better.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double pair_cost(const float *a, const float *b, const int *m, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += pow(a[2 * i] - b[2 * m[i]], 2) + pow(a[2 * i + 1] - b[2 * m[i] + 1], 2);
    return s;
}

/* Normalised path energy over 50 Euler steps, against W2^2 from the source to moons. */
static double npe(fm_flow *f)
{
    int n = 600;
    float *x0 = malloc((size_t)n * 2 * sizeof(float)), *ref = malloc((size_t)n * 2 * sizeof(float));
    fm_solver_config eu = fm_solver_config_default(FM_SOLVER_EULER);
    double grid[51], e = NAN, w2 = NAN;
    fm_time_grid_uniform(grid, 50, 0, 1);
    fm_rng r, rd;
    fm_rng_seed(&r, 3, FM_STREAM_NOISE);
    fm_rng_seed(&rd, 3, FM_STREAM_DATA);
    fm_dataset *ds = fm_dataset_open("moons");
    if (fm_flow_path_energy(f, n, NULL, &r, &eu, grid, 51, x0, NULL, &e, NULL) == FM_OK &&
        fm_dataset_sample(ds, &rd, ref, n) == FM_OK)
        fm_w2_exact(x0, ref, n, 2, &w2, NULL);
    fm_dataset_free(ds);
    free(x0);
    free(ref);
    return fabs(e - w2 * w2) / (w2 * w2);
}

/* The entropic plan at every regularisation the CLI can ask for (2 sigma^2,
 * sigma > 0): its row and column sums, recomputed here from the plan, are
 * uniform within the tolerance, and as sigma -> 0 it becomes the exact OT
 * matching. 128 points from N(0, I) and N(0.5, I) in 1, 2, 8 and 60
 * dimensions (the last is a 3 x 4 x 5 image, flattened). */
static void sinkhorn_small_eps(fm_rng *r)
{
    enum { N = 128 };
    const int dims[4] = {1, 2, 8, 60};
    const double sig[] = {1e-6, 5e-4, 1e-3, 1e-2, 0.1, 0.5, 1, 1.5, 5, 100};
    const int ns = (int)(sizeof sig / sizeof sig[0]);
    double *P = malloc((size_t)N * N * sizeof(double));
    float *x0 = malloc((size_t)N * 60 * sizeof(float)), *x1 = malloc((size_t)N * 60 * sizeof(float));
    double worst = 0, worst_sig = 0, least_ot = 1;
    int failures = 0, worst_it = 0, monotone = 1;
    for (int a = 0; a < 4; a++) {
        int d = dims[a], match[N];
        fm_rng_normal_fill(r, x0, (size_t)N * d, 0, 1);
        fm_rng_normal_fill(r, x1, (size_t)N * d, 0.5f, 1);
        fm_ot_pairing(x0, x1, N, d, match);
        double prev_ot = 2;
        for (int q = 0; q < ns; q++) {
            int it = 0;
            double reported = NAN;
            if (fm_sinkhorn_plan(x0, x1, N, d, 2 * sig[q] * sig[q], FM_SINKHORN_MAX_ITER, 1e-4, P, &it, &reported)) {
                failures++;
                continue;
            }
            double rows = 0, cols = 0, ot = 0;
            for (int i = 0; i < N; i++) {
                double rs = 0, cs = 0;
                for (int j = 0; j < N; j++) rs += P[i * N + j], cs += P[j * N + i];
                rows += fabs(rs - 1.0 / N), cols += fabs(cs - 1.0 / N);
                ot += P[i * N + match[i]];
            }
            double e = fmax(rows, cols);
            failures += it < 0 || e > 1e-4;
            if (e > worst) worst = e, worst_sig = sig[q], worst_it = it;
            if (sig[q] <= 5e-4) least_ot = fmin(least_ot, ot);
            monotone &= ot <= prev_ot + 2e-4; /* the mass on the matching grows as sigma shrinks (up to tol) */
            prev_ot = ot;
        }
    }
    t_check(!failures, "Sinkhorn plan at sigma 1e-6 .. 100 in 1, 2, 8 and 60 dimensions: every one within tol 1e-4 "
            "(largest marginal L1 error %.2e at sigma %g, %d iterations)", worst, worst_sig, worst_it);
    t_check(least_ot > 0.99 && monotone, "Sinkhorn plan tends to the exact OT matching: mass on it at sigma <= 5e-4 at "
            "least %.4f, growing as sigma shrinks", least_ot);
    /* the pairs drawn from the plan: sigma 5e-4 in 60 dimensions, 200 redraws
     * of 128 pairs; the empirical marginals against sampling noise (about 0.06) */
    int d = 60, ci[N] = {0}, cj[N] = {0}, pi[N], pj[N], ok = 1;
    fm_rng_normal_fill(r, x0, (size_t)N * d, 0, 1);
    fm_rng_normal_fill(r, x1, (size_t)N * d, 0.5f, 1);
    for (int rep = 0; rep < 200 && ok; rep++) {
        int it = 0;
        ok = fm_sinkhorn_pairs(x0, x1, N, d, 2 * 5e-4 * 5e-4, FM_SINKHORN_MAX_ITER, 1e-4, r, pi, pj, &it) == FM_OK &&
             it >= 0;
        for (int k = 0; k < N; k++) ci[pi[k]]++, cj[pj[k]]++;
    }
    double li = 0, lj = 0;
    int never = 0;
    for (int k = 0; k < N; k++) {
        li += fabs(ci[k] / (200.0 * N) - 1.0 / N), lj += fabs(cj[k] / (200.0 * N) - 1.0 / N);
        never += ci[k] == 0 || cj[k] == 0;
    }
    t_check(ok && li < 0.1 && lj < 0.1 && never == 0, "Sinkhorn pairs at sigma 5e-4 (60 dims, 200 redraws): marginal L1 "
            "error rows %.3f, columns %.3f, %d points never drawn", li, lj, never);
    int its = 0;
    int refused = fm_sinkhorn_plan(x0, x1, N, d, 0, 10, 1e-4, P, &its, NULL) == FM_ERR_ARG &&
                  fm_sinkhorn_plan(x0, x1, N, d, NAN, 10, 1e-4, P, &its, NULL) == FM_ERR_ARG;
    x1[7] = NAN;
    refused &= fm_sinkhorn_plan(x0, x1, N, d, 0.1, 10, 1e-4, P, &its, NULL) == FM_ERR_ARG &&
               strstr(fm_last_error(), "not finite") != NULL;
    t_check(refused, "Sinkhorn refuses eps 0 and NaN, and a NaN coordinate: %s", fm_last_error());
    free(P);
    free(x0);
    free(x1);
}

static fm_trainer *trained(fm_coupling cp, fm_path_kind path, int iters)
{
    fm_train_config c = fm_train_config_default();
    c.flow.path = fm_path_default(path);
    c.coupling = cp;
    c.iters = iters;
    return t_trained(&c, iters);
}

void test_coupling(void)
{
    fm_rng r;
    fm_rng_seed(&r, 12, 0);
    /* OT pairing: a permutation no cheaper one beats (all 720 of n = 6) */
    int worse = 0, perms_bad = 0;
    for (int trial = 0; trial < 30; trial++) {
        int n = 6, m[6], p[6] = {0, 1, 2, 3, 4, 5}, seen[6] = {0};
        float a[12], b[12];
        fm_rng_normal_fill(&r, a, 12, 0, 1);
        fm_rng_normal_fill(&r, b, 12, 1, 0.5f);
        fm_ot_pairing(a, b, n, 2, m);
        for (int i = 0; i < n; i++) perms_bad += seen[m[i]]++ != 0;
        double best = pair_cost(a, b, m, n);
        do /* every permutation */
            worse += pair_cost(a, b, p, n) < best - 1e-9;
        while (t_next_perm(p, n));
    }
    t_check(worse == 0 && perms_bad == 0, "OT pairing: a permutation, and no permutation is cheaper (30 problems)");

    /* Sinkhorn: huge eps gives the independent coupling, small eps the OT one */
    float a[8] = {0, 0, 1, 0, 0, 1, 1, 1}, b[8] = {0.1f, 0.1f, 1.1f, 0.1f, 0.1f, 1.1f, 1.1f, 1.1f};
    int counts[2][16] = {{0}}, pi[4], pj[4], iters = 0;
    double eps[2] = {1e6, 0.01};
    for (int q = 0; q < 2; q++)
        for (int rep = 0; rep < 4000; rep++) {
            if (fm_sinkhorn_pairs(a, b, 4, 2, eps[q], 1000, 1e-9, &r, pi, pj, &iters) != FM_OK) break;
            for (int k = 0; k < 4; k++) counts[q][pi[k] * 4 + pj[k]]++;
        }
    double dev_uniform = 0, diag = 0;
    for (int k = 0; k < 16; k++) dev_uniform = fmax(dev_uniform, fabs(counts[0][k] / 16000.0 - 1.0 / 16));
    for (int i = 0; i < 4; i++) diag += counts[1][i * 4 + i] / 16000.0;
    t_check(dev_uniform < 0.01 && diag > 0.99, "Sinkhorn plan: eps 1e6 uniform (max deviation %.4f), eps 0.01 the matching (%.4f)",
            dev_uniform, diag);
    int its = 0;
    float ga[512], gb[512];
    fm_rng_normal_fill(&r, ga, 512, 0, 1);
    fm_rng_normal_fill(&r, gb, 512, 0.5f, 1);
    int pi2[256], pj2[256];
    fm_status s = fm_sinkhorn_pairs(ga, gb, 256, 2, 0.5, 1000, 1e-6, &r, pi2, pj2, &its);
    t_check(s == FM_OK && its > 0 && its < 1000, "Sinkhorn on 256 points, eps 0.5, converges in %d iterations", its);
    s = fm_sinkhorn_pairs(ga, gb, 256, 2, 1e-3, 5, 1e-6, &r, pi2, pj2, &its);
    t_check(s == FM_OK && its == -1, "Sinkhorn stopped by its iteration cap says so (iters %d)", its);

    sinkhorn_small_eps(&r);

    /* training: OT coupling straightens the paths; the bridge trains */
    fm_trainer *ind = trained(FM_COUPLING_INDEPENDENT, FM_PATH_OT, 800), *ot = trained(FM_COUPLING_OT, FM_PATH_OT, 400);
    double n_ind = ind ? npe(fm_trainer_flow(ind)) : NAN, n_ot = ot ? npe(fm_trainer_flow(ot)) : NAN;
    t_check(n_ot < 0.25 && n_ot < 0.4 * n_ind, "normalised path energy: OT coupling %.3f, independent %.3f", n_ot, n_ind);
    fm_trainer *sb = trained(FM_COUPLING_SB, FM_PATH_SB, 300);
    double w_sb = sb ? t_flow_w2(fm_trainer_flow(sb), "moons", 800, FM_SOLVER_EULER, 8, 5) : NAN;
    t_check(sb && w_sb < 0.45 && fm_trainer_unconverged(sb) == 0,
            "SB-CFM (sigma 0.5) trains: W2 %.3f after 8 Euler steps, every plan converged (%lld missed)", w_sb,
            sb ? (long long)fm_trainer_unconverged(sb) : -1LL);
    /* seed 11 draws u = 1 - 2^-24 at iteration 308, where t = u + 2^-25 rounds to
     * 1 in float and the bridge's sigma sqrt(t (1 - t)) has an infinite slope */
    fm_train_config cb = fm_train_config_default();
    cb.flow.path = fm_path_default(FM_PATH_SB);
    cb.seed = 11;
    fm_trainer *tb = fm_trainer_new(&cb);
    int bad_it = 0;
    for (int i = 0; tb && i < 310 && !bad_it; i++)
        if (fm_trainer_step(tb, NULL) != FM_OK) bad_it = i + 1;
    t_check(tb && !bad_it, "times stay below t_end: 310 bridge iterations with seed 11 (first failure: %d)", bad_it);
    fm_trainer_free(tb);
    fm_trainer_free(sb);
    fm_train_config bad = fm_train_config_default();
    bad.coupling = FM_COUPLING_SB;
    t_check(!fm_trainer_new(&bad) && strstr(fm_last_error(), "needs the sb path"), "sb coupling on the ot path refused: %s",
            fm_last_error());

    /* pairs from a VE model (zero weights: v = 0, so x1 is its start b(0) x0):
     * x0 are the plain source draws a straight model starts from */
    {
        fm_flow_config vc = fm_train_config_default().flow;
        vc.dim = 2;
        vc.path = fm_path_default(FM_PATH_VE);
        vc.data = "moons";
        vc.source = "gaussian";
        fm_flow *vf = fm_flow_new(&vc);
        float px0[2000], px1[2000];
        double g2[3] = {0, 0.5, 1}, sd = 0, dev = INFINITY;
        fm_path_coef c0;
        fm_path_coef_at(&vc.path, 0.0, &c0);
        fm_solver_config eu = fm_solver_config_default(FM_SOLVER_EULER);
        fm_rng_seed(&r, 4, FM_STREAM_NOISE);
        if (vf && fm_flow_make_pairs(vf, 1000, &r, &eu, g2, 3, px0, px1) == FM_OK) {
            dev = 0;
            for (int i = 0; i < 2000; i++) sd += (double)px0[i] * px0[i] / 2000, dev = fmax(dev, fabs(px1[i] - c0.b * px0[i]));
            sd = sqrt(sd);
        }
        t_check(fabs(sd - 1) < 0.05 && dev < 1e-5 * c0.b, "VE pairs: x0 has std %.3f (source draws), x1 = b(0) x0 (b(0) = %g, max error %.2e)",
                sd, c0.b, dev);
        fm_flow_free(vf);
    }

    /* rectified flow: one round from the independent model's own pairs */
    if (ind) {
        fm_flow *f = fm_trainer_flow(ind);
        double before = t_flow_w2(f, "moons", 800, FM_SOLVER_EULER, 1, 9);
        int np = 4000;
        float *x0 = malloc((size_t)np * 2 * sizeof(float)), *x1 = malloc((size_t)np * 2 * sizeof(float));
        fm_solver_config sc = fm_solver_config_default(FM_SOLVER_RK4);
        double grid[21];
        fm_time_grid_uniform(grid, 20, 0, 1);
        fm_rng_seed(&r, 1, FM_STREAM_NOISE);
        s = fm_flow_make_pairs(f, np, &r, &sc, grid, 21, x0, x1);
        fm_train_config c = fm_train_config_default();
        c.optim.lr = 1e-3;
        c.iters = 800;
        fm_trainer *rf = s ? NULL : fm_trainer_new(&c);
        int ok = rf && fm_trainer_set_pairs(rf, x0, x1, np) == FM_OK && fm_trainer_init_from(rf, f) == FM_OK;
        for (int i = 0; ok && i < 800; i++) ok = fm_trainer_step(rf, NULL) == FM_OK;
        double after = ok ? t_flow_w2(fm_trainer_flow(rf), "moons", 800, FM_SOLVER_EULER, 1, 9) : NAN;
        t_check(ok && after < 0.5 * before, "one reflow round: W2 after 1 Euler step %.3f -> %.3f", before, after);
        char path[700];
        snprintf(path, sizeof path, "%s/rf.safetensors", t_tmpdir());
        if (ok) fm_trainer_save(rf, path);
        fm_trainer *res = ok ? fm_trainer_resume(path, 2000) : NULL;
        t_check(ok && !res && strstr(fm_last_error(), "cannot be resumed"), "a reflow checkpoint refuses --resume: %s",
                fm_last_error());
        fm_trainer_free(res);
        fm_trainer_free(rf);
        free(x0);
        free(x1);
    }
    fm_trainer_free(ind);
    fm_trainer_free(ot);
}
