/* test_baselines.c - the models flow matching grew out of.
 *
 * DDPM: the closed-form forward marginal against iterating the Markov chain,
 * and both samplers driven by the exact noise prediction of a Gaussian data
 * set recovering its mean and variance. VAE and GAN: losses and every
 * parameter's gradient against PyTorch (tests/ref/gen_fixtures.py), then short
 * trainings that learn, checkpoints that sample identically after loading,
 * and resuming that equals not stopping.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5

/* ---- DDPM */

typedef struct {
    double m[2], s2[2]; /* the data: independent N(m_j, s2_j) */
    double *abar;
} gauss_eps;

/* The exact noise prediction for Gaussian data: E[eps | x_t]. */
static fm_status exact_eps(void *ctx, int t, const float *x, float *eps, int n, int d)
{
    const gauss_eps *g = ctx;
    double a = g->abar[t];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double v = a * g->s2[j] + 1.0 - a;
            eps[(size_t)i * d + j] = (float)(sqrt(1.0 - a) * (x[(size_t)i * d + j] - sqrt(a) * g->m[j]) / v);
        }
    return FM_OK;
}

static void moments(const float *x, int n, int d, double *mean, double *var)
{
    for (int j = 0; j < d; j++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < n; i++) s += x[(size_t)i * d + j];
        mean[j] = s / n;
        for (int i = 0; i < n; i++) s2 += pow(x[(size_t)i * d + j] - mean[j], 2);
        var[j] = s2 / (n - 1);
    }
}

