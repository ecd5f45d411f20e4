/* test_image.c - images: PNG grids read back through libpng pixel by pixel,
 * the mnist:DIR dataset on IDX files written here (pixels, labels, .gz
 * fallback, malformed sets), a trainer on images standardising pixels to
 * [-1, 1], and the VAE and GAN baselines learning a two-pattern image set
 * with their image defaults.
 */
#include "harness.h"

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A PNG read back as 8-bit samples in its own format (gray or RGB); NULL on failure. */
static uint8_t *read_png(const char *path, int *w, int *h, int *c)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path)) return NULL;
    *c = (im.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
    im.format = *c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    uint8_t *p = malloc(PNG_IMAGE_SIZE(im));
    if (!p || !png_image_finish_read(&im, NULL, p, 0, NULL)) {
        free(p);
        png_image_free(&im);
        return NULL;
    }
    *w = (int)im.width;
    *h = (int)im.height;
    return p;
}

static void png_grids(void)
{
    /* 3 gray images of 4 x 3 in rows of 2: values i + 10 j + 100 k over [0, 255] */
    enum { N = 3, H = 4, W = 3 };
    float x[N * H * W];
    for (int k = 0; k < N; k++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) x[(k * H + i) * W + j] = (float)(i + 10 * j + 100 * k);
    x[0] = -5.0f;             /* clamps to 0 */
    x[1] = 300.0f;            /* clamps to 255 */
    x[2] = NAN;               /* black */
    x[3] = 17.5f;             /* rounds half up to 18 */
    const char *p = t_path("grid.png");
    fm_status s = fm_png_write_grid(p, x, N, 1, H, W, 2, 0.0f, 255.0f);
    int w = 0, h = 0, c = 0;
    uint8_t *img = s ? NULL : read_png(p, &w, &h, &c);
    int gw = 0, gh = 0;
    fm_png_grid_size(N, H, W, 2, &gw, &gh);
    long bad = 0, checked = 0;
    if (img) {
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                int want = 0; /* border and the empty fourth tile are black */
                int col = (xx - FM_PNG_PAD) / (W + FM_PNG_PAD), row = (y - FM_PNG_PAD) / (H + FM_PNG_PAD);
                int j = (xx - FM_PNG_PAD) % (W + FM_PNG_PAD), i = (y - FM_PNG_PAD) % (H + FM_PNG_PAD);
                int k = row * 2 + col;
                if (xx >= FM_PNG_PAD && y >= FM_PNG_PAD && i < H && j < W && k < N) {
                    float v = x[(k * H + i) * W + j];
                    want = v != v ? 0 : v < 0 ? 0 : v > 255 ? 255 : (int)floorf(v + 0.5f);
                }
                bad += img[(size_t)y * w + xx] != want;
                checked++;
            }
    }
    t_check(img && c == 1 && w == 2 * (W + 2) + 2 && h == 2 * (H + 2) + 2 && w == gw && h == gh && bad == 0,
            "gray grid %d x %d (%d channel): %ld of %ld pixels differ from round(255 v), clamped, NaN black, borders black",
            w, h, c, bad, checked);
    free(img);

    /* RGB: channel planes interleave into pixels */
    float rgb[3 * 2 * 2];
    for (int ch = 0; ch < 3; ch++)
        for (int q = 0; q < 4; q++) rgb[ch * 4 + q] = (float)(ch + 1) / 4.0f + (float)q / 100.0f;
    p = t_path("rgb.png");
    s = fm_png_write_grid(p, rgb, 1, 3, 2, 2, 8, 0.0f, 1.0f);
    img = s ? NULL : read_png(p, &w, &h, &c);
    int worst = 0;
    if (img)
        for (int q = 0; q < 4; q++)
            for (int ch = 0; ch < 3; ch++) {
                int y = FM_PNG_PAD + q / 2, xx = FM_PNG_PAD + q % 2;
                int want = (int)floor(255.0 * rgb[ch * 4 + q] + 0.5);
                int d = abs(img[((size_t)y * w + xx) * 3 + ch] - want);
                worst = d > worst ? d : worst;
            }
    t_check(img && c == 3 && w == 6 && h == 6 && worst == 0,
            "RGB grid of one 2 x 2 image: %d x %d, %d channels, largest byte error %d", w, h, c, worst);
    free(img);

    t_check(fm_png_write_grid(t_path("two.png"), rgb, 1, 2, 2, 2, 1, 0, 1) == FM_ERR_ARG &&
                strstr(fm_last_error(), "1 or 3 channels"),
            "2 channels refused: %s", fm_last_error());
    t_check(fm_png_write_grid(t_path("flat.png"), rgb, 1, 1, 2, 2, 1, 1, 1) == FM_ERR_ARG &&
                strstr(fm_last_error(), "empty"),
            "an empty value range refused: %s", fm_last_error());
    /* a write that fails after its temporary exists (the target is a folder,
     * so the final rename fails) reports it and leaves no temporary behind */
    p = t_path("gdir");
    mkdir(p, 0755);
    FILE *f = fopen(t_path("gdir/keep"), "wb");
    if (f) fclose(f);
    s = fm_png_write_grid(p, x, N, 1, H, W, 2, 0, 255);
    int leftovers = 0;
    DIR *dir = opendir(t_tmpdir());
    for (struct dirent *e; dir && (e = readdir(dir));) leftovers += !strncmp(e->d_name, "gdir.tmp", 8);
    if (dir) closedir(dir);
    struct stat st;
    int intact = stat(p, &st) == 0 && S_ISDIR(st.st_mode) && stat(t_path("gdir/keep"), &st) == 0;
    fm_status s2 = fm_png_write_grid(t_path("grid.png"), x, N, 1, H, W, 0, 0, 255); /* 0 columns: refused */
    t_check(s == FM_ERR_IO && intact && leftovers == 0 && s2 == FM_ERR_ARG,
            "a failed rename -> I/O error (%s), the target untouched, %d temporaries left; a bad layout refused",
            s == FM_ERR_IO ? "reported" : "NOT reported", leftovers);
}

