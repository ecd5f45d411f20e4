/* test_methods.c - the method registry and the table every method fills:
 * names and summaries, which train options belong to which method, and every
 * registered method trained, saved, resumed, loaded and sampled through the
 * generic trainer and the any-model handle, with nothing named but the method.
 */
#include "harness.h"
#include "methods/flow_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void registry(void)
{
    int n = fm_method_count(), ok = n >= 4;
    for (int m = 0; m < n; m++)
        ok &= fm_method_from_name(fm_method_name((fm_method)m)) == m && fm_method_summary((fm_method)m) != NULL;
    t_check(ok && fm_method_from_name("nope") < 0 && !strcmp(fm_method_name((fm_method)n), "?") &&
                fm_method_summary((fm_method)n) == NULL,
            "registry: %d methods, each found by its name, with a summary; unknown names and ids refused", n);
    int known_latent, known_width, known_path;
    int vae = fm_method_takes_option(FM_METHOD_VAE, "latent", &known_latent);
    int gan = fm_method_takes_option(FM_METHOD_GAN, "latent", NULL);
    int fm = fm_method_takes_option(FM_METHOD_FM, "latent", NULL);
    int width = fm_method_takes_option(FM_METHOD_FM, "width", &known_width);
    int path_fm = fm_method_takes_option(FM_METHOD_FM, "path", &known_path);
    int path_ddpm = fm_method_takes_option(FM_METHOD_DDPM, "path", NULL);
    int te = fm_method_takes_option(FM_METHOD_FM, "time-embed", NULL) && fm_method_takes_option(FM_METHOD_DDPM, "time-embed", NULL);
    t_check(vae && gan && !fm && known_latent && !width && !known_width && path_fm && !path_ddpm && known_path && te,
            "options: --latent is the VAE's and GAN's, --path flow matching's, --time-embed both flows', --width everyone's");
}

/* A method's own settings, listed and set as text. */
static void settings(void)
{
    const char *metavar = NULL, *help = NULL;
    char def[32] = "";
    const char *name = fm_method_setting(FM_METHOD_GAN, 0, &metavar, &help, def, sizeof def);
    char fdef[32] = "";
    const char *fname = fm_method_setting(FM_METHOD_FM, 0, NULL, NULL, fdef, sizeof fdef);
    int listed = name && !strcmp(name, "k") && metavar && help && !strcmp(def, "1") && fname &&
                 !strcmp(fname, "predict") && !strcmp(fdef, "v") && !fm_method_setting(FM_METHOD_DDPM, 0, NULL, NULL, NULL, 0);
    fm_train_config c = fm_train_config_for(FM_METHOD_GAN);
    int set = fm_train_config_set(&c, "k", "3") == FM_OK && c.gan.k == 3;
    int bad = fm_train_config_set(&c, "k", "0") == FM_ERR_ARG && c.gan.k == 3 &&
              fm_train_config_set(&c, "k", "2x") == FM_ERR_ARG && fm_train_config_set(&c, "nope", "1") == FM_ERR_ARG;
    fm_train_config f = fm_train_config_for(FM_METHOD_FM);
    int other = fm_train_config_set(&f, "k", "2") == FM_ERR_ARG && strstr(fm_last_error(), "setting of gan");
    int known, takes = fm_method_takes_option(FM_METHOD_GAN, "k", &known) && known &&
                       !fm_method_takes_option(FM_METHOD_FM, "k", NULL);
    t_check(listed && set && bad && other && takes,
            "settings: the GAN lists k (default 1) and sets it from text; 0, 2x and unknown names refused; fm lists "
            "predict (v), DDPM nothing; fm refuses "
            "it as the GAN's (%s)", fm_last_error());
}

/* Weights of a trainer's model as saved: a checkpoint's bytes. */
static unsigned char *saved(fm_trainer *tr, const char *name, size_t *len)
{
    const char *p = t_path(name);
    if (fm_trainer_save(tr, p) != FM_OK) return NULL;
    return t_slurp(p, len);
}