void test_ddpm(void)
{
    fm_ddpm_schedule sc = fm_ddpm_schedule_default();
    int T = sc.T;
    double *beta = malloc((size_t)(T + 1) * sizeof(double)), *abar = malloc((size_t)(T + 1) * sizeof(double));
    fm_ddpm_tables(&sc, beta, abar);
    /* q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) against x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps */
    double coef = 1.0, var = 0.0, err = 0.0;
    for (int t = 1; t <= T; t++) {
        coef *= sqrt(1.0 - beta[t]);
        var = (1.0 - beta[t]) * var + beta[t];
        err = fmax(err, fmax(fabs(coef - sqrt(abar[t])), fabs(var - (1.0 - abar[t]))));
    }
    t_check(err < TOL && fabs(beta[1] - 1e-4) < 1e-15 && fabs(beta[T] - 0.02) < 1e-15,
            "forward marginal: closed form against the Markov chain over %d steps, max error %.2e", T, err);

    /* the exact eps of N(m, diag s2) through both samplers */
    int n = 20000, d = 2;
    gauss_eps g = {{1.5, -0.5}, {0.25, 4.0}, abar};
    float *x = malloc((size_t)n * d * sizeof(float));
    struct {
        fm_ddpm_sampler kind;
        int steps;
        double tol; /* in standard errors */
    } runs[] = {{FM_DDPM_ANCESTRAL, 1000, 4}, {FM_DDPM_ANCESTRAL, 100, 4}, {FM_DDPM_DDIM, 1000, 5},
                {FM_DDPM_DDIM, 50, 0}, {FM_DDPM_DDIM, 10, 0}};
    double ddim_err[5] = {0};
    for (int r = 0; r < 5; r++) {
        fm_rng rng;
        fm_rng_seed(&rng, 5, FM_STREAM_NOISE);
        fm_rng_normal_fill(&rng, x, (size_t)n * d, 0.0f, 1.0f);
        fm_status s = fm_ddpm_sample(&sc, exact_eps, &g, runs[r].kind, runs[r].steps, &rng, x, n, d, NULL, NULL);
        double mean[2], v[2], worst = 0;
        moments(x, n, d, mean, v);
        for (int j = 0; j < d; j++) {
            double se_m = sqrt(g.s2[j] / n), se_v = g.s2[j] * sqrt(2.0 / (n - 1));
            worst = fmax(worst, fmax(fabs(mean[j] - g.m[j]) / se_m, fabs(v[j] - g.s2[j]) / se_v));
        }
        ddim_err[r] = worst;
        if (runs[r].tol == 0) continue; /* few DDIM steps: checked for convergence below */
        t_check(s == FM_OK && worst < runs[r].tol,
                "%s, %d steps, exact eps: mean (%.3f, %.3f) var (%.3f, %.3f) against (1.5, -0.5) (0.25, 4); "
                "worst %.2f standard errors",
                fm_ddpm_sampler_name(runs[r].kind), runs[r].steps, mean[0], mean[1], v[0], v[1], worst);
    }
    /* DDIM is a discretised ODE: its error shrinks as the steps grow (x_T ~ N(0, I) leaves a small bias) */
    t_check(ddim_err[4] > ddim_err[3] && ddim_err[3] > ddim_err[2],
            "ddim converges: %.1f, %.1f, %.1f standard errors at 10, 50, 1000 steps", ddim_err[4], ddim_err[3],
            ddim_err[2]);
    t_check(fm_ddpm_sample(&sc, exact_eps, &g, FM_DDPM_SAMPLER_COUNT, 10, NULL, x, n, d, NULL, NULL) == FM_ERR_ARG,
            "an unknown sampler is refused: %s", fm_last_error());
    t_check(fm_ddpm_sample(&sc, exact_eps, &g, FM_DDPM_DDIM, 1001, NULL, x, n, d, NULL, NULL) == FM_ERR_ARG,
            "more steps than T refused: %s", fm_last_error());
    /* one reverse step against the reference's formula, written out: with
     * steps = T every step adds sqrt(beta_t) z, the last included; a respaced
     * chain's last step adds none */
    {
        fm_ddpm_schedule s2 = {2, 0.1, 0.3};
        double b2[3], a2[3];
        fm_ddpm_tables(&s2, b2, a2);
        gauss_eps g2 = {{0.7, -1.1}, {0.5, 2.0}, a2};
        enum { M = 64 };
        float xs[M * 2], want[M * 2], e[M * 2], zs[M * 2];
        fm_rng r1, r2;
        fm_rng_seed(&r1, 9, FM_STREAM_NOISE);
        fm_rng_normal_fill(&r1, xs, M * 2, 0.0f, 1.0f);
        memcpy(want, xs, sizeof xs);
        fm_rng_seed(&r2, 11, FM_STREAM_NOISE);
        for (int t = 2; t >= 1; t--) { /* x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(1 - beta_t) + sqrt(beta_t) z */
            exact_eps(&g2, t, want, e, M, 2);
            fm_rng_normal_fill(&r2, zs, M * 2, 0.0f, 1.0f);
            for (int j = 0; j < M * 2; j++)
                want[j] = (float)((want[j] - b2[t] / sqrt(1.0 - a2[t]) * e[j]) / sqrt(1.0 - b2[t]) + sqrt(b2[t]) * zs[j]);
        }
        fm_rng_seed(&r1, 11, FM_STREAM_NOISE);
        fm_status s = fm_ddpm_sample(&s2, exact_eps, &g2, FM_DDPM_ANCESTRAL, 2, &r1, xs, M, 2, NULL, NULL);
        double e_full = t_relerr(xs, want, M * 2);
        /* one respaced step from t = 2 to 0: b = 1 - abar_2, no noise */
        fm_rng_seed(&r1, 9, FM_STREAM_NOISE);
        fm_rng_normal_fill(&r1, xs, M * 2, 0.0f, 1.0f);
        exact_eps(&g2, 2, xs, e, M, 2);
        for (int j = 0; j < M * 2; j++)
            want[j] = (float)((xs[j] - (1.0 - a2[2]) / sqrt(1.0 - a2[2]) * e[j]) / sqrt(a2[2]));
        fm_status s1 = fm_ddpm_sample(&s2, exact_eps, &g2, FM_DDPM_ANCESTRAL, 1, &r1, xs, M, 2, NULL, NULL);
        double e_resp = t_relerr(xs, want, M * 2);
        t_check(s == FM_OK && s1 == FM_OK && e_full < 1e-6 && e_resp < 1e-6,
                "ancestral steps are the reference's formula (noise on every step of T), max rel err %.2e; "
                "a respaced last step adds no noise, max rel err %.2e",
                e_full, e_resp);
    }
    fm_ddpm_schedule bad = {10, 0.5, 0.1};
    t_check(fm_ddpm_check(&bad) == FM_ERR_ARG, "beta_start > beta_end refused: %s", fm_last_error());
    fm_solver_config ode = fm_solver_config_default(FM_SOLVER_COUNT);
    double grid[2] = {0, 1};
    t_check(fm_solve(&ode, NULL, NULL, grid, 2, x, 2, NULL, NULL, NULL) == FM_ERR_ARG,
            "fm_solve refuses a solver that is not an ODE solver: %s", fm_last_error());
    t_check(fm_solver_from_name("ddim") < 0 && fm_ddpm_sampler_from_name("ddim") == FM_DDPM_DDIM &&
                fm_ddpm_sampler_from_name("euler") < 0,
            "ddim and ancestral are DDPM's samplers, not ODE solvers, and the other way round");
    free(x);
    free(beta);
    free(abar);
}

