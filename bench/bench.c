/* bench.c - flowmatch's side of the benchmarks in bench/run.py.
 *
 *   bench ref-train  [--threads N] [--iters 10000]   the tutorial's training run
 *   bench wide-step  [--threads N] [--steps 20]      MLP 4 x 512 SiLU, batch 4096, Adam
 *   bench sample     [--threads N] [--n 1000000]     3 x 64 ELU, 8 midpoint steps
 *   bench gemm       [--threads N]                   GFLOP/s: ours, OpenBLAS, the FMA peak
 *   bench conv       [--threads N] [--steps 20]      conv2d 3x3 forward + backward, 128x32x28x28 -> 32
 *   bench unet-step  [--threads N] [--steps 10] [--batch 128]  the default U-Net's training step, Adam
 * wide-step and unet-step also run under mpirun: data-parallel over the
 * ranks, rank 0 reporting (and the bytes it sent per step).
 *
 * Each prints one line "RESULT <name> <seconds or GFLOP/s> ..." for the driver,
 * and one "ROOF <name> gflop=... gflops=... peak=... pct=... rss_mb=..." line:
 * the floating-point work of one timed unit as the matrix products count it
 * (fm__prof_flops), the rate achieved, the FMA peak measured in the same
 * process for the same thread count, the percentage, and the peak resident
 * memory. --profile adds the time and GFLOP/s of each op kind ("PROF" lines).
 * OpenBLAS is optional: it is loaded with dlopen at run time, never linked.
 */
#include "flowmatch.h"
#include "internal.h"
#include "engine/profile.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of the whole process: on a shared machine the wall clock also
 * counts the time other jobs held the cores. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static long arg_long(int argc, char **argv, const char *name, long def)
{
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return strtol(argv[i + 1], NULL, 10);
    return def;
}

static int profile_on; /* --profile: time each op kind too */

static double peak_gflops(int seconds_tenths);

/* Start counting the work (and, with --profile, timing the ops) afresh. */
static void roof_start(void)
{
    fm__prof_set(profile_on ? 2 : 1);
    fm__prof_clear();
}

/* The ROOF line for a benchmark whose timed part took sec seconds for units
 * units (steps, runs), and with --profile the per-op table, per prof_units
 * of what `per` names (step, iteration, run). */
static void roof_report(const char *name, double sec, double units, double prof_units, const char *per)
{
    enum { MAXK = FM__PROF_KINDS };
    fm__prof_entry e[MAXK];
    double flops = 0;
    int n = fm__prof_report(e, MAXK, &flops);
    fm__prof_set(0);
    double pk = peak_gflops(2), rate = flops / sec / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("ROOF %s gflop=%.4f gflops=%.1f peak=%.1f pct=%.1f rss_mb=%.1f threads=%d\n", name, flops / units / 1e9, rate,
           pk, 100 * rate / pk, ru.ru_maxrss / 1024.0, fm_get_threads());
    if (!profile_on) return;
    /* the kinds by time, longest first */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && e[j - 1].sec < e[j].sec; j--) {
            fm__prof_entry t = e[j];
            e[j] = e[j - 1];
            e[j - 1] = t;
        }
    double total = 0;
    for (int i = 0; i < n; i++) total += e[i].sec;
    const char *unit = prof_units > 1e3 ? "us" : "ms";
    double scale = (prof_units > 1e3 ? 1e6 : 1e3) / prof_units;
    char head[64];
    snprintf(head, sizeof head, "op kind (per %s)", per);
    printf("PROF %-28s %10s %7s %9s %9s %8s\n", head, unit, "share", "calls", "GFLOP", "GFLOP/s");
    for (int i = 0; i < n; i++) {
        char label[64];
        snprintf(label, sizeof label, "%s%s", e[i].name, e[i].backward ? " (backward)" : "");
        printf("PROF %-28s %10.3f %6.1f%% %9.1f %9.4f %8.1f\n", label, scale * e[i].sec, 100 * e[i].sec / total,
               e[i].calls / prof_units, e[i].flops / prof_units / 1e9, e[i].sec > 0 ? e[i].flops / e[i].sec / 1e9 : 0.0);
    }
    printf("PROF %-28s %10.3f (thread-time in the ops and marked parts; wall time %.3f %s, outside them %.3f)\n",
           "total", scale * total, scale * sec, unit, scale * sec - (fm_get_threads() == 1 ? scale * total : 0.0));
}

