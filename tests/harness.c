/* harness.c - check functions, fixture loading and the test main().
 *
 * Usage: run_tests [substring]  runs the groups whose name contains it.
 * Environment: FM_FIXTURES (fixture folder), FM_CLI (the tool), TMPDIR.
 */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static int n_pass, n_fail;
static const char *group = "";

int t_check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s  %s/", ok ? "PASS" : "FAIL", group);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok) n_pass++;
    else n_fail++;
    return ok;
}

void t_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("        ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

double t_relerr(const float *a, const float *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (isinf(ref[i]) && a[i] == ref[i]) d = 0.0; /* matching infinities */
        if (isnan(d)) return INFINITY;
        if (d > num) num = d;
        if (isfinite(ref[i]) && fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return den > 0 ? num / den : num;
}

int t_close(const char *name, const float *got, const float *ref, size_t n, double tol)
{
    double e = t_relerr(got, ref, n);
    return t_check(e <= tol, "%-34s max rel err %.2e (tol %.0e)", name, e, tol);
}

fm_st *t_fixture(const char *file)
{
    const char *dir = getenv("FM_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/fixtures", file);
    fm_st *st = fm_st_load(path);
    if (!st) t_check(0, "fixture %s: %s", path, fm_last_error());
    return st;
}

float *t_read(const fm_st *st, const char *name, size_t *n)
{
    int i = st ? fm_st_find(st, name) : -1;
    if (i < 0) {
        t_check(0, "fixture tensor '%s' is missing", name);
        return NULL;
    }
    int nd;
    int64_t sh[FM_ST_MAX_DIMS];
    fm_st_entry(st, i, NULL, &nd, sh);
    int shape[FM_ST_MAX_DIMS];
    size_t total = 1;
    for (int d = 0; d < nd; d++) {
        shape[d] = (int)sh[d];
        total *= (size_t)sh[d];
    }
    float *out = malloc((total ? total : 1) * sizeof(float));
    if (!out || fm_st_read(st, name, out, nd, shape) != FM_OK) {
        t_check(0, "fixture tensor '%s': %s", name, fm_last_error());
        free(out);
        return NULL;
    }
    if (n) *n = total;
    return out;
}

/* ---- per-family maxima, printed at the end for the closing note */

static struct {
    char name[48];
    double err;
} families[64];
static int nfamilies;

void t_family_max(const char *family, double err)
{
    for (int i = 0; i < nfamilies; i++)
        if (strcmp(families[i].name, family) == 0) {
            if (err > families[i].err) families[i].err = err;
            return;
        }
    if (nfamilies < 64) {
        snprintf(families[nfamilies].name, sizeof families[0].name, "%s", family);
        families[nfamilies++].err = err;
    }
}

const char *t_cli(void)
{
    const char *c = getenv("FM_CLI");
    return c ? c : "./flowmatch";
}

const char *t_tmpdir(void)
{
    static char dir[512];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/fmtest.XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

/* ---- registry */

#define GROUPS(X)                                                                              \
    X(rng) X(tensor) X(ops) X(gradcheck) X(conv) X(ops2) X(optim) X(train) X(safetensors) X(checkpoint) X(io) X(idx)        \
        X(image) X(data) X(path) X(solve) X(metrics) X(flow) X(likelihood) X(coupling) X(ddpm) X(baselines) X(unet)     \
            X(classifier) X(methods) X(manifold) X(discrete) X(kernels) X(lineage) X(meanflow) X(perf) X(peer) X(cli) X(robust) X(golden)

#define DECL(g) void test_##g(void);
GROUPS(DECL)
#undef DECL

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } all[] = {
#define ROW(g) {#g, test_##g},
        GROUPS(ROW)
#undef ROW
    };
    const char *filter = argc > 1 ? argv[1] : NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (filter && !strstr(all[i].name, filter)) continue;
        group = all[i].name;
        all[i].fn();
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (nfamilies) {
        printf("\nlargest relative error per op family (against PyTorch):\n");
        for (int i = 0; i < nfamilies; i++) printf("  %-16s %.2e\n", families[i].name, families[i].err);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", t_tmpdir());
    printf("\ntime %.2f s\n%d passed, %d failed\n",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), n_pass, n_fail);
    return n_fail ? 1 : 0;
}

const char *t_path(const char *name)
{
    static char buf[64][1024];
    static int k;
    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", t_tmpdir(), name);
    return buf[k];
}

unsigned char *t_slurp(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    unsigned char *b = len >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)len + 1) : NULL;
    if (b) *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

int t_gzip_copy(const char *src, const char *dst)
{
    size_t n;
    unsigned char *b = t_slurp(src, &n);
    gzFile g = b ? gzopen(dst, "wb9") : NULL;
    int ok = g && gzwrite(g, b, (unsigned)n) == (int)n;
    if (g && gzclose(g) != Z_OK) ok = 0;
    free(b);
    return ok;
}