/* ---- VAE and GAN against PyTorch */

/* Compare P's gradient, parameter by parameter, with fixture prefix + name. */
static double grads_vs(const fm_st *st, fm_params *P, const char *prefix, const char *what)
{
    double worst = 0;
    for (int i = 0; i < fm_params_count(P); i++) {
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix, fm_params_name(P, i));
        size_t n;
        float *ref = t_read(st, name, &n);
        fm_tensor *t = fm_params_tensor(P, i);
        if (!ref || n != t->size) {
            free(ref);
            return INFINITY;
        }
        const float *g = fm_params_grad(P) + (t->data - fm_params_data(P));
        worst = fmax(worst, t_relerr(g, ref, n));
        free(ref);
    }
    t_family_max(what, worst);
    return worst;
}

static fm_tensor *fixture_tensor(fm_tape *tp, const fm_st *st, const char *name, int r, int c)
{
    float *v = t_read(st, name, NULL);
    int s[2] = {r, c};
    fm_tensor *t = v ? fm_tensor_copy(tp, v, 2, s) : NULL;
    free(v);
    return t;
}

static double scalar(const fm_st *st, const char *name)
{
    float *v = t_read(st, name, NULL);
    double x = v ? v[0] : NAN;
    free(v);
    return x;
}

static void vae_fixture(const fm_st *st, const char *tag, fm_vae_likelihood lik)
{
    fm_vae_config c = fm_vae_config_default(4);
    c.nhidden = 2;
    c.width[0] = 5;
    c.width[1] = 6;
    c.likelihood = lik;
    c.beta = 0.5;
    fm_vae *v = fm_vae_new(&c);
    char pre[64], name[96];
    snprintf(pre, sizeof pre, "%s.", tag);
    fm_tape *tp = fm_tape_new(0);
    int ok = v && fm_params_load(fm_vae_params(v), st, pre) == FM_OK;
    snprintf(name, sizeof name, "%s.x", tag);
    fm_tensor *X = ok ? fixture_tensor(tp, st, name, 5, 4) : NULL;
    snprintf(name, sizeof name, "%s.eps", tag);
    fm_tensor *E = ok ? fixture_tensor(tp, st, name, 5, 2) : NULL;
    fm_tensor *rec = NULL, *kl = NULL, *loss = X && E ? fm_vae_loss(tp, v, X, E, &rec, &kl) : NULL;
    double e_loss = INFINITY, e_grad = INFINITY;
    if (loss && rec && kl) {
        fm_params_zero_grad(fm_vae_params(v));
        snprintf(name, sizeof name, "%s.loss", tag);
        double lref = scalar(st, name);
        snprintf(name, sizeof name, "%s.rec", tag);
        double rref = scalar(st, name);
        snprintf(name, sizeof name, "%s.kl", tag);
        double kref = scalar(st, name);
        e_loss = fmax(fabs(loss->data[0] - lref) / fabs(lref),
                      fmax(fabs(rec->data[0] - rref) / fabs(rref), fabs(kl->data[0] - kref) / fabs(kref)));
        snprintf(name, sizeof name, "%s.grad.", tag);
        if (fm_backward(tp, loss, NULL) == FM_OK) e_grad = grads_vs(st, fm_vae_params(v), name, "vae");
    }
    t_family_max("vae", e_loss);
    t_check(e_loss < TOL, "%s: loss, reconstruction and KL terms against PyTorch, max rel err %.2e", tag, e_loss);
    t_check(e_grad < TOL, "%s: every parameter's gradient against PyTorch, max rel err %.2e", tag, e_grad);
    fm_tape_free(tp);
    fm_vae_free(v);
}