/* A tiny MNIST-like folder: n images whose pixel (i, j) of image k is (k + i + j) % 256. */
static void write_set(const char *dir, int n, int rows, const uint8_t *labels, int nlabels, int gz)
{
    uint8_t *im = malloc((size_t)n * rows * 28);
    for (int k = 0; k < n; k++)
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < 28; j++) im[((size_t)k * rows + i) * 28 + j] = (uint8_t)((k * 7 + i + j) % 256);
    t_mnist_write(dir, "train", n, rows, im, labels, nlabels);
    if (gz) { /* the same bytes through gzip, under the .gz name only */
        char p[1200], gzp[1300];
        snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
        snprintf(gzp, sizeof gzp, "%s.gz", p);
        t_gzip_copy(p, gzp);
        remove(p);
    }
    free(im);
}

static void mnist_sets(void)
{
    const uint8_t labels[5] = {3, 1, 4, 1, 5};
    char dir[1024], spec[1200];
    snprintf(dir, sizeof dir, "%s", t_path("mn"));
    char cmd[6000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' '%s_gz' '%s_bad1' '%s_bad2' '%s_bad3'", dir, dir, dir, dir, dir);
    if (system(cmd) != 0) t_note("could not create %s", dir);
    write_set(dir, 5, 28, labels, 5, 0);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    fm_dataset *ds = fm_dataset_open(spec);
    float x[8 * 784];
    fm_rng r;
    fm_rng_seed(&r, 1, FM_STREAM_DATA);
    double err = ds && fm_dataset_sample(ds, &r, x, 8) == FM_OK ? 0 : INFINITY;
    int matched = 0;
    /* every drawn row is one of the images, pixel / 255 */
    for (int q = 0; ds && q < 8; q++) {
        int k = (int)lroundf(x[(size_t)q * 784] * 255.0f) / 7; /* pixel (0, 0) is 7 k */
        double e = 0;
        for (int i = 0; i < 784; i++) e = fmax(e, fabs(x[(size_t)q * 784 + i] - ((k * 7 + i / 28 + i % 28) % 256) / 255.0));
        err = fmax(err, e);
        matched += k >= 0 && k < 5;
    }
    const uint8_t *lb = ds ? fm_dataset_labels(ds) : NULL;
    int c = 0, h = 0, w = 0;
    t_check(ds && fm_dataset_dim(ds) == 784 && fm_dataset_rows(ds) == 5 && lb && !memcmp(lb, labels, 5) &&
                matched == 8 && err < 1e-7 && fm_spec_image_shape(spec, &c, &h, &w) && c == 1 && h == 28 && w == 28 &&
                !fm_spec_image_shape("moons", NULL, NULL, NULL),
            "mnist:DIR: 784 pixels in [0, 1], 5 rows, labels kept; 8 draws are images, largest pixel error %.1e %s", err,
            T_ERRP(ds));
    fm_dataset_free(ds);

    char d2[1100];
    snprintf(d2, sizeof d2, "%s_gz", dir);
    write_set(d2, 5, 28, labels, 5, 1);
    snprintf(spec, sizeof spec, "mnist:%s", d2);
    ds = fm_dataset_open(spec);
    t_check(ds && fm_dataset_rows(ds) == 5, "a folder with only train-images-idx3-ubyte.gz reads the same %s", T_ERRP(ds));
    fm_dataset_free(ds);

    struct {
        const char *suffix;
        int rows, nlabels;
        uint8_t first_label;
        const char *want;
    } bad[] = {
        {"_bad1", 28, 4, 3, "expected 5 labels"},
        {"_bad2", 27, 5, 3, "28 x 28"},
        {"_bad3", 28, 5, 12, "not a digit"},
    };
    for (int b = 0; b < 3; b++) {
        snprintf(d2, sizeof d2, "%s%s", dir, bad[b].suffix);
        uint8_t lab[5] = {bad[b].first_label, 1, 4, 1, 5};
        write_set(d2, 5, bad[b].rows, lab, bad[b].nlabels, 0);
        snprintf(spec, sizeof spec, "mnist:%s", d2);
        ds = fm_dataset_open(spec);
        t_check(!ds && strstr(fm_last_error(), bad[b].want), "malformed set refused: %s", fm_last_error());
        fm_dataset_free(ds);
    }
    ds = fm_dataset_open("mnist:/no/such/folder");
    t_check(!ds && fm_last_status() == FM_ERR_IO && strstr(fm_last_error(), "train-images-idx3-ubyte"),
            "missing folder: %s", fm_last_error());
    ds = fm_dataset_open("mnist:");
    t_check(!ds && fm_last_status() == FM_ERR_ARG, "no folder: %s", fm_last_error());

    /* a flow on images sees pixels in [-1, 1]: standardised by 0.5 and 0.5 */
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    fm_train_config tc = fm_train_config_default();
    tc.flow.data = spec;
    tc.batch = 4;
    fm_trainer *tr = t_trained(&tc, 2);
    const float *mean = NULL, *sd = NULL;
    int stdz = tr ? fm_flow_standardized(fm_trainer_flow(tr), &mean, &sd) : 0;
    double off = 0;
    for (int i = 0; stdz && i < 784; i++) off = fmax(off, fmax(fabs(mean[i] - 0.5), fabs(sd[i] - 0.5)));
    t_check(tr && stdz && off == 0, "a flow trained on mnist:DIR standardises every pixel by mean 0.5, std 0.5 %s",
            T_ERRP(tr));
    fm_trainer_free(tr);
    tc.dequantize = 1;
    tr = t_trained(&tc, 2);
    const char *ck = t_path("deq.safetensors");
    fm_status cs = tr ? fm_trainer_save(tr, ck) : FM_ERR_ARG;
    fm_trainer_free(tr);
    tr = cs ? NULL : fm_trainer_resume(ck, 4);
    t_check(tr && fm_trainer_get_config(tr)->dequantize == 1, "a dequantised run trains, saves and resumes as one %s",
            T_ERRP(tr));
    fm_trainer_free(tr);
    tc = fm_train_config_for(FM_METHOD_VAE);
    tc.flow.data = spec;
    tc.batch = 4;
    tc.vae.likelihood = FM_VAE_BERNOULLI;
    tr = t_trained(&tc, 2);
    t_check(tr != NULL, "a Bernoulli VAE trains on the [0, 1] pixels unstandardised %s", T_ERRP(tr));
    fm_trainer_free(tr);
}

static void dequantisation(void)
{
    /* every byte value, many times: each lands in its own cell, uniformly */
    enum { REP = 400 };
    static float x[256 * REP];
    for (int i = 0; i < 256 * REP; i++) x[i] = (float)(i % 256) / 255.0f;
    fm_rng r;
    fm_rng_seed(&r, 3, FM_STREAM_NOISE);
    fm_dequantize(x, 256 * REP, &r);
    int outside = 0;
    double frac = 0, frac2 = 0;
    for (int i = 0; i < 256 * REP; i++) {
        double y = 256.0 * x[i] - (i % 256);
        outside += !(y >= 0 && y <= 1); /* float rounding may reach the cell's top edge */
        frac += y;
        frac2 += y * y;
    }
    double m = frac / (256 * REP), v = frac2 / (256 * REP) - m * m, se = sqrt(1.0 / 12 / (256 * REP));
    t_check(outside == 0 && fabs(m - 0.5) < 4 * se && fabs(v - 1.0 / 12) < 0.01,
            "dequantisation: all %d pixels in their byte's cell, offset mean %.4f (0.5, %.1f SE), variance %.4f (1/12)",
            256 * REP, m, fabs(m - 0.5) / se, v);
    fm_train_config tc = fm_train_config_default();
    tc.flow.data = "moons";
    tc.dequantize = 1;
    fm_trainer *tr = fm_trainer_new(&tc);
    t_check(!tr && strstr(fm_last_error(), "image data"), "dequantising moons refused: %s", fm_last_error());
    fm_trainer_free(tr);
}

/* ---- the baselines on images */

/* A trivially easy image set in dir: n binary digits, even ones with the top
 * half white, odd ones the left half; labels 0 and 1. */
static const char *pattern_set(const char *dir, int n)
{
    uint8_t *im = malloc((size_t)n * 784), lab[64];
    for (int k = 0; k < n; k++) {
        lab[k] = (uint8_t)(k % 2);
        for (int p = 0; p < 784; p++) im[(size_t)k * 784 + p] = (k % 2 ? p % 28 < 14 : p / 28 < 14) ? 255 : 0;
    }
    static char spec[1100];
    t_mnist_write(dir, "train", n, 28, im, lab, n);
    free(im);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    return spec;
}

/* Mean loss over steps [from, to) of a run of `to` steps (NAN on failure). */
static double run_mean(fm_trainer *tr, int from, int to, double *first)
{
    double s = 0, l = NAN;
    for (int i = 0; i < to; i++) {
        if (!tr || fm_trainer_step(tr, &l) != FM_OK) return NAN;
        if (i == 0 && first) *first = l;
        if (i >= from) s += l;
    }
    return s / (to - from);
}

static void image_baselines(void)
{
    fm_set_threads(1); /* small networks: one thread is quickest, also on a busy machine */
    const char *spec = pattern_set(t_path("pat"), 16);
    fm_train_config c = fm_train_config_for_data(FM_METHOD_VAE, spec);
    const fm_mlp_config *n = &c.flow.net;
    t_check(c.vae.latent == 20 && c.vae.likelihood == FM_VAE_BERNOULLI && n->nhidden == 1 && n->width[0] == 400 &&
                n->act == FM_ACT_RELU && c.optim.lr == 1e-3 && !strcmp(c.flow.data, spec),
            "image defaults: the tutorial's VAE, 784 -> %d %s -> latent %d, %s likelihood, Adam %g", n->width[0],
            fm_act_name(n->act), c.vae.latent, fm_vae_likelihood_name(c.vae.likelihood), c.optim.lr);
    int differ = 0;
    for (int m = 0; m < FM_METHOD_COUNT; m++) { /* on 2D data nothing changes */
        fm_train_config a = fm_train_config_for((fm_method)m), b = fm_train_config_for_data((fm_method)m, "moons");
        differ += a.vae.latent != b.vae.latent || a.vae.likelihood != b.vae.likelihood || a.gan.latent != b.gan.latent ||
                  a.gan.out_act != b.gan.out_act || a.optim.lr != b.optim.lr || a.flow.net.nhidden != b.flow.net.nhidden ||
                  a.flow.net.act != b.flow.net.act || memcmp(a.flow.net.width, b.flow.net.width, sizeof a.flow.net.width) ||
                  strcmp(b.flow.data, "moons");
    }
    t_check(differ == 0, "on 2D data every method's defaults are fm_train_config_for's (%d differ)", differ);

    /* the tutorial's VAE on the two patterns: the negative ELBO falls from
     * about 784 ln 2 nats to a few, and both patterns come back */
    c.batch = 16;
    fm_trainer *tr = fm_trainer_new(&c);
    double first = NAN, last = run_mean(tr, 130, 150, &first);
    float x[2 * 784], y[2 * 784];
    for (int p = 0; p < 784; p++) {
        x[p] = p / 28 < 14;
        x[784 + p] = p % 28 < 14;
    }
    double err = tr && fm_vae_reconstruct(fm_model_vae(fm_trainer_model(tr)), x, 2, y) == FM_OK ? 0 : INFINITY;
    for (int i = 0; i < 2 * 784; i++) err = fmax(err, fabs(x[i] - y[i]));
    t_check(last < 0.1 * first && err < 0.1,
            "VAE on 16 images of 2 patterns, 150 steps of 16: loss %.1f -> %.2f nats per image; both patterns "
            "reconstructed, largest pixel error %.3f %s",
            first, last, err, T_ERRP(tr));
    /* samples decode Bernoulli means: pixels in [0, 1] */
    static float s[64 * 784];
    fm_rng r;
    fm_rng_seed(&r, 5, FM_STREAM_NOISE);
    fm_status ss = tr ? fm_model_sample(fm_trainer_model(tr), 64, &r, NULL, NULL, 0, s, NULL, NULL, NULL) : FM_ERR_ARG;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; !ss && i < 64 * 784; i++) lo = fmin(lo, s[i]), hi = fmax(hi, s[i]);
    t_check(!ss && lo >= 0 && hi <= 1, "VAE samples are Bernoulli means: pixels in [%.3g, %.3g] %s", lo, hi, T_ERR(ss));
    fm_trainer_free(tr);

    /* the GAN on images: latent 64, 2 x 256 ELU, tanh output by default; a
     * narrower one (2 x 64, Adam 1e-3) learns the patterns in a few hundred
     * steps: its samples come back in [0, 1], close to one pattern or the other */
    c = fm_train_config_for_data(FM_METHOD_GAN, spec);
    t_check(c.gan.latent == 64 && c.gan.out_act == FM_ACT_TANH && c.flow.net.nhidden == 2 && c.flow.net.width[1] == 256,
            "image defaults: GAN latent %d, %d x %d %s, %s output", c.gan.latent, c.flow.net.nhidden, c.flow.net.width[1],
            fm_act_name(c.flow.net.act), fm_act_name(c.gan.out_act));
    c.batch = 16;
    c.optim.lr = 1e-3;
    c.flow.net.width[0] = c.flow.net.width[1] = 64;
    double err_to[2] = {NAN, NAN}; /* mean |sample - nearest pattern| per pixel: untrained, trained */
    int count[2] = {0, 0};
    fm_trainer *gt = fm_trainer_new(&c);
    for (int k = 0; k < 2 && gt; k++) {
        fm_rng_seed(&r, 6, FM_STREAM_NOISE);
        if ((k && isnan(run_mean(gt, 0, 600, NULL))) ||
            fm_model_sample(fm_trainer_model(gt), 64, &r, NULL, NULL, 0, s, NULL, NULL, NULL))
            break;
        double e = 0;
        lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < 64; i++) {
            double d[2] = {0, 0};
            for (int p = 0; p < 784; p++) {
                float v = s[i * 784 + p];
                d[0] += fabs(v - x[p]) / 784, d[1] += fabs(v - x[784 + p]) / 784;
                lo = fmin(lo, v), hi = fmax(hi, v);
            }
            e += fmin(d[0], d[1]) / 64;
            if (k) count[d[1] < d[0]]++;
        }
        err_to[k] = e;
    }
    t_check(gt && err_to[1] < 0.1 && err_to[0] > 0.3 && lo >= 0 && hi <= 1,
            "GAN (2 x 64) on the patterns, 600 steps: samples %.3f per pixel from the nearest pattern (untrained %.3f), "
            "%d top and %d left; pixels in [%.3g, %.3g] %s",
            err_to[1], err_to[0], count[0], count[1], lo, hi, T_ERRP(gt));
    /* the checkpoint keeps the tanh: the loaded generator draws the same bits;
     * one from before the output activation (no gan.out_act) loads as linear */
    const char *ck = t_path("gan_img.safetensors");
    size_t len = 0;
    unsigned char *bytes = gt && fm_trainer_save(gt, ck) == FM_OK ? t_slurp(ck, &len) : NULL;
    fm_st *st = bytes ? fm_st_parse(bytes, len, ck) : NULL;
    fm_model *ld = st ? fm_model_load(st, 0) : NULL;
    static float s2[64 * 784];
    int same = 0;
    if (ld) {
        fm_rng r1, r2;
        fm_rng_seed(&r1, 8, FM_STREAM_NOISE);
        fm_rng_seed(&r2, 8, FM_STREAM_NOISE);
        same = fm_gan_get_config(fm_model_gan(ld))->out_act == FM_ACT_TANH &&
               fm_model_sample(fm_trainer_model(gt), 64, &r1, NULL, NULL, 0, s, NULL, NULL, NULL) == FM_OK &&
               fm_model_sample(ld, 64, &r2, NULL, NULL, 0, s2, NULL, NULL, NULL) == FM_OK && !memcmp(s, s2, sizeof s);
    }
    fm_model_free(ld);
    fm_st_free(st);
    char *key = NULL;
    for (size_t i = 0; bytes && !key && i + 11 < len; i++)
        if (!memcmp(bytes + i, "gan.out_act", 11)) key = (char *)bytes + i;
    if (key) memcpy(key, "gan.old_act", 11); /* same length: the header's offsets stand */
    st = key ? fm_st_parse(bytes, len, ck) : NULL;
    ld = st ? fm_model_load(st, 0) : NULL;
    int linear = ld && fm_gan_get_config(fm_model_gan(ld))->out_act == FM_ACT_NONE;
    t_check(same && linear, "the GAN checkpoint keeps its tanh output (the loaded model draws the same bits); without "
                            "gan.out_act it loads as linear %s", T_ERRP(ld));
    fm_model_free(ld);
    fm_st_free(st);
    free(bytes);
    fm_trainer_free(gt);
    fm_gan_config gc = fm_gan_config_default(784);
    gc.out_act = FM_ACT_SIGMOID;
    fm_gan *bad = fm_gan_new(&gc);
    t_check(!bad && strstr(fm_last_error(), "linear or tanh"), "a sigmoid generator output refused: %s", fm_last_error());
    fm_gan_free(bad);
    fm_set_threads(0);
}

void test_image(void)
{
    png_grids();
    mnist_sets();
    dequantisation();
    image_baselines();
}