static int die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, fm_last_error());
    return 1;
}

static int ref_train(long iters)
{
    fm_train_config c = fm_train_config_default();
    c.iters = iters;
    fm_trainer *tr = fm_trainer_new(&c);
    if (!tr) return die("trainer");
    roof_start();
    double t0 = now(), loss = 0;
    for (long i = 0; i < iters; i++)
        if (fm_trainer_step(tr, &loss) != FM_OK) return die("step");
    double t = now() - t0;
    printf("RESULT ref-train %.4f s (%ld iterations, %.1f us per iteration, final loss %.4f, %d threads)\n", t, iters,
           1e6 * t / iters, loss, fm_get_threads());
    roof_report("ref-train", t, 1, (double)iters, "iteration");
    fm_trainer_free(tr);
    return 0;
}

/* ", N ranks, B bytes sent per step by rank 0" under mpirun; "" in one process. */
static const char *ranks_note(double bytes)
{
    static char buf[96];
    buf[0] = '\0';
    if (fm_dist_size() > 1)
        snprintf(buf, sizeof buf, " each, %d ranks, %.0f bytes sent per step by rank 0", fm_dist_size(), bytes);
    return buf;
}

static int wide_step(long steps)
{
    fm_train_config c = fm_train_config_default();
    c.flow.data = "checkerboard";
    c.flow.net.act = FM_ACT_SILU;
    c.flow.net.nhidden = 4;
    for (int i = 0; i < 4; i++) c.flow.net.width[i] = 512;
    c.optim.lr = 1e-3;
    c.batch = 4096;
    c.iters = steps + 3;
    fm_trainer *tr = fm_trainer_new(&c);
    if (!tr) return die("trainer");
    double best = INFINITY, sum = 0;
    uint64_t sent = 0;
    for (long i = 0; i < steps + 3; i++) {
        if (i == 3) sent = fm_dist_bytes_sent(), roof_start();
        double t0 = now();
        if (fm_trainer_step(tr, NULL) != FM_OK) return die("step");
        double t = now() - t0;
        if (i >= 3) { /* warm-up steps excluded */
            sum += t;
            best = fmin(best, t);
        }
    }
    printf("RESULT wide-step %.5f s mean (best %.5f, %d threads%s)\n", sum / steps, best, fm_get_threads(),
           ranks_note((fm_dist_bytes_sent() - sent) / (double)steps));
    roof_report("wide-step", sum, (double)steps, (double)steps, "step");
    fm_trainer_free(tr);
    return 0;
}

static int sample(long n)
{
    fm_flow_config fc;
    memset(&fc, 0, sizeof fc);
    fc.dim = 2;
    fc.net = fm_mlp_config_default(2);
    fc.path = fm_path_default(FM_PATH_OT);
    fc.data = "moons";
    fc.source = "gaussian";
    fm_flow *f = fm_flow_new(&fc);
    if (!f) return die("flow");
    fm_rng r;
    fm_rng_seed(&r, 0, FM_STREAM_INIT);
    fm_flow_init(f, &r);
    float *x = malloc((size_t)n * 2 * sizeof(float));
    fm_solver_config sc = fm_solver_config_default(FM_SOLVER_MIDPOINT);
    double grid[9];
    fm_time_grid_uniform(grid, 8, 0, 1);
    fm_solve_stats st;
    fm_rng_seed(&r, 0, FM_STREAM_NOISE);
    roof_start();
    double t0 = now();
    if (fm_flow_sample(f, (int)n, NULL, &r, &sc, grid, 9, x, NULL, NULL, &st) != FM_OK) return die("sample");
    double t = now() - t0;
    printf("RESULT sample %.4f s (%ld points, NFE %ld, %d threads)\n", t, n, st.nfe, fm_get_threads());
    roof_report("sample", t, 1, 1, "run");
    free(x);
    fm_flow_free(f);
    return 0;
}