static fm_gan *fixture_gan(const fm_st *st, fm_gan_loss loss)
{
    fm_gan_config c = fm_gan_config_default(2);
    c.latent = 3;
    c.nhidden = 2;
    c.width[0] = 5;
    c.width[1] = 4;
    c.d_nhidden = 2;
    c.d_width[0] = 6;
    c.d_width[1] = 5;
    c.loss = loss;
    fm_gan *g = fm_gan_new(&c);
    if (g && (fm_params_load(fm_gan_generator_params(g), st, "gan.") || fm_params_load(fm_gan_discriminator_params(g), st, "gan."))) {
        fm_gan_free(g);
        return NULL;
    }
    return g;
}

static void gan_fixture(const fm_st *st, const char *tag, fm_gan_loss kind)
{
    fm_gan *g = fixture_gan(st, kind);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *X = g ? fixture_tensor(tp, st, "gan.x", 6, 2) : NULL, *Z = g ? fixture_tensor(tp, st, "gan.z", 6, 3) : NULL;
    fm_tensor *l = !X || !Z ? NULL : !strcmp(tag, "d") ? fm_gan_d_loss(tp, g, X, Z) : fm_gan_g_loss(tp, g, Z);
    double e_loss = INFINITY, e_g = INFINITY, e_d = INFINITY;
    char name[96];
    if (l) {
        snprintf(name, sizeof name, "gan.%s.loss", tag);
        double ref = scalar(st, name);
        e_loss = fabs(l->data[0] - ref) / fabs(ref);
        fm_params_zero_grad(fm_gan_generator_params(g));
        fm_params_zero_grad(fm_gan_discriminator_params(g));
        if (fm_backward(tp, l, NULL) == FM_OK) {
            snprintf(name, sizeof name, "gan.%s.grad.", tag);
            e_g = grads_vs(st, fm_gan_generator_params(g), name, "gan");
            e_d = grads_vs(st, fm_gan_discriminator_params(g), name, "gan");
        }
    }
    t_family_max("gan", e_loss);
    t_check(e_loss < TOL && e_g < TOL && e_d < TOL,
            "GAN %s loss against PyTorch: loss %.2e, generator gradients %.2e (through the discriminator), "
            "discriminator gradients %.2e",
            tag, e_loss, e_g, e_d);
    fm_tape_free(tp);
    fm_gan_free(g);
}

/* ---- training, checkpoints, resuming */

static fm_trainer *trained(fm_method m, int iters, uint64_t seed, double lr)
{
    fm_train_config c = fm_train_config_default();
    c.method = m;
    c.iters = iters;
    c.seed = seed;
    c.optim.lr = lr;
    if (m == FM_METHOD_GAN) c.optim.beta1 = 0.5;
    c.gan.d_optim = c.optim;
    return t_trained(&c, iters);
}

