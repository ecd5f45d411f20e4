/* test_cli.c - the command-line tool: help for every command, usage errors
 * with exit status 2, bad files with exit status 1 and a message, and a
 * small train -> sample -> eval pipeline whose outputs other programs read.
 */
#include "harness.h"
#include "io/json.h"

#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char out_buf[16384], err_buf[16384];

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Run `flowmatch args` (printf-style); returns the exit status, output in out_buf / err_buf. */
static int cli(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int cli(const char *fmt, ...)
{
    char args[2048], cmd[4096], o[600], e[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(o, sizeof o, "%s/cli.out", t_tmpdir());
    snprintf(e, sizeof e, "%s/cli.err", t_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s > '%s' 2> '%s'", t_cli(), args, o, e);
    int st = system(cmd);
    slurp(o, out_buf, sizeof out_buf);
    slurp(e, err_buf, sizeof err_buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* One line on stderr, naming the problem. */
static int one_line(const char *want) { return strstr(err_buf, want) && strchr(err_buf, '\n') == strrchr(err_buf, '\n'); }

/* out_buf as JSON (one object, nothing else on stdout): the member key of
 * the top object (a dotted path for nested objects), or NULL. */
static fm__arena jarena;
static const fm__json *json_get(const char *path)
{
    static fm__json *root;
    char err[128];
    if (!path) { /* parse a fresh out_buf */
        fm__arena_reset(&jarena);
        root = fm__json_parse(out_buf, strlen(out_buf), &jarena, err, sizeof err);
        return root;
    }
    const fm__json *n = root;
    char key[128];
    while (n && *path) {
        size_t k = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)k, path);
        path += k + (path[k] == '.');
        const fm__json *c = n->child;
        while (c && !(c->key && !strcmp(c->key, key))) c = c->next;
        n = c;
    }
    return n;
}
static double json_num(const char *path)
{
    const fm__json *n = json_get(path);
    char buf[64];
    if (!n || n->kind != FM__J_NUM || n->len >= sizeof buf) return NAN;
    snprintf(buf, sizeof buf, "%.*s", (int)n->len, n->str);
    return strtod(buf, NULL);
}

static long file_size(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 ? (long)s.st_size : -1;
}

/* Decode a PNG completely (a valid file) and give its size; 0 if it cannot. */
static int png_dims(const char *path, int *w, int *h)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    *w = *h = -1;
    if (!png_image_begin_read_from_file(&im, path)) return 0;
    im.format = PNG_FORMAT_GRAY;
    void *px = malloc(PNG_IMAGE_SIZE(im));
    int ok = px && png_image_finish_read(&im, NULL, px, 0, NULL);
    if (!ok) png_image_free(&im);
    free(px);
    if (ok) *w = (int)im.width, *h = (int)im.height;
    return ok;
}

/* sample --grid wrote a valid PNG of n images in cols columns. */
static int grid_ok(const char *path, int n, int cols)
{
    int w, h, ew = 0, eh = 0;
    return png_dims(path, &w, &h) && fm_png_grid_size(n, 28, 28, cols, &ew, &eh) == FM_OK && w == ew && h == eh;
}

/* The smallest and largest value of a .npy of n x 784 values (lo > hi if it is not one). */
static void npy_range(const char *path, int n, double *lo, double *hi)
{
    float *x = NULL;
    int nd = 0;
    int64_t sh[4] = {0};
    *lo = INFINITY, *hi = -INFINITY;
    if (fm_npy_read(path, &x, &nd, sh) == FM_OK && nd == 2 && sh[0] == n && sh[1] == 784)
        for (int i = 0; i < n * 784; i++) *lo = fmin(*lo, x[i]), *hi = fmax(*hi, x[i]);
    free(x);
}

/* The baselines on the folder of images `dir`, with the commands of 2D. */
static void image_baselines(const char *dir)
{
    double lo, hi;
    /* the tutorial's VAE by default: train, sample and reconstruct to grids, eval */
    int rc = cli("train --method vae --data mnist:%s --iters 3 --batch 2 --threads 1 --out %s", dir, t_path("iv.safetensors"));
    int header = strstr(err_buf, "latent 20, bernoulli likelihood") && strstr(err_buf, "MLP 1 x 400 relu") &&
                 strstr(err_buf, "652824 parameters");
    int trained = rc == 0;
    rc = cli("sample --model %s --n 6 --grid %s --grid-cols 4 --out %s --quiet --threads 1", t_path("iv.safetensors"),
             t_path("iv.png"), t_path("iv.npy"));
    npy_range(t_path("iv.npy"), 6, &lo, &hi);
    t_check(trained && header && rc == 0 && grid_ok(t_path("iv.png"), 6, 4) && lo >= 0 && hi <= 1,
            "vae on mnist:DIR: the tutorial's network by default; sample --grid is a 6-image PNG in rows of 4, "
            "Bernoulli means in [%.3g, %.3g] (exit %d) %s", lo, hi, rc, err_buf);
    rc = cli("datasets --draw mnist:%s --n 3 --out %s", dir, t_path("ipts.npy"));
    rc = rc ? rc : cli("sample --model %s --reconstruct %s --grid %s --out %s --quiet --threads 1", t_path("iv.safetensors"),
                       t_path("ipts.npy"), t_path("ir.png"), t_path("ir.npy"));
    npy_range(t_path("ir.npy"), 3, &lo, &hi);
    int recon = rc == 0 && grid_ok(t_path("ir.png"), 3, 8) && lo >= 0 && hi <= 1;
    rc = cli("eval --a %s --b mnist:%s --n 4 --threads 1", t_path("iv.safetensors"), dir);
    t_check(recon && rc == 0 && strstr(out_buf, "W2 (exact)") && strstr(out_buf, "MMD^2"),
            "vae: sample --reconstruct to a 3-image grid, eval against the images (exit %d) %s", rc, err_buf);
    /* the GAN: tanh output, samples back in [0, 1] */
    rc = cli("train --method gan --data mnist:%s --iters 3 --batch 2 --threads 1 --out %s", dir, t_path("ig.safetensors"));
    header = strstr(err_buf, "GAN on") && strstr(err_buf, "latent 64") && strstr(err_buf, "MLP 2 x 256 elu");
    fm_st *st = rc == 0 ? fm_st_load(t_path("ig.safetensors")) : NULL;
    const char *oa = st ? fm_st_meta(st, "gan.out_act") : NULL;
    int tanh_out = oa && !strcmp(oa, "tanh");
    fm_st_free(st);
    rc = cli("sample --model %s --n 5 --grid %s --out %s --quiet --threads 1", t_path("ig.safetensors"), t_path("ig.png"),
             t_path("ig.npy"));
    npy_range(t_path("ig.npy"), 5, &lo, &hi);
    t_check(header && tanh_out && rc == 0 && grid_ok(t_path("ig.png"), 5, 8) && lo >= 0 && hi <= 1,
            "gan on mnist:DIR: latent 64, 2 x 256, tanh output by default; a 5-image grid, samples in [%.3g, %.3g] "
            "(exit %d) %s", lo, hi, rc, err_buf);
    rc = cli("eval --a %s --b %s --n 4 --metrics w2,energy --threads 1", t_path("ig.safetensors"), t_path("iv.safetensors"));
    t_check(rc == 0 && strstr(out_buf, "energy distance"), "eval compares the GAN's and the VAE's images (exit %d) %s",
            rc, err_buf);
    /* DDPM with either network, default samplers and DDIM */
    rc = cli("train --method ddpm --data mnist:%s --width 16 --depth 1 --iters 3 --batch 2 --quiet --threads 1 --out %s", dir,
             t_path("idm.safetensors"));
    rc = rc ? rc : cli("sample --model %s --n 4 --grid %s --grid-cols 2 --out %s --quiet --threads 1", t_path("idm.safetensors"),
                       t_path("idm.png"), t_path("idm.npy"));
    int mlp = rc == 0 && grid_ok(t_path("idm.png"), 4, 2);
    rc = cli("train --method ddpm --data mnist:%s --arch unet --channels 8 --iters 2 --batch 2 --quiet --threads 1 --out %s", dir,
             t_path("idu.safetensors"));
    rc = rc ? rc : cli("sample --model %s --n 2 --solver ddim --steps 2 --grid %s --out %s --quiet --threads 1",
                       t_path("idu.safetensors"), t_path("idu.png"), t_path("idu.npy"));
    t_check(mlp && rc == 0 && grid_ok(t_path("idu.png"), 2, 8),
            "ddpm on mnist:DIR with --arch mlp (ancestral, 1000 steps) and --arch unet (ddim, 2 steps) samples to "
            "grids (exit %d) %s", rc, err_buf);
    /* what cannot work is refused on the command line */
    rc = cli("train --method vae --likelihood bernoulli --data moons --iters 1 --out %s", t_path("ib.safetensors"));
    int bern = rc == 2 && one_line("[0, 1]");
    rc = cli("train --method gan --data mnist:%s --out-act relu --iters 1 --out %s", dir, t_path("ib.safetensors"));
    int relu = rc == 2 && one_line("none or tanh");
    rc = cli("train --method vae --data mnist:%s --out-act tanh --iters 1 --out %s", dir, t_path("ib.safetensors"));
    t_check(bern && relu && rc == 2 && one_line("does not apply") && file_size(t_path("ib.safetensors")) < 0,
            "a Bernoulli VAE on moons, --out-act relu and --out-act for a VAE are usage errors (exit %d): %s", rc,
            err_buf);
}

/* Riemannian flow matching end to end: train on the torus, a map, the
 * likelihood, the geodesic W2; and the refusals. */
static void manifold_commands(void)
{
    const char *m = t_path("rfm.safetensors");
    int rc = cli("train --method rfm --data torus-mix --iters 150 --batch 128 --width 32 --depth 2 --threads 1 --quiet "
                 "--out %s", m);
    t_check(rc == 0 && file_size(m) > 1000, "train --method rfm on torus-mix (exit %d) %s", rc, err_buf);
    rc = cli("sample --model %s --n 300 --steps 10 --threads 1 --out %s --scatter %s", m, t_path("rfm.npy"),
             t_path("rfm_map.svg"));
    char svg[200] = "";
    FILE *f = fopen(t_path("rfm_map.svg"), "rb");
    if (f) {
        if (!fread(svg, 1, sizeof svg - 1, f)) svg[0] = '\0';
        fclose(f);
    }
    t_check(rc == 0 && strstr(out_buf, "rk4") && file_size(t_path("rfm_map.svg")) > 10000 && strstr(svg, "<svg"),
            "sample: rk4 by default, and --scatter draws the torus as a map with the density (exit %d) %s", rc, err_buf);
    rc = cli("nll --model %s --data torus-mix --n 50 --threads 1", m);
    t_check(rc == 0 && strstr(out_buf, "exact divergence on the manifold") && strstr(out_buf, "nats"),
            "nll of an rfm model: its ODE with the divergence on the manifold (exit %d)", rc);
    rc = cli("eval --a %s --b torus-mix --n 200 --steps 10 --threads 1 --json", m);
    double g = json_get(NULL) ? json_num("geodesic_w2") : NAN, off = json_get(NULL) ? json_num("a_off_manifold") : NAN;
    t_check(rc == 0 && g > 0 && g < 3 && off == 0,
            "eval of an rfm model adds the geodesic W2 (%g) and the share off the torus (%g) (exit %d)", g, off, rc);
    rc = cli("train --method rfm --data moons --manifold sphere --iters 2 --out %s", t_path("x.safetensors"));
    t_check(rc == 2 && one_line("the sphere takes 3 columns"), "rfm refuses 2D data on the sphere (exit %d): %s", rc, err_buf);
    rc = cli("train --method rfm --data gaussian:dim=3 --iters 2 --out %s", t_path("x.safetensors"));
    t_check(rc == 0, "rfm on a generator off the sphere puts its points on it (exit %d) %s", rc, rc ? err_buf : "");
    rc = cli("datasets --draw gaussian:dim=3 --n 50 --out %s", t_path("g3.csv"));
    rc = rc ? rc : cli("train --method rfm --data %s --iters 2 --out %s", t_path("g3.csv"), t_path("x.safetensors"));
    t_check(rc == 2 && one_line("unit vectors"), "rfm refuses a table of points off the sphere (exit %d): %s", rc, err_buf);
    rc = cli("eval --a moons --b moons --manifold cube");
    t_check(rc == 2 && one_line("must be sphere or torus"), "eval --manifold cube refused (exit %d)", rc);
}

/* MeanFlow end to end: train, sample in 1, 2 and 4 jumps and by the ODE,
 * eval, resume; and the refusals. */
/* The peer tests' additions: a training batch as a file, the cosine path's
 * noise, sigma_min 1, a schedule transformation when sampling, heun3. */
static void peer_commands(void)
{
    const char *b = t_path("batch.safetensors");
    int rc = cli("batch --path cosine --sigma 0.1 --coupling ot --n 64 --seed 3 --out %s", b);
    fm_st *st = rc == 0 ? fm_st_load(b) : NULL;
    float t[64], x0[128], x1[128], eps[128], xt[128], ut[128];
    int sh2[2] = {64, 2}, sh1[1] = {64};
    double e = INFINITY;
    if (st && !fm_st_read(st, "t", t, 1, sh1) && !fm_st_read(st, "x0", x0, 2, sh2) && !fm_st_read(st, "x1", x1, 2, sh2) &&
        !fm_st_read(st, "eps", eps, 2, sh2) && !fm_st_read(st, "xt", xt, 2, sh2) && !fm_st_read(st, "ut", ut, 2, sh2)) {
        e = 0;
        for (int i = 0; i < 128; i++) {
            double ti = t[i / 2], h = M_PI / 2;
            e = fmax(e, fabs(xt[i] - (sin(h * ti) * x1[i] + cos(h * ti) * x0[i] + 0.1 * eps[i])));
            e = fmax(e, fabs(ut[i] - h * (cos(h * ti) * x1[i] - sin(h * ti) * x0[i])));
        }
    }
    t_check(rc == 0 && e < 1e-5, "batch --path cosine --sigma 0.1 --coupling ot: x_t and u_t of the written pairs (max "
            "error %.1e, exit %d) %s", e, rc, err_buf);
    fm_st_free(st);
    rc = cli("batch --n 8");
    int r2 = cli("batch --coupling sb --sigma 0 --n 8 --out %s", t_path("b2.safetensors"));
    int r3 = cli("batch --t 2 --n 8 --out %s", t_path("b2.safetensors"));
    int r4 = cli("batch --path sb --t 0 --n 8 --out %s", t_path("b2.safetensors"));
    int r5 = cli("batch --coupling ot --n 5000 --out %s", t_path("b2.safetensors"));
    t_check(rc == 2 && r2 == 2 && r3 == 2 && r4 == 2 && r5 == 2 && file_size(t_path("b2.safetensors")) < 0,
            "batch refuses: no --out, the sb coupling at sigma 0, --t 2, the sb path's infinite target at t = 0, "
            "5000 points to match (exits %d %d %d %d %d)", rc, r2, r3, r4, r5);

    const char *m = t_path("cos.safetensors");
    rc = cli("train --path cosine --sigma 0.2 --iters 30 --threads 1 --quiet --out %s", m);
    st = rc == 0 ? fm_st_load(m) : NULL;
    const char *sg = st ? fm_st_meta(st, "path.sigma") : NULL;
    t_check(rc == 0 && sg && atof(sg) == 0.2, "train --path cosine --sigma 0.2 keeps its sigma (path.sigma %s, exit %d) %s",
            sg ? sg : "missing", rc, err_buf);
    fm_st_free(st);
    rc = cli("sample --model %s --solver sde --steps 4 --n 10 --out %s --force", m, t_path("cos.npy"));
    t_check(rc != 0 && strstr(err_buf, "adds noise"), "the sde sampler refuses the cosine path with sigma > 0 (exit %d): %s",
            rc, err_buf);
    rc = cli("train --sigma-min 1 --iters 30 --threads 1 --quiet --out %s", t_path("sm1.safetensors"));
    t_check(rc == 0, "train --sigma-min 1 (torchcfm's target CFM at sigma 1) runs (exit %d) %s", rc, err_buf);

    const char *ot = t_path("ot_sched.safetensors");
    rc = cli("train --iters 1500 --threads 1 --quiet --out %s", ot);
    double w[3] = {NAN, NAN, NAN};
    const char *how[3] = {"", "--schedule cosine", "--schedule linear-vp"};
    for (int k = 0; k < 3 && rc == 0; k++) {
        rc = cli("sample --model %s --n 1000 --solver heun3 --steps 20 --seed 1 %s --threads 1 --quiet --out %s --force",
                 ot, how[k], t_path("sched.npy"));
        if (!rc) rc = cli("eval --a %s --b moons --n 1000 --threads 1 --json", t_path("sched.npy"));
        w[k] = rc == 0 && json_get(NULL) ? json_num("w2") : NAN;
    }
    t_check(rc == 0 && fabs(w[1] - w[0]) < 0.02 && fabs(w[2] - w[0]) < 0.02,
            "sample --schedule: an ot model along the cosine and linear-vp paths (heun3, 20 steps) keeps its W2: %.4f, "
            "%.4f, %.4f (exit %d) %s", w[0], w[1], w[2], rc, err_buf);
    const char *pm = t_path("poly_sched.safetensors");
    rc = cli("train --path poly --iters 5 --threads 1 --quiet --out %s", pm);
    if (!rc) rc = cli("sample --model %s --schedule ot --n 10 --out %s --force", pm, t_path("sched.npy"));
    t_check(rc == 2 && strstr(err_buf, "grows without bound"), "sample --schedule ot refuses a poly model (a time "
            "change without bound at r = 0): %s", err_buf);
    rc = cli("sample --model %s --schedule nope --n 10 --out %s --force", ot, t_path("sched.npy"));
    int rd = cli("sample --model %s --schedule cosine --n 10 --out %s --force", t_path("gan_for_sched.safetensors"),
                 t_path("sched.npy"));
    t_check(rc == 2 && rd != 0, "sample --schedule refuses an unknown path and a missing model (exits %d %d)", rc, rd);
}

static void meanflow_commands(void)
{
    const char *m = t_path("mf.safetensors");
    int rc = cli("train --method meanflow --iters 300 --threads 1 --quiet --out %s", m);
    t_check(rc == 0 && file_size(m) > 1000, "train --method meanflow on moons (exit %d) %s", rc, err_buf);
    int ok = 1;
    for (int s = 1; s <= 4 && ok; s *= 2) {
        rc = cli("sample --model %s --n 200 --steps %d --threads 1 --out %s --force", m, s, t_path("mf.npy"));
        char want[32];
        snprintf(want, sizeof want, "NFE %d", s);
        ok = rc == 0 && strstr(out_buf, "jump") && strstr(out_buf, want);
    }
    t_check(ok, "sample --steps 1, 2, 4: jumps of the average velocity, NFE = steps (exit %d) %s", rc, err_buf);
    rc = cli("sample --model %s --n 200 --solver ode --steps 10 --threads 1 --out %s --force", m, t_path("mf.npy"));
    t_check(rc == 0 && strstr(out_buf, "NFE 20"), "sample --solver ode: 10 midpoint steps of u(x, t, 0), NFE 20 (exit %d)",
            rc);
    rc = cli("eval --a %s --b moons --n 300 --steps 1 --threads 1 --json", m);
    double w2 = json_get(NULL) ? json_num("w2") : NAN;
    t_check(rc == 0 && w2 > 0 && w2 < 3, "eval of a MeanFlow model in one step: W2 %g (exit %d)", w2, rc);
    rc = cli("nll --model %s --data moons --n 100 --threads 1", m);
    t_check(rc == 0 && strstr(out_buf, "u(x, t, 0)") && strstr(out_buf, "nats"),
            "nll of a MeanFlow model: its velocity's ODE (exit %d) %s", rc, err_buf);
    rc = cli("train --resume %s --iters 310 --threads 1 --quiet --out %s", m, t_path("mf2.safetensors"));
    t_check(rc == 0, "a MeanFlow run resumes (exit %d) %s", rc, err_buf);
    rc = cli("train --method meanflow --target split --iters 20 --threads 1 --quiet --out %s", t_path("mfs.safetensors"));
    t_check(rc == 0, "train --method meanflow --target split (exit %d) %s", rc, err_buf);
    rc = cli("train --method meanflow --ratio-r-neq-t 1.5 --iters 2 --out %s", t_path("mfx.safetensors"));
    int r2 = cli("train --method meanflow --path vp --iters 2 --out %s", t_path("mfx.safetensors"));
    int r3 = cli("sample --model %s --solver midpoint --steps 2 --out %s --force", m, t_path("mf.npy"));
    int r4 = cli("train --method meanflow --target euler --iters 2 --out %s", t_path("mfx.safetensors"));
    t_check(rc == 2 && r2 == 2 && r3 == 2 && r4 == 2 && file_size(t_path("mfx.safetensors")) < 0,
            "refused: --ratio-r-neq-t 1.5, --path vp, --solver midpoint for a MeanFlow model, --target euler "
            "(exits %d %d %d %d)", rc, r2, r3, r4);
}

void test_cli(void)
{
    int rc = cli("--help");
    t_check(rc == 0 && strstr(out_buf, "train") && strstr(out_buf, "sample") && strstr(out_buf, "eval") &&
                strstr(out_buf, "demo"),
            "flowmatch --help lists the commands (exit %d)", rc);
    rc = cli("%s", "");
    t_check(rc == 2 && one_line("missing command"), "no command: one line, exit 2 (exit %d)", rc);
    rc = cli("frobnicate");
    t_check(rc == 2 && one_line("unknown command 'frobnicate'"), "unknown command: one line (exit %d)", rc);
    rc = cli("version");
    t_check(rc == 0 && strstr(out_buf, FM_VERSION), "version prints %s", FM_VERSION);
    static const char *cmds[] = {"train",    "sample",   "eval",    "nll",       "reflow",
                                 "compare",  "demo",     "datasets", "inspect",  "classifier"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        rc = cli("%s --help", cmds[i]);
        t_check(rc == 0 && strstr(out_buf, "usage: flowmatch") && strstr(out_buf, "--help"), "%s --help (exit %d)",
                cmds[i], rc);
        rc = cli("%s --no-such-flag 1", cmds[i]);
        t_check(rc == 2 && one_line("unknown option '--no-such-flag'"), "%s rejects an unknown flag in one line (exit %d)",
                cmds[i], rc);
    }
    /* bad values: exit 2, one line naming the flag or value */
    static const struct {
        const char *args, *want;
    } bad[] = {
        {"train --width 0", "--width 0"},
        {"train --depth 99", "--depth 99"},
        {"train --act swish", "unknown --act 'swish'"},
        {"train --path ddpm", "unknown --path 'ddpm'"},
        {"train --optim lion", "unknown --optim 'lion'"},
        {"train --lr -1", "--lr -1"},
        {"train --lr abc", "--lr expects a number, got 'abc'"},
        {"train --iters 1e3x", "--iters expects an integer"},
        {"train --batch", "--batch needs a value"},
        {"train --data banana", "unknown dataset 'banana'"},
        {"train --data moons:noise=-2", "invalid parameter"},
        {"train --ema 1.5", "--ema 1.5"},
        {"train --schedule step", "unknown --schedule 'step'"},
        {"train --out model.pt", "must end in .safetensors"},
        {"train --sigma-min -1", "sigma_min -1"},
        {"train --method dpm", "unknown --method 'dpm'"},
        {"train --method vae --path ot", "--path does not apply to --method vae"},
        {"train --method ddpm --latent 3", "--latent does not apply to --method ddpm"},
        {"train --method gan --k 0", "--k 0"},
        {"train --method ddpm --T 0", "T = 0"},
        {"train --method ddpm --T 0 --data mnist:/nonexistent", "T = 0"}, /* the schedule before the data */
        {"train --method vae --likelihood poisson", "unknown --likelihood 'poisson'"},
        {"train --method gan --gan-loss wasserstein", "unknown --gan-loss 'wasserstein'"},
        {"train --method vae --depth 0", "at least one hidden layer"},
        {"compare --methods fm-ot,flowgan", "unknown method 'flowgan'"},
        {"compare --nfe 0,2", "--nfe '0,2'"},
        {"sample", "--model is required"},
        {"sample --model m.safetensors --steps 0", "--steps 0"},
        {"sample --model m.safetensors --solver rk45", "unknown solver 'rk45'"},
        {"sample --model m.safetensors --time-grid 0,0.5,0.4", "must increase strictly"},
        {"sample --model m.safetensors --time-grid 0,1,", "not a comma-separated list"},
        {"sample --model m.safetensors --time-grid 0.5,1", "must start at 0"},
        {"sample --model m.safetensors --time-grid ''", "not a comma-separated list"},
        {"train --path poly --exponent 0.5", "exponent 0.5 must be >= 1"},
        {"train --source banana", "unknown dataset 'banana'"},
        {"train --source gaussian:dim=3", "3 dimensions but the data has 2"},
        {"train --threads 5000", "--threads 5000"},
        {"eval --a moons --b circles --metrics ''", "--metrics is empty"},
        {"eval --a moons --b circles --n 1000000", "--n must lie in"},
        {"datasets --draw moons:", "nothing after ':'"},
        {"train --coupling greedy", "unknown --coupling 'greedy'"},
        {"train --coupling sb --path ot", "needs the sb path"},
        {"nll --model m.safetensors", "--model and --data are required"},
        {"nll --model m.safetensors --data moons --exact --hutchinson 4", "exclude each other"},
        {"nll --model m.safetensors --data moons --hutchinson 4 --probe sphere", "--probe must be rademacher or gaussian"},
        {"nll --model m.safetensors --data moons --probe gaussian", "--probe needs --hutchinson"},
        {"reflow --model m.safetensors --rounds 0", "--rounds 0"},
        {"reflow", "--model is required"},
        {"sample --model m.safetensors --out s.json", "must end in .npy, .csv or .txt"},
        {"eval --a moons", "both --a and --b are required"},
        {"eval --a moons --b circles --metrics w3", "unknown metric 'w3'"},
        {"eval --a moons --b banana", "not a .npy/.csv file"},
        {"datasets --draw banana", "unknown dataset 'banana'"},
        {"demo --iters 0", "--iters >= 1"},
        {"inspect a b", "unexpected argument 'b'"},
        {"classifier --channels 32", "--channels '32' must be two numbers"},
        {"classifier --out c.pt", "must end in .safetensors"},
        {"classifier --shift 9", "--shift 9"},
        {"classifier --dropout 1", "--dropout 1"},
        {"classifier --iters 0", "--iters 0"},
        {"classifier --data moons --iters 1", "labelled images"},
        {"classifier --data mnist:x,split=valid", "split must be train or test"},
        {"eval --a moons --b circles --labels l.npy", "--labels needs --classifier"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = cli("%s", bad[i].args);
        t_check(rc == 2 && one_line(bad[i].want), "'%s' -> exit %d: %.100s", bad[i].args, rc, err_buf);
    }

    /* files that are missing or malformed: exit 1 with the file in the message */
    FILE *f = fopen(t_path("ragged.csv"), "w");
    fprintf(f, "x,y\n1,2\n3\n");
    fclose(f);
    rc = cli("train --data csv:%s --iters 5 --out %s --quiet", t_path("ragged.csv"), t_path("r.safetensors"));
    t_check(rc == 1 && one_line("ragged.csv:3: row has 1 fields, expected 2"), "train on a ragged CSV: exit %d, %.120s", rc,
            err_buf);
    rc = cli("sample --model %s", t_path("missing.safetensors"));
    t_check(rc == 1 && one_line("missing.safetensors: cannot open"), "sample from a missing model: exit %d", rc);
    f = fopen(t_path("garbage.safetensors"), "wb");
    fprintf(f, "definitely not safetensors");
    fclose(f);
    rc = cli("sample --model %s", t_path("garbage.safetensors"));
    t_check(rc == 1 && one_line("header length"), "sample from a malformed model: exit %d, %.120s", rc, err_buf);

    /* a pipeline: train, sample (npy and csv, trajectory, figure), eval */
    const char *m = t_path("m.safetensors");
    rc = cli("train --iters 300 --seed 3 --ema 0.99 --out %s --loss-plot %s", m, t_path("loss.svg"));
    t_check(rc == 0 && file_size(m) > 30000 && file_size(t_path("m_loss.csv")) > 3000 && file_size(t_path("loss.svg")) > 1000 &&
                strstr(out_buf, "trained 300 iterations"),
            "train writes the checkpoint, the loss CSV and plot (exit %d) %.80s", rc, err_buf);
    rc = cli("inspect --meta %s", m);
    t_check(rc == 0 && strstr(out_buf, "path = ot") && strstr(out_buf, "mlp.widths = 64,64,64") &&
                strstr(out_buf, "train.iter = 300"),
            "the checkpoint's metadata describes the model");
    rc = cli("sample --model %s --n 500 --solver rk4 --steps 4 --seed 2 --out %s --save-every 2 --figure %s", m,
             t_path("s.npy"), t_path("traj.svg"));
    t_check(rc == 0 && strstr(out_buf, "NFE 16") && file_size(t_path("s.npy")) == 128 + 500 * 2 * 4 &&
                file_size(t_path("s_traj.npy")) == 128 + 3 * 500 * 2 * 4 && file_size(t_path("traj.svg")) > 10000,
            "sample: samples, 3 trajectory states, figure, NFE reported (exit %d) %.80s", rc, out_buf);
    fm_table t;
    int ok = fm_points_read(t_path("s.npy"), &t) == FM_OK && t.rows == 500 && t.cols == 2;
    if (ok) fm_table_free(&t);
    char svg[200000];
    slurp(t_path("traj.svg"), svg, sizeof svg);
    t_check(ok && strstr(svg, "t = 0.00") && strstr(svg, "t = 0.50") && strstr(svg, "t = 1.00") && strstr(svg, "</svg>"),
            "the samples read back; the figure has panels t = 0.00, 0.50, 1.00");
    /* reproducible from given starting points, in another format */
    rc = cli("sample --model %s --x0 %s --solver midpoint --steps 8 --out %s --quiet", m, t_path("s.npy"), t_path("a.csv"));
    int rc2 = cli("sample --model %s --x0 %s --solver midpoint --steps 8 --out %s --quiet", m, t_path("s.npy"), t_path("b.csv"));
    char a[65536], b[65536];
    slurp(t_path("a.csv"), a, sizeof a);
    slurp(t_path("b.csv"), b, sizeof b);
    t_check(rc == 0 && rc2 == 0 && strlen(a) > 1000 && !strcmp(a, b), "--x0: two runs from the same points agree");
    rc = cli("sample --model %s --solver dopri5 --n 200 --out %s", m, t_path("d.npy"));
    t_check(rc == 0 && strstr(out_buf, "dopri5") && strstr(out_buf, "rejected"), "dopri5 sampling reports its steps: %.100s",
            out_buf);
    rc = cli("eval --a %s --b moons --n 500", t_path("s.npy"));
    double w2 = NAN;
    const char *p = strstr(out_buf, "W2 (exact)");
    if (p) w2 = atof(p + 10);
    t_check(rc == 0 && w2 > 0 && w2 < 0.5 && strstr(out_buf, "energy distance") && strstr(out_buf, "MMD^2"),
            "eval of 500 samples against moons: W2 %.3f, energy, MMD (exit %d)", w2, rc);
    rc = cli("eval --a %s --b moons --n 300 --metrics w2", m);
    t_check(rc == 0 && strstr(out_buf, "samples") && !strstr(out_buf, "energy distance"), "eval of a model against a dataset (exit %d)",
            rc);
    rc = cli("eval --a %s --b gaussian:dim=3", t_path("s.npy"));
    t_check(rc == 1 && one_line("2 and 3 dimensions"), "eval of 2-D against 3-D points: exit %d", rc);

    /* a sample run that fails part-way replaces none of its outputs */
    long s_before = file_size(t_path("s.npy"));
    char s_old[65536], s_new[65536];
    slurp(t_path("s.npy"), s_old, sizeof s_old);
    rc = cli("sample --model %s --n 500 --seed 9 --out %s --figure /nonexistent/f.svg --quiet", m, t_path("s.npy"));
    slurp(t_path("s.npy"), s_new, sizeof s_new);
    t_check(rc == 1 && file_size(t_path("s.npy")) == s_before && !memcmp(s_old, s_new, (size_t)s_before),
            "sample with an unwritable figure exits 1 and leaves the earlier samples alone: %.100s", err_buf);
    f = fopen(t_path("nan.csv"), "w");
    fprintf(f, "0.5,1e39\n");
    fclose(f);
    rc = cli("sample --model %s --x0 %s --out %s", m, t_path("nan.csv"), t_path("n.npy"));
    t_check(rc == 1 && one_line("not a finite number"), "--x0 with an out-of-range value: exit %d, %.100s", rc, err_buf);

    /* a failed run never overwrites a good checkpoint */
    long before = file_size(m);
    rc = cli("train --optim sgd --lr 10000 --iters 50 --out %s --quiet", m);
    fm_st *st = fm_st_load(m);
    t_check(rc == 1 && one_line("training diverged") && file_size(m) == before && st &&
                !strcmp(fm_st_meta(st, "train.iter"), "300"),
            "a diverging run exits 1 and leaves the earlier checkpoint intact: %.100s", err_buf);
    fm_st_free(st);
    /* resume continues to the new total and keeps the loss history */
    rc = cli("train --resume %s --iters 350 --out %s --loss-csv %s --quiet", m, t_path("m2.safetensors"), t_path("m_loss.csv"));
    st = fm_st_load(t_path("m2.safetensors"));
    fm_table lt = {0};
    int rows = fm_csv_read(t_path("m_loss.csv"), &lt) == FM_OK ? lt.rows : -1;
    int contiguous = rows == 350;
    for (int i = 0; contiguous && i < rows; i++) contiguous = lt.data[3 * i] == (float)(i + 1);
    fm_table_free(&lt);
    t_check(rc == 0 && st && !strcmp(fm_st_meta(st, "train.iter"), "350") && contiguous,
            "--resume continues from 300 to 350; the loss CSV holds iterations 1..350 (%d rows; exit %d)", rows, rc);
    fm_st_free(st);
    rc = cli("train --resume %s --iters 100 --out %s --quiet", m, t_path("m3.safetensors"));
    t_check(rc == 2 && one_line("done 300 iterations already") && file_size(t_path("m3.safetensors")) < 0,
            "--resume with fewer --iters than done: exit %d, nothing written", rc);
    rc = cli("train --resume %s --iters 400 --batch 64 --out %s --quiet", m, t_path("m3.safetensors"));
    t_check(rc == 2 && one_line("--batch cannot be changed when resuming"), "--resume refuses --batch: exit %d", rc);

    /* likelihood, couplings and reflow through the tool */
    rc = cli("nll --model %s --data moons --n 300 --steps 20 --plot %s --out %s", m, t_path("dens.svg"), t_path("lp.npy"));
    const char *ip = strstr(out_buf, "integrates to");
    double mass = ip ? atof(ip + 14) : NAN;
    t_check(rc == 0 && strstr(out_buf, "NLL") && strstr(out_buf, "bits per dimension") && fabs(mass - 1) < 0.05 &&
                file_size(t_path("lp.npy")) == 128 + 300 * 4 && file_size(t_path("dens.svg")) > 10000,
            "nll: per-point log p, mean NLL, a density map integrating to %.3f (exit %d)", mass, rc);
    rc = cli("nll --model %s --data moons --n 200 --steps 10 --hutchinson 8 --probe gaussian", m);
    t_check(rc == 0 && strstr(out_buf, "standard error"), "nll with Hutchinson reports its standard error (exit %d)", rc);
    rc = cli("nll --model %s --data gaussian:dim=3 --n 10", m);
    t_check(rc == 1 && one_line("3 dimensions, the model 2"), "nll of 3-D points under a 2-D model: exit %d", rc);
    rc = cli("train --data circles --source moons --iters 2 --batch 16 --out %s --quiet", t_path("mm.safetensors"));
    if (rc == 0) rc = cli("nll --model %s --data circles --n 10", t_path("mm.safetensors"));
    t_check(rc == 1 && one_line("source 'moons") && one_line("has no density"),
            "nll of a model whose source has no density: exit %d", rc);
    rc = cli("train --coupling ot --iters 30 --batch 64 --out %s --quiet", t_path("ot.safetensors"));
    st = fm_st_load(t_path("ot.safetensors"));
    t_check(rc == 0 && st && !strcmp(fm_st_meta(st, "train.coupling"), "ot"), "train --coupling ot (exit %d)", rc);
    fm_st_free(st);
    rc = cli("train --coupling sb --iters 10 --batch 64 --out %s --quiet", t_path("sb.safetensors"));
    st = fm_st_load(t_path("sb.safetensors"));
    t_check(rc == 0 && st && !strcmp(fm_st_meta(st, "path"), "sb") && !strcmp(fm_st_meta(st, "path.sigma"), "0.5"),
            "train --coupling sb picks the bridge path with sigma 0.5 (exit %d)", rc);
    fm_st_free(st);
    rc = cli("reflow --model %s --rounds 1 --iters 50 --pairs 500 --eval-n 200 --solver rk4 --steps 10 --out %s --quiet", m,
             t_path("rf.safetensors"));
    t_check(rc == 0 && strstr(out_buf, "W2 (1 Euler step)") && strstr(out_buf, "\n    1 ") && file_size(t_path("rf.safetensors")) > 30000,
            "reflow: one round, the before/after table and the checkpoint (exit %d)", rc);
    rc = cli("eval --a %s --b moons --n 300 --metrics w2", m);
    t_check(rc == 0 && strstr(out_buf, "normalised path energy"), "eval of a model reports its path energy (exit %d)", rc);

    /* the baselines through the tool: train, sample, eval, and what each refuses */
    const char *md = t_path("ddpm.safetensors"), *mv = t_path("vae.safetensors"), *mg = t_path("gan.safetensors");
    rc = cli("train --method ddpm --iters 30 --batch 64 --out %s --quiet", md);
    rc2 = cli("train --method vae --iters 30 --batch 64 --out %s --quiet", mv);
    int rc3 = cli("train --method gan --iters 30 --batch 64 --lr 2e-4 --out %s --loss-csv %s --quiet", mg, t_path("gl.csv"));
    char gl[200000];
    slurp(t_path("gl.csv"), gl, sizeof gl);
    t_check(rc == 0 && rc2 == 0 && rc3 == 0 && !strncmp(gl, "iter,loss,lr,d,g\n", 16),
            "train --method ddpm, vae, gan; the GAN's loss CSV has both losses (exits %d %d %d)", rc, rc2, rc3);
    rc = cli("sample --model %s --n 200 --solver ddim --steps 5 --figure %s --out %s", md, t_path("dd.svg"), t_path("dd.npy"));
    t_check(rc == 0 && strstr(out_buf, "DDPM ddim in 5 steps, NFE 5") && file_size(t_path("dd.npy")) == 128 + 200 * 8 &&
                file_size(t_path("dd.svg")) > 1000,
            "sample a DDPM model with DDIM, trajectory figure (exit %d) %.100s", rc, out_buf);
    rc = cli("sample --model %s --n 100 --out %s", md, t_path("da.npy"));
    t_check(rc == 0 && strstr(out_buf, "ancestral in 1000 steps, NFE 1000"), "a DDPM model samples ancestrally by default (exit %d)",
            rc);
    rc = cli("sample --model %s --n 100 --out %s", mv, t_path("vs.npy"));
    rc2 = cli("sample --model %s --reconstruct %s --out %s", mv, t_path("dd.npy"), t_path("vr.npy"));
    t_check(rc == 0 && rc2 == 0 && file_size(t_path("vs.npy")) == 128 + 100 * 8 && file_size(t_path("vr.npy")) == 128 + 200 * 8 &&
                strstr(out_buf, "reconstructed 200 points"),
            "sample a VAE, and reconstruct points through it (exits %d %d)", rc, rc2);
    rc = cli("eval --a %s --b moons --n 200 --metrics w2,energy", mg);
    t_check(rc == 0 && strstr(out_buf, "gan, NFE 1") && strstr(out_buf, "energy distance") && !strstr(out_buf, "path energy"),
            "eval of a GAN model (exit %d)", rc);
    rc = cli("eval --a %s --b %s --n 200 --metrics w2 --solver ddim --steps 10", md, mv);
    t_check(rc == 0 && strstr(out_buf, "ddpm ddim, NFE 10") && strstr(out_buf, "vae, NFE 1"), "eval of a DDPM model against a VAE (exit %d)",
            rc);
    rc = cli("eval --a %s --b %s --n 200 --metrics w2 --solver euler --steps 20", md, m);
    t_check(rc == 0 && strstr(out_buf, "ddpm ancestral, NFE 1000") && strstr(out_buf, "euler, NFE 20"),
            "eval: a flow's solver options leave the DDPM side on its own sampler (exit %d)", rc);
    static const struct {
        const char *cmd, *model, *want;
        int code;
    } refuse[] = {
        {"sample --solver euler --model", "ddpm", "samples with --solver ancestral or ddim", 2},
        {"sample --steps 2000 --model", "ddpm", "--steps 2000 must lie in 1..1000 for this DDPM model", 2},
        {"sample --steps 3 --model", "gan", "--steps does not apply to a GAN model", 2},
        {"sample --figure x.svg --model", "vae", "need a flow or DDPM model", 2},
        {"sample --reconstruct x.npy --model", "gan", "--reconstruct needs a VAE model", 2},
        {"nll --data moons --model", "ddpm", "needs a flow-matching model, a CNF or a normalizing flow", 1},
        {"reflow --model", "vae", "needs a flow-matching model", 1},
        {"sample --solver ddim --model", "m", "is a DDPM sampler", 2},
    };
    for (size_t i = 0; i < sizeof refuse / sizeof refuse[0]; i++) {
        char mp[100];
        snprintf(mp, sizeof mp, "%s.safetensors", refuse[i].model);
        rc = cli("%s %s", refuse[i].cmd, t_path(mp));
        t_check(rc == refuse[i].code && one_line(refuse[i].want), "'%s %s' -> exit %d: %s", refuse[i].cmd, refuse[i].model,
                rc, err_buf);
    }
    /* the lineage's models through the CLI: a CNF is a flow (nll by the ODE, sample, eval); an NF's nll is exact */
    {
        int ra = cli("train --method cnf --iters 4 --batch 32 --train-steps 2 --quiet --out %s", t_path("cnf.safetensors"));
        int rb = cli("nll --model %s --data moons --n 50 --steps 10", t_path("cnf.safetensors"));
        int b_ok = rb == 0 && strstr(out_buf, "rk4") && strstr(out_buf, "NLL");
        int rl = cli("eval --a %s --b moons --n 100", t_path("cnf.safetensors"));
        t_check(!ra && b_ok && rl == 0 && strstr(out_buf, "W2"), "cnf: trains, nll solves its ODE, eval samples it (exits %d %d %d)",
                ra, rb, rl);
        ra = cli("train --method nf --flow-layers 2 --iters 4 --batch 32 --quiet --out %s", t_path("nf.safetensors"));
        rb = cli("nll --model %s --data moons --n 50", t_path("nf.safetensors"));
        b_ok = rb == 0 && strstr(out_buf, "exact, by the change of variables");
        rl = cli("sample --model %s --n 20 --out %s --quiet", t_path("nf.safetensors"), t_path("nf.npy"));
        int rd = cli("inspect %s", t_path("nf.safetensors"));
        t_check(!ra && b_ok && !rl && !rd && strstr(out_buf, "nf.layers = 2"),
                "nf: trains, nll gives its exact value, sample and inspect take it (exits %d %d %d %d)", ra, rb, rl, rd);
        ra = cli("train --method nf --flow-layers 0 --iters 4 --quiet --out %s", t_path("nf0.safetensors"));
        rb = cli("train --method fm --flow-layers 3 --iters 4 --quiet --out %s", t_path("nf0.safetensors"));
        t_check(ra == 2 && rb == 2, "--flow-layers 0 refused, and --flow-layers refused for fm (exits %d %d)", ra, rb);
    }

    /* stochastic sampling of a flow: the same seed gives the same points, G = 0 is Euler's, nll refuses it */
    {
        const char *cm = t_path("cnf.safetensors");
        int ra = cli("sample --model %s --solver sde --noise 0.7 --steps 20 --n 30 --seed 3 --out %s", cm, t_path("sde1.npy"));
        int sde_line = strstr(out_buf, "sde (Euler-Maruyama, noise G = 0.7)") != NULL;
        int rb = cli("sample --model %s --solver sde --noise 0.7 --steps 20 --n 30 --seed 3 --out %s", cm, t_path("sde2.npy"));
        int rl = cli("sample --model %s --solver sde --noise 0 --steps 20 --n 30 --seed 3 --out %s", cm, t_path("sde0.npy"));
        int rd = cli("sample --model %s --solver euler --steps 20 --n 30 --seed 3 --out %s", cm, t_path("eul.npy"));
        size_t n1, n2, n3, n4;
        unsigned char *a1 = t_slurp(t_path("sde1.npy"), &n1), *a2 = t_slurp(t_path("sde2.npy"), &n2);
        unsigned char *a3 = t_slurp(t_path("sde0.npy"), &n3), *a4 = t_slurp(t_path("eul.npy"), &n4);
        int same = a1 && a2 && n1 == n2 && !memcmp(a1, a2, n1), ode = a3 && a4 && n3 == n4 && !memcmp(a3, a4, n3);
        int differs = a1 && a3 && n1 == n3 && memcmp(a1, a3, n1);
        free(a1), free(a2), free(a3), free(a4);
        t_check(!ra && !rb && !rl && !rd && sde_line && same && ode && differs,
                "sample --solver sde: the same seed gives the same bits, --noise 0 gives Euler's, noise changes them "
                "(exits %d %d %d %d)", ra, rb, rl, rd);
        ra = cli("nll --model %s --data moons --n 10 --solver sde", cm);
        int one = one_line("not the stochastic sde");
        rb = cli("sample --model %s --solver sde --noise -1 --n 5 --out %s", cm, t_path("x.npy"));
        t_check(ra == 2 && one && rb == 2 && one_line("--noise"), "nll refuses sde, --noise -1 refused (exits %d %d)", ra, rb);
    }

    /* score models: train on each SDE, sample by the PF-ODE (dopri5 by default), em and pc; nll by the PF-ODE;
     * flows predicting eps and x1; time distributions; EDM spacing */
    {
        static const char *const sdes[] = {"ve", "vp", "subvp"};
        int nbad = 0;
        char ms[3][64];
        for (int q = 0; q < 3; q++) {
            snprintf(ms[q], sizeof ms[q], "%s", t_path(sdes[q]));
            strcat(ms[q], ".safetensors");
            nbad += cli("train --method score --sde %s --iters 6 --batch 32 --quiet --out %s", sdes[q], ms[q]) != 0;
            nbad += cli("sample --model %s --n 20 --out %s", ms[q], t_path("sc.npy")) != 0 || !strstr(out_buf, "dopri5");
            nbad += cli("sample --model %s --solver em --steps 10 --n 20 --out %s", ms[q], t_path("sc.npy")) != 0 ||
                   !strstr(out_buf, "em (Euler-Maruyama on the reverse SDE");
            nbad += cli("sample --model %s --solver pc --steps 10 --snr 0.2 --corrector-steps 2 --n 20 --out %s", ms[q],
                       t_path("sc.npy")) != 0 || !strstr(out_buf, "2 Langevin steps, snr 0.2") || !strstr(out_buf, "NFE 30");
            nbad += cli("nll --model %s --data moons --n 20 --steps 10", ms[q]) != 0 || !strstr(out_buf, "NLL");
            nbad += cli("inspect %s", ms[q]) != 0 || !strstr(out_buf, "flow.predict = eps");
        }
        t_check(nbad == 0, "score on ve, vp, subvp: trains, samples by dopri5, em and pc (NFE with the corrector), nll "
                          "and inspect (%d checks failed)", nbad);
        int ra = cli("train --method score --sde bogus --iters 2 --quiet --out %s", t_path("sb.safetensors"));
        int one = one_line("ve, vp or subvp");
        int rb = cli("train --method score --path ot --iters 2 --quiet --out %s", t_path("sb.safetensors"));
        int rcc = cli("sample --model %s --solver pc --snr 0 --n 5 --out %s", ms[1], t_path("sc.npy"));
        int rd = cli("sample --model %s --solver em --n 5 --out %s", t_path("cnf.safetensors"), t_path("sc.npy"));
        int em_ot = one_line("signal a_t > 0");
        t_check(ra == 2 && one && rb == 2 && rcc == 2 && rd != 0 && em_ot,
                "score refuses an unknown SDE and --path; pc refuses snr 0; em refuses the ot path (exits %d %d %d %d)",
                ra, rb, rcc, rd);
        ra = cli("train --predict eps --iters 2 --quiet --out %s", t_path("pe.safetensors"));
        one = one_line("no signal");
        rb = cli("train --predict eps --path vp --iters 6 --batch 32 --quiet --out %s", t_path("pe.safetensors"));
        rcc = cli("train --predict x1 --t-dist logit-normal:0.5,1.2 --iters 6 --batch 32 --quiet --out %s",
                 t_path("px.safetensors"));
        rd = cli("sample --model %s --n 10 --steps 12 --spacing edm:5 --out %s", t_path("px.safetensors"), t_path("sc.npy"));
        int re = cli("inspect %s", t_path("px.safetensors"));
        int meta = strstr(out_buf, "flow.predict = x1") && strstr(out_buf, "train.t_dist = logit-normal:0.5,1.2");
        int rf = cli("train --resume %s --iters 8 --quiet --out %s", t_path("px.safetensors"), t_path("px2.safetensors"));
        int rg = cli("train --t-dist logit-normal:0,0 --iters 2 --quiet --out %s", t_path("pe.safetensors"));
        int rh = cli("sample --model %s --n 10 --spacing edm:x --out %s", t_path("px.safetensors"), t_path("sc.npy"));
        t_check(ra == 2 && one && !rb && !rcc && !rd && !re && meta && !rf && rg == 2 && rh == 2,
                "--predict eps refused on ot, taken on vp; x1 with a logit-normal t-dist trains, saves both, resumes; "
                "--spacing edm:5 samples; bad t-dist and spacing refused (exits %d %d %d %d %d %d %d %d)", ra, rb, rcc, rd,
                re, rf, rg, rh);
    }

    /* --json: one object on stdout with the numbers the text shows */
    {
        fm__arena_init(&jarena, 1 << 16);
        const char *jm = t_path("px.safetensors");
        int ra = cli("eval --a %s --b moons --n 200 --metrics w2", jm);
        char *w = strstr(out_buf, "W2 (exact)");
        double w2_text = w ? strtod(w + 10, NULL) : NAN;
        int rb = cli("eval --a %s --b moons --n 200 --metrics w2,energy --json", jm);
        int ok_eval = json_get(NULL) && fabs(json_num("w2") - w2_text) < 1e-6 && json_num("a_nfe") == 16 &&
                      json_num("a_points") == 200 && !isnan(json_num("energy_distance")) &&
                      json_get("path_energy_a.normalised") != NULL;
        int rj = cli("nll --model %s --data moons --n 50 --steps 10 --json --hutchinson 2", jm);
        int ok_nll = json_get(NULL) && json_num("points") == 50 && json_num("nfe") == 40 &&
                     fabs(json_num("nll") + json_num("mean_log_p")) < 1e-12 && json_num("standard_error") > 0;
        int rd = cli("inspect --json %s", jm);
        json_get(NULL);
        int ok_ins = json_num("count") > 0 && json_get("tensors") && json_get("tensors")->kind == FM__J_ARR &&
                     json_get("tensors")->count == json_num("count");
        /* keys with dots are members of "metadata" as they stand */
        const fm__json *jmd = json_get("metadata"), *pm = jmd ? jmd->child : NULL;
        while (pm && strcmp(pm->key, "flow.predict")) pm = pm->next;
        ok_ins = ok_ins && pm && pm->kind == FM__J_STR && !strcmp(pm->str, "x1");
        int re = cli("compare --iters 10 --batch 32 --n 50 --nfe 2 --methods fm-ot,vae --out-dir %s --quiet --json",
                     t_path("cmpj"));
        const fm__json *jrows = json_get(NULL) ? json_get("rows") : NULL;
        int ok_cmp = jrows && jrows->kind == FM__J_ARR && jrows->count == 1 + 2 + 1 && json_num("iters") == 10;
        t_check(!ra && !rb && ok_eval && !rj && ok_nll && !rd && ok_ins && !re && ok_cmp,
                "--json: eval (W2 %.6f as the text's), nll, inspect and compare print one object each (exits %d %d %d "
                "%d; %d %d %d %d)", w2_text, rb, rj, rd, re, ra, ok_eval, ok_nll, ok_ins * 10 + ok_cmp);
        fm__arena_free(&jarena);
    }

    /* PyTorch to flowmatch: the tutorial's nn.Sequential state_dict, imported, samples as PyTorch's own
     * midpoint steps did from the same starting points; fine-tuned by train --resume; bad files refused */
    {
        const char *fx = getenv("FM_FIXTURES") ? getenv("FM_FIXTURES") : "tests/fixtures";
        char sd[1024];
        snprintf(sd, sizeof sd, "%s/torch_sd.safetensors", fx);
        fm_st *ref = t_fixture("torch_import_ref.safetensors");
        size_t nx = 0, ns = 0;
        float *x0 = ref ? t_read(ref, "x0", &nx) : NULL, *want = ref ? t_read(ref, "samples", &ns) : NULL;
        int64_t shape[2] = {(int64_t)nx / 2, 2};
        int wrote = x0 && fm_npy_write(t_path("tx0.npy"), x0, 2, shape) == FM_OK;
        int ra = cli("import --weights %s --standardize off --out %s", sd, t_path("timp.safetensors"));
        int rb = cli("sample --model %s --x0 %s --solver midpoint --steps 8 --out %s", t_path("timp.safetensors"),
                     t_path("tx0.npy"), t_path("timp.npy"));
        fm_table got = {0};
        double worst = INFINITY;
        if (!rb && fm_points_read(t_path("timp.npy"), &got) == FM_OK && (size_t)got.rows * got.cols == ns) {
            worst = 0;
            for (size_t i = 0; i < ns; i++) worst = fmax(worst, fabs(got.data[i] - want[i]));
        }
        fm_table_free(&got);
        t_family_max("torch import", worst);
        t_check(wrote && !ra && !rb && worst < 1e-5,
                "import: PyTorch's nn.Sequential state_dict (0.weight ...) samples here as in PyTorch: max |x - x_torch| "
                "%.1e over %zu values after 8 midpoint steps (exits %d %d)", worst, ns, ra, rb);
        ra = cli("train --resume %s --iters 20 --quiet", t_path("timp.safetensors"));
        rb = cli("import --weights %s --width 32 --out %s", sd, t_path("timp2.safetensors"));
        int shape_msg = strstr(err_buf, "0.weight") && strstr(err_buf, "[64, 3]") && strstr(err_buf, "[32, 3]");
        int ri = cli("import --weights %s --depth 2 --out %s", sd, t_path("timp2.safetensors"));
        int depth_msg = strstr(err_buf, "'4.weight'") && strstr(err_buf, "[2, 64]");
        /* a model with fewer tensors than the file: the first one left over is named */
        fm_params *P = fm_params_new();
        int s0[2] = {64, 3}, s1[1] = {64};
        fm_params_add(P, "net.0.weight", 2, s0);
        fm_params_add(P, "net.0.bias", 1, s1);
        fm_st *sdf = fm_st_load(sd);
        int extra_msg = sdf && fm_params_import(P, sdf, NULL) == FM_ERR_FORMAT &&
                        strstr(fm_last_error(), "'2.weight' matches no parameter");
        fm_st_free(sdf);
        fm_params_free(P);
        int rd = cli("import --weights %s --iters 5 --out %s", sd, t_path("timp2.safetensors"));
        int re = cli("import --weights %s --method vae --out %s", sd, t_path("timp2.safetensors"));
        t_check(!ra && rb == 1 && shape_msg && ri == 1 && depth_msg && extra_msg && rd == 2 && re == 2 &&
                    file_size(t_path("timp2.safetensors")) < 0,
                "import: fine-tuned by train --resume; a wrong width or depth names the tensor and both shapes, a "
                "tensor left over is named; --iters and a VAE refused (exits %d %d %d %d %d)", ra, rb, ri, rd, re);
        free(x0);
        free(want);
        fm_st_free(ref);
    }

    /* compare end to end on a tiny budget */
    rc = cli("compare --iters 20 --batch 32 --n 100 --nfe 1,4 --out-dir %s --quiet", t_path("cmp"));
    char csv_txt[20000], md_txt[20000];
    slurp(t_path("cmp/compare.csv"), csv_txt, sizeof csv_txt);
    int crows = -1; /* lines after the header */
    for (const char *q = csv_txt; *q; q++) crows += *q == '\n';
    slurp(t_path("cmp/compare.md"), md_txt, sizeof md_txt);
    /* data + 3 flows x (2 euler + midpoint) + score (2 euler + em + pc + midpoint) + ddpm (2 ddim + 2 ancestral)
     * + vae + gan */
    t_check(rc == 0 && crows == 1 + 9 + 5 + 4 + 2 && strstr(md_txt, "| fm-ot | euler | 4 |") &&
                strstr(md_txt, "| score-vp | pc | 100 |") && file_size(t_path("cmp/score-vp.safetensors")) > 1000 &&
                strstr(md_txt, "| ddpm | ancestral | 1000 |") && strstr(md_txt, "| gan | one pass | 1 |") &&
                file_size(t_path("cmp/compare.svg")) > 10000 && file_size(t_path("cmp/vae.safetensors")) > 1000,
            "compare: trains seven methods, writes the table (%d rows), the figure and the checkpoints (exit %d) %.200s",
            crows, rc, err_buf);

    /* the output folder is made with its parents; a file in the way is an error */
    rc = cli("compare --methods gan --iters 5 --batch 16 --n 50 --out-dir %s --quiet", t_path("cmp2/a/b"));
    int nested_ok = rc == 0 && file_size(t_path("cmp2/a/b/compare.csv")) > 0;
    rc = cli("compare --methods gan --iters 5 --batch 16 --n 50 --out-dir %s --quiet", t_path("cmp/compare.csv/x"));
    t_check(nested_ok && rc == 1 && strstr(err_buf, "output folder") && one_line("not a folder"),
            "compare makes a nested output folder and refuses a file in the way (exit %d): %s", rc, err_buf);

    /* images: a three-digit MNIST folder, drawn as a PNG grid, trained on, sampled to a grid */
    {
        static uint8_t im[3 * 784];
        for (int i = 0; i < 3 * 784; i++) im[i] = (uint8_t)(i * 37 % 256);
        uint8_t lab[3] = {0, 7, 9};
        rc = cli("datasets --draw mnist:/no/such/dir --n 4"); /* before the folder exists */
        int missing = rc == 1 && one_line("train-images-idx3-ubyte");
        t_mnist_write(t_path("cli_mn"), "train", 3, 28, im, lab, 3);
        rc = cli("datasets --draw mnist:%s --n 4 --plot %s", t_path("cli_mn"), t_path("mn4.png"));
        t_check(missing && rc == 0 && file_size(t_path("mn4.png")) > 100,
                "datasets draws mnist:DIR as a PNG grid; a missing folder is exit 1 (exit %d) %s", rc, err_buf);
        t_mnist_write(t_path("cli_mn27"), "train", 3, 27, im, lab, 3); /* images of the wrong size: a bad file, exit 1 */
        rc = cli("datasets --draw mnist:%s --n 4", t_path("cli_mn27"));
        t_check(rc == 1 && one_line("28 x 28"), "27 x 28 images are a bad file, exit 1 (exit %d): %s", rc, err_buf);
        rc = cli("datasets --draw mnist:%s --n 4 --plot %s", t_path("cli_mn"), t_path("mn4.svg"));
        t_check(rc == 2 && one_line(".png"), "an image set's --plot must be .png (exit %d): %s", rc, err_buf);
        rc = cli("train --data mnist:%s --width 32 --depth 1 --iters 3 --batch 2 --quiet --out %s", t_path("cli_mn"),
                 t_path("mnf.safetensors"));
        int trained = rc == 0;
        rc = cli("sample --model %s --n 6 --steps 2 --solver euler --grid %s --grid-cols 3 --out %s --quiet",
                 t_path("mnf.safetensors"), t_path("mnf.png"), t_path("mnf.npy"));
        t_check(trained && rc == 0 && file_size(t_path("mnf.png")) > 100 && file_size(t_path("mnf.npy")) == 128 + 6 * 784 * 4,
                "a flow trains on mnist:DIR and samples to a PNG grid (exit %d) %s", rc, err_buf);
        rc = cli("nll --model %s --data mnist:%s --n 4 --hutchinson 2 --solver euler --steps 3 --dequantize",
                 t_path("mnf.safetensors"), t_path("cli_mn"));
        t_check(rc == 0 && strstr(out_buf, "of the 8-bit pixels (dequantised, an upper bound)"),
                "nll --dequantize reports bits per dimension of the 8-bit pixels (exit %d) %s", rc, err_buf);
        rc = cli("nll --model %s --data moons --n 4 --dequantize", t_path("m.safetensors"));
        t_check(rc == 2 && one_line("image model"), "nll --dequantize on a 2D model refused (exit %d): %s", rc, err_buf);
        rc = cli("sample --model %s --n 3 --steps 4 --solver euler --traj-grid %s --out %s --quiet", t_path("mnf.safetensors"),
                 t_path("mnt.png"), t_path("mnt.npy"));
        int tw = 0, th = 0, pw, ph;
        fm_png_grid_size(3 * 5, 28, 28, 5, &tw, &th); /* 3 samples at 5 states */
        png_dims(t_path("mnt.png"), &pw, &ph);
        t_check(rc == 0 && pw == tw && ph == th, "--traj-grid: 3 samples x 5 states, a %d x %d PNG (expected %d x %d; exit %d) %s",
                pw, ph, tw, th, rc, err_buf);
        /* the U-Net: train, inspect, sample to a grid, eval, all without architecture flags after training */
        rc = cli("train --data mnist:%s --arch unet --channels 8 --iters 2 --batch 2 --quiet --out %s", t_path("cli_mn"),
                 t_path("mnu.safetensors"));
        int utrained = rc == 0;
        rc = cli("inspect %s", t_path("mnu.safetensors"));
        int uinspect = rc == 0 && strstr(out_buf, "net.conv_in.weight") && strstr(out_buf, "net.up.2.skip.weight") &&
                       strstr(out_buf, "model = unet") && strstr(out_buf, "unet.mult = 1,2,2");
        rc = cli("sample --model %s --n 4 --steps 2 --solver euler --grid %s --out %s --quiet", t_path("mnu.safetensors"),
                 t_path("mnu.png"), t_path("mnu.npy"));
        int usample = rc == 0 && file_size(t_path("mnu.png")) > 100 && file_size(t_path("mnu.npy")) == 128 + 4 * 784 * 4;
        rc = cli("eval --a %s --b mnist:%s --n 4 --steps 2 --solver euler --metrics w2", t_path("mnu.safetensors"),
                 t_path("cli_mn"));
        t_check(utrained && uinspect && usample && rc == 0,
                "train --arch unet --channels 8 on mnist:DIR; inspect, sample --grid and eval take its checkpoint "
                "(train %d, inspect %d, sample %d, eval exit %d) %s", utrained, uinspect, usample, rc, err_buf);
        rc = cli("train --data moons --arch unet --iters 1 --out %s", t_path("mu.safetensors"));
        int umoons = rc == 2 && one_line("image data");
        rc = cli("train --data mnist:%s --arch unet --width 16 --iters 1 --out %s", t_path("cli_mn"), t_path("mu.safetensors"));
        int uwidth = rc == 2 && one_line("--width");
        rc = cli("train --data mnist:%s --channels 16 --iters 1 --out %s", t_path("cli_mn"), t_path("mu.safetensors"));
        int uch = rc == 2 && one_line("--arch unet");
        rc = cli("train --data mnist:%s --arch unet --channels 12 --iters 1 --out %s", t_path("cli_mn"), t_path("mu.safetensors"));
        t_check(umoons && uwidth && uch && rc == 2 && one_line("multiple of 8") && file_size(t_path("mu.safetensors")) < 0,
                "--arch unet on moons, with --width, --channels without it and --channels 12 are usage errors (exit %d): %s",
                rc, err_buf);
        /* class-conditional: labels 0, 7 and 9 make 10 classes; one grid row per class */
        rc = cli("train --data mnist:%s --arch unet --channels 8 --class-cond --label-dropout 0.2 --iters 2 --batch 4 "
                 "--quiet --out %s", t_path("cli_mn"), t_path("mnc.safetensors"));
        int ctrained = rc == 0;
        fm_st *cst = fm_st_load(t_path("mnc.safetensors"));
        const char *ncl = cst ? fm_st_meta(cst, "unet.num_classes") : NULL, *ldr = cst ? fm_st_meta(cst, "train.label_dropout") : NULL;
        int cinspect = cst && fm_st_find(cst, "net.label_emb.weight") >= 0 && ncl && !strcmp(ncl, "10") && ldr && !strcmp(ldr, "0.2");
        fm_st_free(cst);
        rc = cli("sample --model %s --guidance 2 --steps 2 --solver euler --grid %s --grid-cols 3 --out %s",
                 t_path("mnc.safetensors"), t_path("mnc.png"), t_path("mnc.npy"));
        int cgrid = rc == 0 && file_size(t_path("mnc.npy")) == 128 + 30 * 784 * 4 &&
                    file_size(t_path("mnc_labels.npy")) == 128 + 30 * 4 && strstr(out_buf, "labels by row (guidance 2");
        fm_table labt = {0};
        int rows_ok = cgrid && fm_points_read(t_path("mnc_labels.npy"), &labt) == FM_OK && labt.rows == 30;
        for (int i = 0; rows_ok && i < 30; i++) rows_ok = labt.data[i] == (float)(i / 3);
        fm_table_free(&labt);
        rc = cli("sample --model %s --label 7 --n 2 --steps 2 --out %s --labels-out %s --quiet", t_path("mnc.safetensors"),
                 t_path("mnc7.npy"), t_path("mnc7_l.npy"));
        int one = rc == 0 && file_size(t_path("mnc7_l.npy")) == 128 + 2 * 4;
        t_check(ctrained && cinspect && cgrid && rows_ok && one,
                "train --class-cond: 10 classes, label dropout kept; sample --guidance 2 --grid: 10 rows of 3, labels "
                "by row written next to the samples; --label 7 (train %d, inspect %d, grid %d, rows %d, one %d) %s",
                ctrained, cinspect, cgrid, rows_ok, one, err_buf);
        /* reflow of the class-conditional flow: labelled pairs; MeanFlow on the interval U-Net, in one jump */
        rc = cli("reflow --model %s --pairs 12 --solver euler --steps 2 --iters 2 --batch 4 --eval-n 4 --threads 1 "
                 "--quiet --out %s", t_path("mnc.safetensors"), t_path("mncr.safetensors"));
        int rtrained = rc == 0;
        rc = rc ? rc : cli("sample --model %s --label 7 --n 2 --steps 1 --solver euler --out %s --quiet",
                           t_path("mncr.safetensors"), t_path("mncr.npy"));
        int rsampled = rc == 0 && file_size(t_path("mncr.npy")) == 128 + 2 * 784 * 4;
        rc = cli("train --method meanflow --data mnist:%s --arch unet --channels 8 --class-cond --iters 2 --batch 4 "
                 "--quiet --out %s", t_path("cli_mn"), t_path("mnm.safetensors"));
        fm_st *mst = rc == 0 ? fm_st_load(t_path("mnm.safetensors")) : NULL;
        const char *msc = mst ? fm_st_meta(mst, "unet.time_scale") : NULL;
        int minterval = mst && fm_st_find(mst, "net.interval_mlp.0.weight") >= 0 && fm_st_meta(mst, "unet.interval") &&
                        msc && atof(msc) == 1.0;
        fm_st_free(mst);
        rc = cli("sample --model %s --steps 1 --grid %s --grid-cols 2 --out %s --quiet", t_path("mnm.safetensors"),
                 t_path("mnm.png"), t_path("mnm.npy"));
        t_check(rtrained && rsampled && minterval && rc == 0 && file_size(t_path("mnm.png")) > 100,
                "reflow of a class-conditional U-Net flow on labelled pairs, sampled at --label 7 (%d, %d); MeanFlow on "
                "the U-Net with its interval embedding, sinusoids of t itself (%d), samples a one-jump grid (exit %d) %s", rtrained, rsampled,
                minterval, rc, err_buf);
        rc = cli("train --method ddpm --data mnist:%s --arch unet --channels 8 --class-cond --iters 1 --batch 4 --quiet "
                 "--out %s", t_path("cli_mn"), t_path("mnd.safetensors"));
        int dtrained = rc == 0;
        rc = cli("sample --model %s --label 9 --guidance 3 --solver ddim --steps 2 --n 2 --out %s", t_path("mnd.safetensors"),
                 t_path("mnd.npy"));
        t_check(dtrained && rc == 0 && strstr(out_buf, "labels 9 (guidance 3") && file_size(t_path("mnd_labels.npy")) == 136,
                "a class-conditional DDPM trains and samples --label 9 --guidance 3 with DDIM (exit %d) %s", rc, err_buf);
        rc = cli("sample --model %s --label 10 --n 2", t_path("mnc.safetensors"));
        int blabel = rc == 2 && one_line("0..9");
        rc = cli("sample --model %s --guidance 2 --n 2", t_path("mnu.safetensors"));
        int buncond = rc == 2 && one_line("class-conditional");
        rc = cli("train --data mnist:%s --class-cond --iters 1 --out %s", t_path("cli_mn"), t_path("mu.safetensors"));
        int bmlp = rc == 2 && one_line("--arch unet");
        rc = cli("train --data mnist:%s --arch unet --label-dropout 0.5 --iters 1 --out %s", t_path("cli_mn"),
                 t_path("mu.safetensors"));
        t_check(blabel && buncond && bmlp && rc == 2 && one_line("--class-cond") && file_size(t_path("mu.safetensors")) < 0,
                "label 10 of 10 classes, guidance for an unconditional model, --class-cond on the MLP, --label-dropout "
                "alone are usage errors (exit %d): %s", rc, err_buf);
        rc = cli("sample --model %s --grid %s", t_path("m.safetensors"), t_path("moons.png"));
        t_check(rc == 2 && one_line("image model") && file_size(t_path("moons.png")) < 0,
                "--grid on a 2D model refused, nothing written (exit %d): %s", rc, err_buf);
        image_baselines(t_path("cli_mn"));
    }

    /* the digit classifier: trained, tested and used by eval on synthetic digits */
    {
        const char *dg = t_path("cli_dg"), *clf = t_path("clf.safetensors");
        int made = t_digit_folder(dg, 300, 100);
        rc = cli("classifier --data mnist:%s --channels 4,8 --hidden 16 --iters 40 --batch 32 --lr 2e-2 --shift 1 "
                 "--threads 1 --out %s",
                 dg, clf);
        const char *ap = strstr(out_buf, "test accuracy");
        double acc = ap ? atof(ap + 13) : NAN;
        t_check(made && rc == 0 && acc >= 95 && strstr(out_buf, "per class:") && strstr(err_buf, "iter 40/40") &&
                    file_size(clf) > 20000,
                "classifier trains on mnist:DIR and tests on its split=test: accuracy %.2f%%, checkpoint written (exit "
                "%d) %s",
                acc, rc, err_buf);
        rc = cli("inspect --meta %s", clf);
        t_check(rc == 0 && strstr(out_buf, "model = classifier") && strstr(out_buf, "classifier.channels = 4,8") &&
                    strstr(out_buf, "classifier.test_accuracy") && strstr(out_buf, "split=test"),
                "its checkpoint: model = classifier, channels, test accuracy and test set in the metadata (exit %d)", rc);
        rc = cli("eval --a mnist:%s,split=test --b mnist:%s --classifier %s", dg, dg, clf);
        const char *fp = strstr(out_buf, "Frechet distance"), *cp = strstr(out_buf, "accuracy  ");
        double fd = fp ? atof(fp + 16) : NAN, eacc = cp ? atof(cp + 10) : NAN;
        t_check(rc == 0 && fd > 0 && fabs(100 * eacc - acc) < 1e-9 && strstr(out_buf, "(all 100 images, in order)") &&
                    strstr(out_buf, "predicted classes of a: 0: ") && !strstr(out_buf, "W2"),
                "eval --classifier of the test split against the training images: Frechet distance %.3f, accuracy on "
                "their own labels %.4f as the classifier's test, no W2 (exit %d) %s",
                fd, eacc, rc, err_buf);
        /* the same images as files, labels as floats: distance 0 to themselves */
        char spec[1200];
        snprintf(spec, sizeof spec, "mnist:%s,split=test", dg);
        fm_dataset *ts = fm_dataset_open(spec);
        float *x = malloc(100 * 784 * sizeof(float)), lab[100];
        int wrote = ts && x && fm_dataset_read_rows(ts, 0, 100, x) == FM_OK;
        for (int i = 0; wrote && i < 100; i++) lab[i] = fm_dataset_labels(ts)[i];
        int64_t xs[2] = {100, 784}, ls[1] = {100}, ls50[1] = {50};
        wrote = wrote && fm_npy_write(t_path("dg_x.npy"), x, 2, xs) == FM_OK &&
                fm_npy_write(t_path("dg_l.npy"), lab, 1, ls) == FM_OK && fm_npy_write(t_path("dg_l50.npy"), lab, 1, ls50) == FM_OK;
        lab[0] = 12;
        wrote = wrote && fm_npy_write(t_path("dg_l12.npy"), lab, 1, ls) == FM_OK;
        fm_dataset_free(ts);
        free(x);
        rc = cli("eval --a %s --b %s --classifier %s --labels %s --metrics w2", t_path("dg_x.npy"), spec, clf,
                 t_path("dg_l.npy"));
        fp = strstr(out_buf, "Frechet distance");
        cp = strstr(out_buf, "accuracy  ");
        fd = fp ? atof(fp + 16) : NAN;
        double lacc = cp ? atof(cp + 10) : NAN;
        t_check(wrote && rc == 0 && fabs(fd) < 1e-3 && lacc == eacc && strstr(out_buf, "requested label") &&
                    strstr(out_buf, "W2 (exact)"),
                "eval --classifier --labels of the same images from a .npy: Frechet distance %.4f to themselves, "
                "accuracy %.4f, and W2 when --metrics asks (exit %d) %s",
                fd, lacc, rc, err_buf);
        /* a model's samples are scored the same way */
        rc = cli("eval --a %s --b %s --classifier %s --n 20 --steps 2 --solver euler", t_path("mnf.safetensors"), spec,
                 clf);
        t_check(rc == 0 && strstr(out_buf, "20 samples") && strstr(out_buf, "Frechet distance") &&
                    !strstr(out_buf, "accuracy  "),
                "eval --classifier samples an image model: Frechet distance and predicted classes (exit %d) %s", rc,
                err_buf);
        /* a class-conditional model is sampled class by class and scored against the classes it was asked for */
        rc = cli("eval --a %s --b %s --classifier %s --n 20 --steps 2 --solver euler --guidance 2", t_path("mnc.safetensors"),
                 spec, clf);
        int cond_all = rc == 0 && strstr(out_buf, "class i mod K for sample i, guidance 2") &&
                       strstr(out_buf, "of 20 images classified as the class it was asked for");
        rc = cli("eval --a %s --b %s --classifier %s --n 20 --steps 2 --solver euler --label 10", t_path("mnc.safetensors"),
                 spec, clf);
        t_check(cond_all && rc == 1 && one_line("outside 0..9"),
                "eval --classifier --guidance 2 on a class-conditional model: 2 samples of each class, accuracy on the "
                "classes asked for; --label 10 of 10 classes refused (exit %d) %s", rc, err_buf);
        static const struct {
            const char *a, *labels, *want; /* files by their names in the scratch folder */
        } clf_refuse[] = {
            {"moons", NULL, "scores images of 784 pixels; 'moons' has 2"},
            {"dg_x.npy", "dg_l50.npy", "has 50 labels for the 100 images"},
            {"dg_x.npy", "dg_l12.npy", "row 1 holds 12"},
        };
        for (size_t i = 0; i < sizeof clf_refuse / sizeof clf_refuse[0]; i++) {
            char extra[1200] = "";
            if (clf_refuse[i].labels) snprintf(extra, sizeof extra, "--labels %s", t_path(clf_refuse[i].labels));
            const char *side = strchr(clf_refuse[i].a, '.') ? t_path(clf_refuse[i].a) : clf_refuse[i].a;
            rc = cli("eval --a %s --b %s --classifier %s %s", side, spec, clf, extra);
            t_check(rc == 1 && one_line(clf_refuse[i].want), "eval --classifier with --a %s%s%s: exit %d, %s",
                    clf_refuse[i].a, clf_refuse[i].labels ? " --labels " : "", clf_refuse[i].labels ? clf_refuse[i].labels : "",
                    rc, err_buf);
        }
        rc = cli("eval --a %s --b %s --classifier %s", t_path("dg_x.npy"), spec, t_path("m.safetensors"));
        int not_clf = rc == 1 && one_line("not a classifier");
        rc = cli("sample --model %s --n 2", clf);
        t_check(not_clf && rc == 1 && one_line("image classifier"),
                "a flow as --classifier and the classifier as a model to sample are refused (exit %d): %s", rc, err_buf);
        /* a folder without test files: refused before training, the good checkpoint left alone; --test none trains */
        const char *nt = t_path("cli_dg_notest");
        char cmd[3000];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/train-* '%s'", nt, dg, nt);
        int copied = system(cmd) == 0;
        size_t nold = 0, nnow = 0;
        unsigned char *old = t_slurp(clf, &nold);
        rc = cli("classifier --data mnist:%s --channels 4,8 --hidden 16 --iters 5 --threads 1 --out %s", nt, clf);
        unsigned char *now = t_slurp(clf, &nnow);
        int kept = rc == 1 && one_line("t10k-images-idx3-ubyte") && old && now && nold == nnow && !memcmp(old, now, nold);
        free(old);
        free(now);
        rc = cli("classifier --data mnist:%s --channels 4,8 --hidden 16 --iters 5 --threads 1 --test none --quiet --out %s",
                 nt, t_path("clf2.safetensors"));
        t_check(copied && kept && rc == 0 && file_size(t_path("clf2.safetensors")) > 20000,
                "without test files: exit 1 naming them, the earlier checkpoint intact; --test none trains (exit %d) %s",
                rc, err_buf);
    }

    rc = cli("datasets");
    t_check(rc == 0 && strstr(out_buf, "8gaussians") && strstr(out_buf, "pinwheel") && strstr(out_buf, "csv"),
            "datasets lists the generators");
    rc = cli("datasets --draw spirals --n 100 --out %s --plot %s", t_path("sp.csv"), t_path("sp.svg"));
    t_check(rc == 0 && file_size(t_path("sp.csv")) > 1000 && file_size(t_path("sp.svg")) > 1000, "datasets --draw writes points and a plot");
    manifold_commands();
    meanflow_commands();
    peer_commands();
    /* every method's own settings are train options (none dropped by a table's size) */
    rc = cli("train --help");
    int listed = 0, missing = 0;
    char flag[80], first_missing[80] = "";
    for (int mi = 0; mi < fm_method_count(); mi++) {
        const char *name, *metavar, *help;
        char def[32];
        for (int i = 0; (name = fm_method_setting((fm_method)mi, i, &metavar, &help, def, sizeof def)); i++) {
            snprintf(flag, sizeof flag, "  --%s ", name);
            if (strstr(out_buf, flag)) listed++;
            else if (!missing++) snprintf(first_missing, sizeof first_missing, "%s", name);
        }
    }
    t_check(rc == 0 && listed > 0 && !missing, "train --help lists every method's %d settings (%d missing, first: %s)",
            listed, missing, first_missing);
}