/* ---- conv2d: one layer's forward and backward (dx, dW, db) */

static int conv(long steps)
{
    enum { N = 128, C = 32, H = 28, W = 28, O = 32 };
    fm_tape *tp = fm_tape_new(0);
    fm_rng r;
    fm_rng_seed(&r, 0, FM_STREAM_INIT);
    size_t nx = (size_t)N * C * H * W, ny = (size_t)N * O * H * W;
    float *xv = malloc(nx * sizeof(float)), *wv = malloc((size_t)O * C * 9 * sizeof(float));
    float *bv = malloc(O * sizeof(float)), *dy = malloc(ny * sizeof(float));
    fm_rng_normal_fill(&r, xv, nx, 0, 1);
    fm_rng_normal_fill(&r, wv, (size_t)O * C * 9, 0, 0.06f);
    fm_rng_normal_fill(&r, bv, O, 0, 0.1f);
    fm_rng_normal_fill(&r, dy, ny, 0, 1);
    double best = INFINITY, sum = 0;
    for (long i = 0; i < steps + 2; i++) {
        fm_tape_reset(tp);
        fm_tensor *x = fm_tensor_wrap(tp, xv, 4, (int[]){N, C, H, W});
        fm_tensor *w = fm_tensor_wrap(tp, wv, 4, (int[]){O, C, 3, 3});
        fm_tensor *b = fm_tensor_wrap(tp, bv, 1, (int[]){O});
        fm_tensor_requires_grad(x, 1);
        fm_tensor_requires_grad(w, 1);
        fm_tensor_requires_grad(b, 1);
        if (i == 2) roof_start();
        double t0 = now();
        fm_tensor *y = fm_conv2d(tp, x, w, b, 1, 1);
        if (!y || fm_backward(tp, y, dy) != FM_OK) return die("conv2d");
        double t = now() - t0;
        if (i >= 2) { /* warm-up steps excluded */
            sum += t;
            best = fmin(best, t);
        }
    }
    printf("RESULT conv %.5f s mean (best %.5f, %d threads)\n", sum / steps, best, fm_get_threads());
    roof_report("conv", sum, (double)steps, (double)steps, "step");
    fm_tape_free(tp);
    free(xv);
    free(wv);
    free(bv);
    free(dy);
    return 0;
}

/* ---- one U-Net training step */

/* The U-Net trainer takes images from an MNIST folder: n random 28 x 28 images
 * (the pixels do not change the work) written to a fresh temporary folder. */
static int fake_mnist(char *dir, size_t len, int n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, len, "%s/fm_bench_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return -1;
    uint8_t *im = malloc((size_t)n * 784), *lb = malloc((size_t)n);
    if (!im || !lb) return -1;
    fm_rng r;
    fm_rng_seed(&r, 0, FM_STREAM_DATA);
    for (size_t i = 0; i < (size_t)n * 784; i++) im[i] = (uint8_t)(fm_rng_next(&r) >> 56);
    for (int i = 0; i < n; i++) lb[i] = (uint8_t)(i % 10);
    char p[1100];
    int dims[3] = {n, 28, 28};
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    fm_status s = fm_idx_write_u8(p, 3, dims, im);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    if (!s) s = fm_idx_write_u8(p, 1, &n, lb);
    free(im);
    free(lb);
    return s ? -1 : 0;
}

static void fake_mnist_remove(const char *dir)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    remove(p);
    remove(dir);
}