/* W2 of 600 samples of any model to 600 fresh moons. */
static double model_w2(fm_model *m, uint64_t seed)
{
    int n = 600, steps = 0;
    float *x = malloc((size_t)n * 2 * sizeof(float)), *ref = malloc((size_t)n * 2 * sizeof(float));
    fm_solver_config sc = fm_solver_config_default(fm_model_default_solver(m, &steps));
    if (fm_model_sampling(m) == FM_SAMPLING_OWN) sc.sampler = "ddim", steps = 50;
    double *grid = malloc((size_t)(steps + 1) * sizeof(double)), w2 = NAN;
    fm_time_grid_uniform(grid, steps, 0, 1);
    fm_rng r, rd;
    fm_rng_seed(&r, seed, FM_STREAM_NOISE);
    fm_rng_seed(&rd, seed, FM_STREAM_DATA);
    fm_dataset *ds = fm_dataset_open("moons");
    if (fm_model_sample(m, n, &r, &sc, grid, steps + 1, x, NULL, NULL, NULL) == FM_OK &&
        fm_dataset_sample(ds, &rd, ref, n) == FM_OK)
        fm_w2_exact(x, ref, n, 2, &w2, NULL);
    fm_dataset_free(ds);
    free(grid);
    free(x);
    free(ref);
    return w2;
}

static double mean_loss(fm_trainer *tr, int iters)
{
    double s = 0, l;
    for (int i = 0; i < iters; i++) {
        if (fm_trainer_step(tr, &l) != FM_OK) return NAN;
        s += l;
    }
    return s / iters;
}