static void every_method(void)
{
    for (int m = 0; m < fm_method_count(); m++) {
        const char *name = fm_method_name((fm_method)m);
        fm_train_config c = fm_train_config_for((fm_method)m);
        c.batch = 64;
        c.iters = 4;
        c.flow.ddpm.T = 50;
        fm_set_threads(1);
        fm_trainer *full = t_trained(&c, 4), *half = t_trained(&c, 2);
        char file[64];
        snprintf(file, sizeof file, "method_%s.safetensors", name);
        int ok = full && half && fm_trainer_save(half, t_path(file)) == FM_OK;
        fm_trainer *res = ok ? fm_trainer_resume(t_path(file), 4) : NULL;
        for (int i = 0; res && i < 2; i++)
            if (fm_trainer_step(res, NULL) != FM_OK) ok = 0;
        size_t la = 0, lb = 0;
        unsigned char *a = full ? saved(full, "m_a.safetensors", &la) : NULL;
        unsigned char *b = res ? saved(res, "m_b.safetensors", &lb) : NULL;
        t_check(ok && res && a && b && la == lb && !memcmp(a, b, la),
                "%s: 2 steps, save, resume, 2 steps gives the checkpoint of 4 steps, byte for byte (%zu bytes) %s", name,
                la, T_ERRP(res));
        free(a);
        free(b);
        /* the checkpoint loads as the same method and samples, from noise and from given starts */
        fm_st *st = fm_st_load(t_path(file));
        fm_model *M = st ? fm_model_load(st, 0) : NULL;
        int steps = 0;
        fm_solver_config sc = fm_solver_config_default(M ? fm_model_default_solver(M, &steps) : FM_SOLVER_EULER);
        if (steps > 10 && M && fm_model_sampling(M) == FM_SAMPLING_OWN) steps = 10;
        double grid[64];
        if (steps < 1) steps = 1;
        fm_time_grid_uniform(grid, steps, 0.0, 1.0);
        int n = 16, d = M ? fm_model_dim(M) : 0;
        float *x = calloc((size_t)n * 2, sizeof(float)), *y = calloc((size_t)n * 2, sizeof(float));
        float start[64];
        for (int i = 0; i < 64; i++) start[i] = (float)sin(i + 1.0);
        for (int i = 0; M && fm_model_vocab(M) && i < 64; i++) start[i] = (float)(i % 3 ? fm_model_vocab(M) : i % 7); /* tokens, masks */
        fm_rng r1, r2;
        fm_rng_seed(&r1, 5, FM_STREAM_NOISE);
        fm_rng_seed(&r2, 5, FM_STREAM_NOISE);
        int sampled = M && x && y && d == 2 && fm_model_sample(M, n, &r1, &sc, grid, steps + 1, x, NULL, NULL, NULL) == FM_OK;
        int finite = sampled;
        for (int i = 0; finite && i < n * 2; i++) finite = isfinite(x[i]);
        /* from given starting points (a flow's initial state, a latent model's codes), twice the same */
        fm_rng_seed(&r1, 6, FM_STREAM_NOISE);
        fm_rng_seed(&r2, 6, FM_STREAM_NOISE);
        int lat = m == FM_METHOD_VAE ? c.vae.latent : m == FM_METHOD_GAN ? c.gan.latent : 2;
        int from = M && lat * n <= 64 && fm_model_sample_from(M, n, start, &r1, &sc, grid, steps + 1, x, NULL, NULL, NULL) == FM_OK &&
                   fm_model_sample_from(M, n, start, &r2, &sc, grid, steps + 1, y, NULL, NULL, NULL) == FM_OK;
        int same = from && !memcmp(x, y, (size_t)n * 2 * sizeof(float)); /* equal streams: noise too repeats */
        t_check(M && fm_model_method(M) == (fm_method)m && !strcmp(fm_model_method_name(M), name) && finite && same,
                "%s: loads as %s, samples %d finite points, and from given starts the same points twice %s", name,
                M ? fm_model_method_name(M) : "?", n, T_ERRP(M));
        free(x);
        free(y);
        fm_model_free(M);
        fm_st_free(st);
        fm_trainer_free(full);
        fm_trainer_free(half);
        fm_trainer_free(res);
    }
}