int t_mnist_write(const char *dir, const char *prefix, int n, int rows, const uint8_t *im, const uint8_t *lab,
                  int nlab)
{
    char path[1200];
    int dims[3] = {n, rows, 28};
    snprintf(path, sizeof path, "mkdir -p '%s'", dir);
    if (system(path) != 0) return 0;
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    if (fm_idx_write_u8(path, 3, dims, im) != FM_OK) return 0;
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    return fm_idx_write_u8(path, 1, &nlab, lab) == FM_OK;
}

/* One split of t_digit_folder's set: images and labels under prefix. */
static int digit_split(const char *dir, const char *prefix, int n, fm_rng *r)
{
    uint8_t *im = malloc((size_t)n * 784), *lab = malloc((size_t)n);
    int ok = im && lab;
    for (int i = 0; ok && i < n; i++) {
        int k = i % 10, y0 = 5 + 12 * (k / 5) + (int)(fm_rng_next(r) % 3) - 1, x0 = 2 + 5 * (k % 5) + (int)(fm_rng_next(r) % 3) - 1;
        lab[i] = (uint8_t)k;
        for (int p = 0; p < 784; p++) {
            int y = p / 28, x = p % 28, in = y >= y0 && y < y0 + 4 && x >= x0 && x < x0 + 4;
            im[(size_t)i * 784 + p] = (uint8_t)(in ? 200 + fm_rng_next(r) % 56 : fm_rng_next(r) % 40);
        }
    }
    ok = ok && t_mnist_write(dir, prefix, n, 28, im, lab, n);
    free(im);
    free(lab);
    return ok;
}

int t_digit_folder(const char *dir, int ntrain, int ntest)
{
    fm_rng r;
    fm_rng_seed(&r, 11, FM_STREAM_DATA);
    return digit_split(dir, "train", ntrain, &r) && digit_split(dir, "t10k", ntest, &r);
}

void t_expect_fail(fm_tape *tp, fm_tensor *y, fm_status s, const char *what, const char *n1, const char *n2)
{
    const char *m = fm_last_error();
    int ok = y == NULL && fm_tape_status(tp) == s && strstr(m, n1) && (!n2 || strstr(m, n2));
    t_check(ok, "%s rejected: %s", what, m);
    fm_tape_reset(tp);
}

fm_tensor *t_t4(fm_tape *tp, int a, int b, int c, int d) { return fm_tensor_new(tp, 4, (int[]){a, b, c, d}); }

fm_trainer *t_trained(const fm_train_config *c, int iters)
{
    fm_trainer *tr = fm_trainer_new(c);
    for (int i = 0; tr && i < iters; i++)
        if (fm_trainer_step(tr, NULL) != FM_OK) {
            fm_trainer_free(tr);
            return NULL;
        }
    return tr;
}

int t_next_perm(int *p, int n)
{
    int i = n - 2;
    while (i >= 0 && p[i] > p[i + 1]) i--;
    if (i < 0) return 0;
    int j = n - 1;
    while (p[j] < p[i]) j--;
    int t = p[i];
    p[i] = p[j];
    p[j] = t;
    for (int a = i + 1, b = n - 1; a < b; a++, b--) t = p[a], p[a] = p[b], p[b] = t;
    return 1;
}

double t_flow_w2(fm_flow *f, const char *data, int n, fm_solver_kind kind, int steps, uint64_t seed)
{
    int d = fm_flow_get_config(f)->dim;
    float *x = malloc((size_t)n * d * sizeof(float)), *ref = malloc((size_t)n * d * sizeof(float));
    double *grid = malloc((size_t)(steps + 1) * sizeof(double)), w2 = NAN;
    fm_dataset *ds = fm_dataset_open(data);
    if (x && ref && grid && ds) {
        fm_solver_config sc = fm_solver_config_default(kind);
        fm_time_grid_uniform(grid, steps, 0, fm_flow_get_config(f)->path.t_end);
        fm_rng r, rd;
        fm_rng_seed(&r, seed, FM_STREAM_NOISE);
        fm_rng_seed(&rd, seed, FM_STREAM_DATA);
        if (fm_flow_sample(f, n, NULL, &r, &sc, grid, steps + 1, x, NULL, NULL, NULL) == FM_OK &&
            fm_dataset_sample(ds, &rd, ref, n) == FM_OK)
            fm_w2_exact(x, ref, n, d, &w2, NULL);
    }
    fm_dataset_free(ds);
    free(grid);
    free(x);
    free(ref);
    return w2;
}

float *t_dup(const float *p, size_t n)
{
    float *q = malloc(n * sizeof(float));
    if (q) memcpy(q, p, n * sizeof(float));
    return q;
}