void test_baselines(void)
{
    fm_st *st = t_fixture("baselines.safetensors");
    if (st) {
        vae_fixture(st, "vae_bernoulli", FM_VAE_BERNOULLI);
        vae_fixture(st, "vae_gaussian", FM_VAE_GAUSSIAN);
        gan_fixture(st, "d", FM_GAN_NONSATURATING);
        gan_fixture(st, "g_nonsaturating", FM_GAN_NONSATURATING);
        gan_fixture(st, "g_minimax", FM_GAN_MINIMAX);
        fm_st_free(st);
    }

    /* each method learns moons: W2 falls well below the untrained model's */
    struct {
        fm_method m;
        int iters;
        double lr, bound;
    } runs[] = {{FM_METHOD_DDPM, 1500, 1e-2, 0.35}, {FM_METHOD_VAE, 1500, 1e-3, 0.35}, {FM_METHOD_GAN, 1500, 2e-4, 0.45}};
    for (int k = 0; k < 3; k++) {
        fm_trainer *t0 = trained(runs[k].m, 0, 1, runs[k].lr), *tr = trained(runs[k].m, runs[k].iters, 1, runs[k].lr);
        double w0 = t0 ? model_w2(fm_trainer_model(t0), 3) : NAN, w1 = tr ? model_w2(fm_trainer_model(tr), 3) : NAN;
        t_check(w1 < runs[k].bound && w1 < 0.5 * w0, "%s learns moons in %d iterations: W2 %.3f (untrained %.3f)",
                fm_method_name(runs[k].m), runs[k].iters, w1, w0);
        if (runs[k].m == FM_METHOD_VAE && tr) {
            /* the loss falls, and points come back close to themselves */
            fm_trainer *fresh = trained(FM_METHOD_VAE, 0, 1, 1e-3);
            double before = fresh ? mean_loss(fresh, 50) : NAN, after = mean_loss(tr, 50);
            fm_trainer_free(fresh);
            int n = 500;
            float *x = malloc((size_t)n * 2 * sizeof(float)), *y = malloc((size_t)n * 2 * sizeof(float));
            fm_rng r;
            fm_rng_seed(&r, 9, FM_STREAM_DATA);
            fm_dataset *ds = fm_dataset_open("moons");
            double err = NAN, var = 0, mean[2] = {0, 0};
            if (fm_dataset_sample(ds, &r, x, n) == FM_OK &&
                fm_vae_reconstruct(fm_model_vae(fm_trainer_model(tr)), x, n, y) == FM_OK) {
                err = 0;
                for (int i = 0; i < 2 * n; i++) err += pow(x[i] - y[i], 2) / n, mean[i % 2] += x[i] / n;
                for (int i = 0; i < 2 * n; i++) var += pow(x[i] - mean[i % 2], 2) / n;
            }
            fm_dataset_free(ds);
            free(x);
            free(y);
            t_check(after < before - 0.3 && err < 0.4 * var,
                    "VAE: loss %.3f -> %.3f per point; reconstruction error %.3f per point, %.0f%% of the data's "
                    "variance %.3f",
                    before, after, err, 100 * err / var, var);
        }
        fm_trainer_free(t0);
        fm_trainer_free(tr);
    }

    /* checkpoints sample identically after loading; resuming equals not stopping */
    for (int m = FM_METHOD_DDPM; m <= FM_METHOD_GAN; m++) {
        char path[700], path2[700];
        snprintf(path, sizeof path, "%s/base_%d.safetensors", t_tmpdir(), m);
        snprintf(path2, sizeof path2, "%s/base_%d_b.safetensors", t_tmpdir(), m);
        double lr = m == FM_METHOD_GAN ? 2e-4 : 1e-3;
        fm_trainer *a = trained((fm_method)m, 40, 4, lr), *full = trained((fm_method)m, 80, 4, lr);
        fm_status s = a ? fm_trainer_save(a, path) : FM_ERR_ARG;
        fm_st *cs = s ? NULL : fm_st_load(path);
        fm_model *loaded = cs ? fm_model_load(cs, 0) : NULL;
        fm_st_free(cs);
        int same = 0;
        if (loaded) {
            float x1[200], x2[200];
            fm_solver_config sc = fm_solver_config_default(FM_SOLVER_EULER); /* DDPM: its first sampler, ancestral */
            double grid[21];
            fm_time_grid_uniform(grid, 20, 0, 1);
            fm_rng r1, r2;
            fm_rng_seed(&r1, 2, FM_STREAM_NOISE);
            fm_rng_seed(&r2, 2, FM_STREAM_NOISE);
            same = fm_model_sample(fm_trainer_model(a), 100, &r1, &sc, grid, 21, x1, NULL, NULL, NULL) == FM_OK &&
                   fm_model_sample(loaded, 100, &r2, &sc, grid, 21, x2, NULL, NULL, NULL) == FM_OK &&
                   fm_model_method(loaded) == (fm_method)m && !memcmp(x1, x2, sizeof x1);
        }
        t_check(same, "%s checkpoint: the loaded model samples the same bits", fm_method_name((fm_method)m));
        fm_model_free(loaded);
        fm_trainer *res = s ? NULL : fm_trainer_resume(path, 80);
        int ok = res != NULL;
        for (int i = 40; ok && i < 80; i++) ok = fm_trainer_step(res, NULL) == FM_OK;
        if (ok) ok = fm_trainer_save(res, path) == FM_OK && full && fm_trainer_save(full, path2) == FM_OK;
        fm_st *ra = ok ? fm_st_load(path) : NULL, *rb = ok ? fm_st_load(path2) : NULL;
        int equal = ra && rb && fm_st_count(ra) == fm_st_count(rb);
        for (int i = 0; equal && i < fm_st_count(ra); i++) {
            int64_t shape[FM_ST_MAX_DIMS];
            int nd;
            fm_dtype dt;
            const char *name = fm_st_entry(ra, i, &dt, &nd, shape);
            size_t n = 1;
            for (int k = 0; k < nd; k++) n *= (size_t)shape[k];
            float *va = malloc(n * sizeof(float) + 4), *vb = malloc(n * sizeof(float) + 4);
            int sh[FM_ST_MAX_DIMS];
            for (int k = 0; k < nd; k++) sh[k] = (int)shape[k];
            equal = fm_st_read(ra, name, va, nd, sh) == FM_OK && fm_st_read(rb, name, vb, nd, sh) == FM_OK &&
                    !memcmp(va, vb, n * sizeof(float));
            free(va);
            free(vb);
        }
        t_check(equal, "%s: 40 iterations, save, resume to 80 equals 80 straight (every tensor)",
                fm_method_name((fm_method)m));
        fm_st_free(ra);
        fm_st_free(rb);
        fm_trainer_free(res);
        fm_trainer_free(a);
        fm_trainer_free(full);
    }

    /* a GAN step that fails part-way changes nothing: k = 3 with a huge
     * discriminator learning rate diverges after the first update */
    fm_train_config gc = fm_train_config_for(FM_METHOD_GAN);
    gc.gan.k = 3;
    gc.gan.d_optim = gc.optim;
    gc.gan.d_optim.lr = 1e12;
    fm_trainer *gt = fm_trainer_new(&gc);
    fm_params *PD = gt ? fm_gan_discriminator_params(fm_model_gan(fm_trainer_model(gt))) : NULL;
    size_t nd = PD ? fm_params_size(PD) : 0;
    float *before = PD ? malloc(nd * sizeof(float)) : NULL;
    if (before) memcpy(before, fm_params_data(PD), nd * sizeof(float));
    fm_status gs = gt ? fm_trainer_step(gt, NULL) : FM_OK;
    t_check(gs == FM_ERR_NUMERIC && before && !memcmp(before, fm_params_data(PD), nd * sizeof(float)) &&
                fm_trainer_iter(gt) == 0 && strstr(fm_last_error(), "learning rate 1e+12"),
            "a GAN step that diverges leaves the discriminator as it was: %s", fm_last_error());
    free(before);
    fm_trainer_free(gt);

    /* what each method refuses */
    fm_train_config c = fm_train_config_default();
    c.method = FM_METHOD_VAE;
    c.coupling = FM_COUPLING_OT;
    t_check(!fm_trainer_new(&c) && strstr(fm_last_error(), "couplings"), "a VAE refuses a coupling: %s", fm_last_error());
    c = fm_train_config_default();
    c.method = FM_METHOD_DDPM;
    c.flow.source = "8gaussians";
    t_check(!fm_trainer_new(&c) && strstr(fm_last_error(), "N(0, I)"), "DDPM refuses a source dataset: %s", fm_last_error());
    c = fm_train_config_default();
    c.method = FM_METHOD_VAE;
    c.vae.likelihood = FM_VAE_BERNOULLI;
    fm_trainer *tb = fm_trainer_new(&c);
    t_check(!tb && fm_last_status() == FM_ERR_ARG && strstr(fm_last_error(), "[0, 1]") && strstr(fm_last_error(), "moons"),
            "a Bernoulli VAE refuses moons (real-valued points) before training: %s", fm_last_error());
    fm_trainer_free(tb);
    /* a table is checked value by value: 1.5 in row 3, column 2 is named */
    char spec[700];
    snprintf(spec, sizeof spec, "csv:%s", t_path("bern.csv"));
    FILE *f = fopen(spec + 4, "w");
    if (f) fputs("a,b\n0,1\n0.25,0.5\n1,1.5\n", f), fclose(f);
    c.flow.data = spec;
    tb = fm_trainer_new(&c);
    t_check(!tb && strstr(fm_last_error(), "row 3, column 2") && strstr(fm_last_error(), "1.5"),
            "a Bernoulli VAE refuses a table with a value outside [0, 1]: %s", fm_last_error());
    fm_trainer_free(tb);
    if ((f = fopen(spec + 4, "w"))) fputs("a,b\n0,1\n0.25,0.5\n1,0.75\n", f), fclose(f);
    tb = t_trained(&c, 2);
    t_check(tb && !fm_trainer_get_config(tb)->standardize, "... and trains on one inside it, unstandardised %s", T_ERRP(tb));
    fm_trainer_free(tb);
    fm_trainer *d = trained(FM_METHOD_DDPM, 1, 0, 1e-3);
    double lp = 0;
    float pt[2] = {0, 0};
    fm_nll_config nc = {fm_solver_config_default(FM_SOLVER_RK4), (double[]){1, 0}, 2, FM_DIV_EXACT, 0, 0};
    t_check(d && fm_flow_log_likelihood(fm_trainer_flow(d), pt, 1, &nc, &lp, NULL, NULL) == FM_ERR_ARG,
            "the likelihood refuses a DDPM model: %s", fm_last_error());
    fm_trainer_free(d);
}