/* A DDPM model samples with its own samplers: the ODE sampler of a flow refuses it. */
static void ddpm_refuses_ode(void)
{
    fm_train_config c = fm_train_config_for(FM_METHOD_DDPM);
    c.batch = 32;
    c.flow.ddpm.T = 20;
    fm_trainer *tr = t_trained(&c, 1);
    fm_flow *f = tr ? fm_trainer_flow(tr) : NULL;
    fm_rng r;
    fm_rng_seed(&r, 1, FM_STREAM_NOISE);
    fm_solver_config sc = fm_solver_config_default(FM_SOLVER_EULER);
    sc.sampler = "ddim";
    double grid[6];
    fm_time_grid_uniform(grid, 5, 0.0, 1.0);
    float out[8];
    fm_status s = f ? fm_flow_sample(f, 4, NULL, &r, &sc, grid, 6, out, NULL, NULL, NULL) : FM_ERR_STATE;
    t_check(s == FM_ERR_ARG && strstr(fm_last_error(), "fm_model_sample"),
            "fm_flow_sample on a DDPM model is refused, pointing at fm_model_sample: %s", fm_last_error());
    fm_status s2 = tr ? fm_model_sample(fm_trainer_model(tr), 4, &r, &sc, grid, 6, out, NULL, NULL, NULL) : FM_ERR_STATE;
    t_check(s2 == FM_OK && isfinite(out[0]), "fm_model_sample runs its DDIM sampler %s", T_ERR(s2));
    sc.sampler = "euler";
    s2 = tr ? fm_model_sample(fm_trainer_model(tr), 4, &r, &sc, grid, 6, out, NULL, NULL, NULL) : FM_ERR_STATE;
    t_check(s2 == FM_ERR_ARG, "a DDPM model refuses a sampler it does not have: %s", fm_last_error());
    fm_trainer_free(tr);
    /* a flow refuses a named sampler; any model refuses noise without a random stream */
    fm_train_config cf = fm_train_config_default();
    cf.batch = 32;
    fm_trainer *ft = t_trained(&cf, 1);
    fm_solver_config named = fm_solver_config_default(FM_SOLVER_EULER);
    named.sampler = "ddim";
    fm_status s3 = ft ? fm_model_sample(fm_trainer_model(ft), 4, &r, &named, grid, 6, out, NULL, NULL, NULL) : FM_OK;
    t_check(s3 == FM_ERR_ARG && strstr(fm_last_error(), "ODE solver"), "a flow refuses the sampler 'ddim': %s",
            fm_last_error());
    named.sampler = NULL;
    fm_status s4 = ft ? fm_model_sample(fm_trainer_model(ft), 4, NULL, &named, grid, 6, out, NULL, NULL, NULL) : FM_OK;
    t_check(s4 == FM_ERR_ARG, "sampling from noise without a random stream is refused: %s", fm_last_error());
    fm_trainer_free(ft);
}

/* The training times of each time distribution: the logit of t / t_end (the
 * skewed one's log((1 - t) / t)) has the mean and spread asked for, within 5
 * standard errors; uniform times have mean t_end / 2. */
static void time_distributions(void)
{
    enum { B = 20000 };
    static const char *const specs[] = {"uniform", "logit-normal:0.5,1.2", "skewed"};
    for (int q = 0; q < 3; q++) {
        fm_train_config c = fm_train_config_default();
        c.batch = B;
        c.iters = 1;
        fm_status s = fm_train_config_set(&c, "t-dist", specs[q]);
        fm_trainer *tr = s ? NULL : fm_trainer_new(&c);
        if (!t_check(tr != NULL, "a trainer with --t-dist %s %s", specs[q], tr ? "" : fm_last_error())) continue;
        fm__flow_draw_times(tr, B);
        double te = tr->cfg.flow.path.t_end, m = 0, v = 0, lo = 1, hi = 0;
        for (int i = 0; i < B; i++) {
            double u = tr->t[i] / te, z = q == 0 ? u : q == 1 ? log(u / (1 - u)) : log((1 - u) / u);
            lo = fmin(lo, tr->t[i]), hi = fmax(hi, tr->t[i]);
            m += z / B, v += z * z / B;
        }
        double sd = sqrt(v - m * m), wm = q == 0 ? 0.5 : q == 1 ? 0.5 : -1.2, ws = q == 0 ? sqrt(1 / 12.0) : 1.2;
        double em = fabs(m - wm) / (ws / sqrt(B)), es = fabs(sd - ws) / (ws / sqrt(2.0 * B));
        t_check(em < 5 && es < 5 && lo > 0 && hi < te,
                "t-dist %s: %s mean %.4f (want %.2f), spread %.4f (want %.4f): %.1f and %.1f standard errors; all in "
                "(0, t_end)", specs[q], q == 0 ? "t" : q == 1 ? "logit t" : "log((1-t)/t)", m, wm, sd, ws, em, es);
        fm_trainer_free(tr);
    }
}

void test_methods(void)
{
    time_distributions();
    registry();
    settings();
    every_method();
    ddpm_refuses_ode();
}