static int unet_step(long steps, int batch)
{
    enum { WARMUP = 3 };
    char dir[1024], spec[1100];
    if (fake_mnist(dir, sizeof dir, 1024)) {
        fprintf(stderr, "bench: could not write images under %s\n", dir);
        return 1;
    }
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    fm_train_config c = fm_train_config_default();
    c.flow.data = spec;
    c.flow.arch = FM_ARCH_UNET; /* the default U-Net: base 32, mult 1,2,2, 8 groups */
    c.optim.lr = 1e-3;
    c.batch = batch;
    c.iters = steps + WARMUP;
    fm_trainer *tr = fm_trainer_new(&c);
    fake_mnist_remove(dir); /* read by now */
    if (!tr) return die("trainer");
    double *t = malloc((size_t)steps * sizeof(double)), sum = 0, loss = 0, cpu = 0;
    uint64_t sent = 0;
    for (long i = 0; i < steps + WARMUP; i++) {
        if (i == WARMUP) /* warm-up steps excluded: the tape grows */
            cpu = cpu_now(), sent = fm_dist_bytes_sent(), roof_start();
        double t0 = now();
        if (fm_trainer_step(tr, &loss) != FM_OK) return die("step");
        if (i >= WARMUP) sum += t[i - WARMUP] = now() - t0;
    }
    cpu = cpu_now() - cpu;
    /* median and best of the timed steps */
    for (long i = 1; i < steps; i++)
        for (long j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    double med = steps % 2 ? t[steps / 2] : 0.5 * (t[steps / 2 - 1] + t[steps / 2]);
    printf("RESULT unet-step %.4f s median (best %.4f, mean %.4f of %ld steps, CPU time %.4f s per step; %zu "
           "parameters, loss %.4f, %d threads%s)\n",
           med, t[0], sum / steps, steps, cpu / steps, fm_params_size(fm_flow_params(fm_trainer_flow(tr))), loss,
           fm_get_threads(), ranks_note((fm_dist_bytes_sent() - sent) / (double)steps));
    roof_report("unet-step", sum, (double)steps, (double)steps, "step");
    free(t);
    fm_trainer_free(tr);
    return 0;
}

/* ---- GEMM */

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);

static double time_it(void (*fn)(void *), void *ctx, double flops)
{
    int reps = (int)(1e9 / flops) + 1;
    double best = INFINITY;
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        for (int i = 0; i < reps; i++) fn(ctx);
        best = fmin(best, (now() - t0) / reps);
    }
    return flops / best / 1e9;
}

typedef struct {
    int M, N, K, tn;
    float *A, *B, *C;
    sgemm_fn blas;
} gctx;

static void ours(void *p)
{
    gctx *g = p;
    if (g->tn) fm__gemm(g->M, g->N, g->K, g->A, 1, g->M, g->B, g->N, g->C, g->N, NULL, 1);
    else fm__gemm(g->M, g->N, g->K, g->A, g->K, 1, g->B, g->N, g->C, g->N, NULL, 0);
}

static void theirs(void *p)
{
    gctx *g = p;
    /* CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 */
    if (g->tn) g->blas(101, 112, 111, g->M, g->N, g->K, 1.0f, g->A, g->M, g->B, g->N, 1.0f, g->C, g->N);
    else g->blas(101, 111, 111, g->M, g->N, g->K, 1.0f, g->A, g->K, g->B, g->N, 0.0f, g->C, g->N);
}

typedef float v16 __attribute__((vector_size(64)));
static long peak_iters = 100000;
static void peak_loop(void *p)
{
    (void)p;
    int th = fm_get_threads();
    (void)th;
#pragma omp parallel num_threads(th)
    {
        v16 a[12], b = (v16){0} + 1.0000001f, c = (v16){0} + 0.9999999f;
        for (int i = 0; i < 12; i++) a[i] = (v16){0} + (float)i;
        for (long it = 0; it < peak_iters; it++)
            for (int i = 0; i < 12; i++) a[i] = a[i] * b + c;
        float s = 0;
        for (int i = 0; i < 12; i++) s += a[i][0];
        if (s == 42.0f) printf(" ");
    }
}

/* The FMA peak for the thread count: the best of 7 runs of about a GFLOP
 * each, in parallel regions of 10^4 x tenths loop iterations. */
