/* test_image.c - images: PNG grids read back through libpng pixel by pixel,
 * the mnist:DIR dataset on IDX files written here (pixels, labels, .gz
 * fallback, malformed sets), and a trainer on images standardising pixels
 * to [-1, 1].
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
    char p[1200];
    int dims[3] = {n, rows, 28};
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    if (gz) { /* the same bytes through gzip, under the .gz name only */
        char tmpf[1300];
        snprintf(tmpf, sizeof tmpf, "%s.plain", p);
        fm_idx_write_u8(tmpf, 3, dims, im);
        char gzp[1300];
        snprintf(gzp, sizeof gzp, "%s.gz", p);
        t_gzip_copy(tmpf, gzp);
        remove(tmpf);
    } else {
        fm_idx_write_u8(p, 3, dims, im);
    }
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    fm_idx_write_u8(p, 1, &nlabels, labels);
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

void test_image(void)
{
    png_grids();
    mnist_sets();
    dequantisation();
}