static double peak_gflops(int tenths)
{
    peak_iters = 10000L * tenths;
    return time_it(peak_loop, NULL, 2.0 * 16 * 12 * peak_iters * fm_get_threads());
}

static int gemm(void)
{
    void *h = dlopen("libopenblas.so.0", RTLD_NOW);
    sgemm_fn blas = h ? (sgemm_fn)dlsym(h, "cblas_sgemm") : NULL;
    void (*set_threads)(int) = h ? (void (*)(int))dlsym(h, "openblas_set_num_threads") : NULL;
    if (set_threads) set_threads(fm_get_threads());
    static const struct {
        const char *name;
        int M, N, K, tn;
    } shapes[] = {
        {"ref-fwd", 256, 64, 64, 0},   {"ref-dW", 64, 64, 256, 1},    {"ref-out", 256, 2, 64, 0},
        {"wide-fwd", 4096, 512, 512, 0}, {"wide-dW", 512, 512, 4096, 1}, {"square", 2048, 2048, 2048, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        gctx g = {shapes[i].M, shapes[i].N, shapes[i].K, shapes[i].tn, NULL, NULL, NULL, blas};
        size_t a = (size_t)g.M * g.K, b = (size_t)g.K * g.N, c = (size_t)g.M * g.N;
        g.A = malloc(a * 4);
        g.B = malloc(b * 4);
        g.C = calloc(c, 4);
        for (size_t k = 0; k < a; k++) g.A[k] = (float)(k % 13) * 0.01f;
        for (size_t k = 0; k < b; k++) g.B[k] = (float)(k % 7) * 0.01f;
        double fl = 2.0 * g.M * g.N * g.K;
        double ours_g = time_it(ours, &g, fl), blas_g = blas ? time_it(theirs, &g, fl) : NAN;
        printf("RESULT gemm-%s %.1f GFLOP/s (%d x %d x %d %s; OpenBLAS %.1f, %d threads)\n", shapes[i].name, ours_g, g.M,
               g.N, g.K, g.tn ? "A^T B" : "A B", blas_g, fm_get_threads());
        free(g.A);
        free(g.B);
        free(g.C);
    }
    printf("RESULT peak %.1f GFLOP/s (register-only FMA loop, %d threads)\n", peak_gflops(10), fm_get_threads());
    if (!blas) printf("note: libopenblas.so.0 not found; install libopenblas0 to compare\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: bench ref-train|wide-step|sample|gemm|conv|unet-step [--threads N] [--iters N] [--steps N] "
                "[--n N] [--profile]\n");
        return 2;
    }
    fm_set_threads((int)arg_long(argc, argv, "--threads", 0));
    for (int i = 2; i < argc; i++) profile_on |= !strcmp(argv[i], "--profile");
    if (!strcmp(argv[1], "wide-step") || !strcmp(argv[1], "unet-step")) { /* the training steps run under mpirun too */
        if (fm_dist_init(&argc, &argv) != FM_OK) return die("ranks");
        if (fm_dist_rank() > 0 && !freopen("/dev/null", "w", stdout)) return 1;
        long steps = arg_long(argc, argv, "--steps", !strcmp(argv[1], "wide-step") ? 20 : 10);
        int rc = !strcmp(argv[1], "wide-step") ? wide_step(steps) : unet_step(steps > 0 ? steps : 1, (int)arg_long(argc, argv, "--batch", 128));
        fm_dist_finalize();
        return rc;
    }
    if (!strcmp(argv[1], "ref-train")) return ref_train(arg_long(argc, argv, "--iters", 10000));
    if (!strcmp(argv[1], "sample")) return sample(arg_long(argc, argv, "--n", 1000000));
    if (!strcmp(argv[1], "gemm")) return gemm();
    if (!strcmp(argv[1], "conv")) return conv(arg_long(argc, argv, "--steps", 20));
    fprintf(stderr, "bench: unknown benchmark '%s'\n", argv[1]);
    return 2;
}
