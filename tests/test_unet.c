/* test_unet.c - the convolutional U-Net and flows that use it.
 *
 * The whole network's output and every gradient (each parameter's and the
 * input's) against PyTorch (tests/ref/unet.py, fixture unet.safetensors: a
 * tiny U-Net on three 12 x 12 images); the reshape op; then a flow with a
 * tiny U-Net on a small MNIST-like folder: training, checkpoints that sample
 * the same bits, resuming that equals not stopping, the same bits again for
 * the same thread count, EMA, DDPM and the likelihood's VJP path.
 */
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOL 1e-4

static void test_reshape(void)
{
    fm_tape *tp = fm_tape_new(0);
    float v[6] = {1, 2, 3, 4, 5, 6}, dy[6] = {0.5f, -1, 2, 3, -4, 6};
    int s23[2] = {2, 3}, s3111[4] = {3, 1, 2, 1}, s7[1] = {7};
    fm_tensor *x = fm_tensor_copy(tp, v, 2, s23);
    fm_tensor_requires_grad(x, 1);
    fm_tensor *y = fm_reshape(tp, x, 4, s3111);
    fm_status s = y ? fm_backward(tp, y, dy) : FM_ERR_ARG;
    int ok = s == FM_OK && y->ndim == 4 && y->shape[0] == 3 && y->shape[2] == 2 && !memcmp(y->data, v, sizeof v) &&
             x->grad && !memcmp(x->grad, dy, sizeof dy);
    fm_tensor *bad = fm_reshape(tp, x, 1, s7);
    t_check(ok && !bad && fm_tape_status(tp) == FM_ERR_SHAPE && strstr(fm_last_error(), "reshape"),
            "reshape: [2, 3] -> [3, 1, 2, 1] keeps the values, passes the gradient; 6 values as [7] is a shape error: %s",
            fm_last_error());
    fm_tape_free(tp);
}

/* The fixtures' tiny U-Net: 12 x 12 images, base 8, 4 groups, time sizes 8 and 16. */
static fm_unet_config fixture_config(int classes)
{
    fm_unet_config c = fm_unet_config_default(1, 12, 12);
    c.base = 8;
    c.groups = 4;
    c.time_freq = 8;
    c.time_dim = 16;
    c.num_classes = classes;
    return c;
}

/* Every parameter's gradient against the fixture's grad.<name>: one case with
 * the largest relative error, naming the worst; returns that error. */
static double check_param_grads(fm_params *P, const fm_st *st, const char *tag)
{
    double pw = 0;
    const char *pname = "";
    int missing = 0;
    for (int i = 0; i < fm_params_count(P); i++) {
        char key[256];
        snprintf(key, sizeof key, "grad.%s", fm_params_name(P, i));
        size_t n;
        float *g = t_read(st, key, &n);
        fm_tensor *pt = fm_params_tensor(P, i);
        if (!g || n != pt->size) {
            missing++;
            free(g);
            continue;
        }
        double e = t_relerr(pt->grad, g, n);
        if (e > pw) pw = e, pname = fm_params_name(P, i);
        free(g);
    }
    t_check(!missing && pw < TOL, "%s: gradients of all %d parameters, largest relative error %.2e (%s)", tag,
            fm_params_count(P), pw, pname);
    return missing ? INFINITY : pw;
}

/* The network u (weights loaded into P) on the fixture's n images, times and
 * labels (NULL: none), backward from its dy: the output, the input's gradient
 * and every parameter's gradient against PyTorch's, one case each, named by
 * tag. The output tensor (on tp) into *Y, NULL on failure; returns the
 * largest relative error (infinite on failure). */
static double check_fixture_pass(fm_tape *tp, fm_unet *u, fm_params *P, const fm_st *st, int n, const int *labels,
                                 const char *tag, fm_tensor **Y)
{
    size_t nx, nt, ndy, nout, ngx;
    float *x = t_read(st, "x", &nx), *t = t_read(st, "t", &nt), *dy = t_read(st, "dy", &ndy),
          *out = t_read(st, "out", &nout), *gx = t_read(st, "grad_x", &ngx);
    double worst = INFINITY;
    *Y = NULL;
    if (x && t && dy && out && gx && nx == (size_t)n * 144 && nt == (size_t)n) {
        int xs[4] = {n, 1, 12, 12}, ts[2] = {n, 1};
        fm_tensor *X = fm_tensor_copy(tp, x, 4, xs);
        fm_tensor_requires_grad(X, 1);
        fm_params_zero_grad(P);
        fm_params_requires_grad(P, 1);
        fm_tensor *y = fm_unet_forward(tp, u, fm_tensor_copy(tp, t, 2, ts), X, labels);
        fm_status s = y ? fm_backward(tp, y, dy) : fm_tape_status(tp);
        if (s) {
            t_check(0, "%s forward and backward: %s", tag, fm_last_error());
        } else {
            char name[96];
            snprintf(name, sizeof name, "%s: output [%d, 1, 12, 12]", tag, n);
            worst = fmax(t_relerr(y->data, out, nout), t_relerr(X->grad, gx, ngx));
            t_close(name, y->data, out, nout, TOL);
            snprintf(name, sizeof name, "%s: gradient of the input", tag);
            t_close(name, X->grad, gx, ngx, TOL);
            worst = fmax(worst, check_param_grads(P, st, tag));
            *Y = y;
        }
    } else {
        t_check(0, "%s fixture: x, t, dy, out and grad_x for %d images", tag, n);
    }
    free(x);
    free(t);
    free(dy);
    free(out);
    free(gx);
    return worst;
}

static void test_fixture(void)
{
    fm_st *st = t_fixture("unet.safetensors");
    if (!st) return;
    fm_unet_config c = fixture_config(0);
    fm_params *P = fm_params_new();
    fm_unet *u = fm_unet_new(P, NULL, &c);
    /* the names, in PyTorch's order */
    const char *names = fm_st_meta(st, "names");
    char joined[8192] = "";
    for (int i = 0, o = 0; u && i < fm_params_count(P); i++)
        o += snprintf(joined + o, sizeof joined - (size_t)o, "%s%s", i ? "," : "", fm_params_name(P, i));
    t_check(u && names && !strcmp(joined, names), "unet: %d parameters named and ordered as PyTorch's state_dict",
            u ? fm_params_count(P) : 0);
    fm_status s = u ? fm_params_load(P, st, "param.") : FM_ERR_ARG;
    size_t nx, nt;
    float *x = t_read(st, "x", &nx), *t = t_read(st, "t", &nt);
    fm_tape *tp = fm_tape_new(0);
    fm_tensor *Y = NULL;
    if (s || !x || !t) {
        t_check(0, "unet fixture: %s", T_ERR(s));
        goto done;
    }
    t_family_max("unet", check_fixture_pass(tp, u, P, st, 3, NULL, "unet", &Y));
    if (!Y) goto done;
    size_t nout = Y->size;
    int ts[2] = {3, 1};
    /* the flat input (B, C H W) gives the same bits */
    float *y4 = malloc(nout * sizeof(float));
    memcpy(y4, Y->data, nout * sizeof(float));
    fm_tape_reset(tp);
    int fs[2] = {3, 144};
    fm_tensor *Yf = fm_unet_forward(tp, u, fm_tensor_wrap(tp, t, 1, ts), fm_tensor_wrap(tp, x, 2, fs), NULL);
    t_check(Yf && Yf->ndim == 2 && Yf->shape[1] == 144 && !memcmp(Yf->data, y4, nout * sizeof(float)),
            "unet: flat input [3, 144] and times [3] give the same bits as [3, 1, 12, 12]");
    free(y4);
    /* bad shapes and configurations are errors, not crashes */
    fm_tape_reset(tp);
    int bs[2] = {3, 145};
    fm_tensor *Yb = fm_unet_forward(tp, u, fm_tensor_wrap(tp, t, 2, ts), fm_tensor_wrap(tp, x, 2, bs), NULL);
    int bad_shape = !Yb && fm_tape_status(tp) == FM_ERR_SHAPE;
    fm_unet_config bc = c;
    bc.num_classes = -1;
    fm_params *P2 = fm_params_new();
    fm_unet *u2 = fm_unet_new(P2, NULL, &bc);
    int no_classes = !u2 && strstr(fm_last_error(), "classes") && fm_params_count(P2) == 0;
    fm_tape_reset(tp);
    int lab[3] = {0, 1, 2};
    int no_labels = !fm_unet_forward(tp, u, fm_tensor_wrap(tp, t, 2, ts), fm_tensor_wrap(tp, x, 2, fs), lab) &&
                    strstr(fm_last_error(), "without class conditioning");
    bc = c;
    bc.height = 10; /* two halvings need a multiple of 4 */
    int bad_size = !fm_unet_new(P2, NULL, &bc) && fm_params_count(P2) == 0;
    int clash = !fm_unet_new(P, NULL, &c) && strstr(fm_last_error(), "already defined");
    /* a clash on the last name registered: everything added before it is taken back */
    fm_params *P3 = fm_params_new();
    int one = 1;
    fm_params_add(P3, "conv_out.bias", 1, &one);
    int late_clash = !fm_unet_new(P3, NULL, &c) && strstr(fm_last_error(), "already defined") &&
                     fm_params_count(P3) == 1 && fm_params_size(P3) == 1;
    fm_params_free(P3);
    t_check(bad_shape && no_classes && no_labels && bad_size && clash && late_clash,
            "unet: a wrong input shape, num_classes -1, labels for a network without classes, 10 x 10 images with 3 levels and name clashes are errors; "
            "a clash on the last name leaves the parameter set as it was");
    fm_unet_free(u2);
    fm_params_free(P2);
done:
    fm_tape_free(tp);
    free(x);
    free(t);
    fm_unet_free(u);
    fm_params_free(P);
    fm_st_free(st);
}

/* The class-conditional network (3 classes, the embedding's last row "no
 * label") against PyTorch, then classifier-free guidance through a flow. */
static void test_fixture_cond(void)
{
    fm_st *st = t_fixture("unet_cond.safetensors");
    if (!st) return;
    fm_unet_config c = fixture_config(3);
    fm_params *P = fm_params_new();
    fm_unet *u = fm_unet_new(P, NULL, &c);
    fm_flow_config fc = {.dim = 144, .arch = FM_ARCH_UNET, .unet = c, .path = fm_path_default(FM_PATH_OT)};
    fm_flow *f = fm_flow_new(&fc);
    fm_tape *tp = fm_tape_new(0);
    size_t nx, nt, nl, ng;
    float *x = t_read(st, "x", &nx), *t = t_read(st, "t", &nt), *lf = t_read(st, "labels", &nl),
          *guided = t_read(st, "guided", &ng);
    const char *names = fm_st_meta(st, "names");
    fm_status s = u && f && names && strstr(names, "time_mlp.2.bias,label_emb.weight,conv_in") ? fm_params_load(P, st, "param.")
                                                                                           : FM_ERR_ARG;
    if (s || !x || !t || !lf || !guided || nl != 4 || ng != 4 * 144) {
        t_check(0, "conditional unet fixture: label_emb registered after time_mlp, as PyTorch's: %s", T_ERR(s));
        goto done;
    }
    int lab[4];
    for (int i = 0; i < 4; i++) lab[i] = (int)lf[i];
    fm_tensor *Y;
    double worst = check_fixture_pass(tp, u, P, st, 4, lab, "conditional unet (labels 2, 0, none, 1)", &Y);
    if (!Y) goto done;
    /* guidance through the flow, a row at a time (each row has its own time) */
    memcpy(fm_params_data(fm_flow_params(f)), fm_params_data(P), fm_params_size(P) * sizeof(float));
    float v[4 * 144], vc[144], vu[144];
    int same = 1;
    for (int i = 0; i < 4 && !s; i++) {
        int li = lab[i] == 3 ? -1 : lab[i];
        s = fm_flow_set_condition(f, &li, 1, 2.5);
        if (!s) s = fm_flow_velocity(f, t[i], x + i * 144, v + i * 144, 1);
        /* w = 1: the conditional pass alone; w = 0 or no condition: the unconditional one */
        if (!s) s = fm_flow_set_condition(f, &li, 1, 1.0);
        if (!s) s = fm_flow_velocity(f, t[i], x + i * 144, vc, 1);
        if (!s) s = fm_flow_set_condition(f, NULL, 0, 0);
        if (!s) s = fm_flow_velocity(f, t[i], x + i * 144, vu, 1);
        same &= !memcmp(vc, Y->data + i * 144, sizeof vc) || li < 0;
        same &= li >= 0 || !memcmp(v + i * 144, vu, sizeof vu);
    }
    double ge = s ? INFINITY : t_relerr(v, guided, ng);
    worst = fmax(worst, ge);
    t_check(!s && ge < TOL && same,
            "classifier-free guidance w = 2.5 against PyTorch: relative error %.2e; w = 1 is the conditional output "
            "bit for bit, a row asking for no class the unconditional one %s", ge, T_ERR(s));
    t_family_max("unet", worst);
    /* refusals: a label out of range, a condition for other rows, labels for an unconditional flow */
    int bad = 3, two[2] = {0, 1};
    int r1 = fm_flow_set_condition(f, &bad, 1, 2.0) == FM_ERR_ARG && strstr(fm_last_error(), "outside 0..2");
    fm_flow_set_condition(f, two, 2, 2.0);
    int r2 = fm_flow_velocity(f, 0.5, x, v, 1) == FM_ERR_SHAPE && strstr(fm_last_error(), "2 rows");
    fc.unet.num_classes = 0;
    fm_flow *g = fm_flow_new(&fc);
    int r3 = g && fm_flow_set_condition(g, two, 2, 2.0) == FM_ERR_ARG && strstr(fm_last_error(), "not class-conditional");
    fm_flow_free(g);
    t_check(r1 && r2 && r3, "conditioning refuses label 3 of 3 classes, 1 row for a 2-row condition, and labels for "
                            "an unconditional flow");
done:
    free(x);
    free(t);
    free(lf);
    free(guided);
    fm_tape_free(tp);
    fm_flow_free(f);
    fm_unet_free(u);
    fm_params_free(P);
    fm_st_free(st);
}

/* ---- flows with a U-Net */

/* Pixel p of image i of the folder below: a blob that moves with i. */
static uint8_t blob_pixel(int i, int p)
{
    int r = p / 28, c = p % 28, dr = r - 8 - i % 12, dc = c - 6 - (i * 7) % 15;
    return (uint8_t)(dr * dr + dc * dc < 30 ? 255 - 3 * (dr * dr + dc * dc) : (i * p) % 17);
}

/* A 24-image MNIST folder, image i labelled i % 10. */
static const char *mnist_dir(void)
{
    static int made;
    const char *dir = t_path("unet_mn");
    if (!made) {
        enum { N = 24 };
        static uint8_t im[N * 784];
        uint8_t lab[N];
        for (int i = 0; i < N; i++) {
            lab[i] = (uint8_t)(i % 10);
            for (int p = 0; p < 784; p++) im[i * 784 + p] = blob_pixel(i, p);
        }
        made = t_mnist_write(dir, "train", N, 28, im, lab, N);
    }
    return dir;
}

static fm_train_config unet_config(int batch)
{
    static char spec[1100];
    snprintf(spec, sizeof spec, "mnist:%s", mnist_dir());
    fm_train_config c = fm_train_config_default();
    c.flow.data = spec;
    c.flow.arch = FM_ARCH_UNET;
    c.flow.unet.base = 8;
    c.flow.unet.nlevels = 2;
    c.flow.unet.mult[0] = 1;
    c.flow.unet.mult[1] = 2;
    c.flow.unet.groups = 4;
    c.optim.lr = 1e-3;
    c.batch = batch;
    c.seed = 3;
    return c;
}

static int same_params(fm_trainer *a, fm_trainer *b)
{
    fm_params *pa = fm_flow_params(fm_trainer_flow(a)), *pb = fm_flow_params(fm_trainer_flow(b));
    return fm_params_size(pa) == fm_params_size(pb) &&
           !memcmp(fm_params_data(pa), fm_params_data(pb), fm_params_size(pa) * sizeof(float));
}

/* t_trained that also keeps the first step's loss. */
static fm_trainer *trained_first_loss(const fm_train_config *c, int iters, double *first)
{
    fm_trainer *tr = fm_trainer_new(c);
    for (int i = 0; tr && i < iters; i++)
        if (fm_trainer_step(tr, i ? NULL : first) != FM_OK) {
            fm_trainer_free(tr);
            return NULL;
        }
    return tr;
}

/* 2 steps of c, save, resume, 2 more: the same bits as 4 steps in one run. */
static void check_resume(fm_train_config c, const char *file, const char *what)
{
    c.iters = c.sched.total = 4;
    fm_trainer *full = t_trained(&c, 4), *half = t_trained(&c, 2), *res = NULL;
    const char *p2 = t_path(file);
    if (half && fm_trainer_save(half, p2) == FM_OK) res = fm_trainer_resume(p2, 4);
    for (int i = 0; res && i < 2; i++)
        if (fm_trainer_step(res, NULL) != FM_OK) {
            fm_trainer_free(res);
            res = NULL;
        }
    t_check(full && res && same_params(full, res) && fm_flow_unet(fm_trainer_flow(res)),
            "%s: 2 steps, save, resume, 2 steps equals 4 steps bit for bit %s", what, T_ERRP(res));
    fm_trainer_free(full);
    fm_trainer_free(half);
    fm_trainer_free(res);
}

static int sample4(fm_flow *f, float *out)
{
    fm_rng r;
    fm_rng_seed(&r, 9, FM_STREAM_NOISE);
    fm_solver_config sc = fm_solver_config_default(FM_SOLVER_EULER);
    double grid[3];
    fm_time_grid_uniform(grid, 2, 0.0, fm_flow_get_config(f)->path.t_end);
    return fm_flow_sample(f, 4, NULL, &r, &sc, grid, 3, out, NULL, NULL, NULL) == FM_OK;
}

static void test_flow(void)
{
    int saved_threads = fm_get_threads();
    fm_set_threads(1);
    fm_train_config c = unet_config(8);
    c.ema_decay = 0.9;
    fm_trainer *tr = t_trained(&c, 3);
    fm_flow *f = tr ? fm_trainer_flow(tr) : NULL;
    int ok = f && fm_flow_unet(f) && !fm_flow_net(f) && fm_flow_get_config(f)->unet.in_ch == 1 &&
             fm_flow_get_config(f)->unet.height == 28 && fm_params_find(fm_flow_params(f), "net.mid.skip.weight") < 0 &&
             fm_params_find(fm_flow_params(f), "net.upconv.0.weight") >= 0;
    t_check(ok, "a U-Net flow trains 3 steps on a 24-image MNIST folder (28 x 28, levels 28 and 14) %s", T_ERRP(f));
    if (!ok) {
        fm_trainer_free(tr);
        fm_set_threads(saved_threads);
        return;
    }
    /* save, load, sample the same bits */
    const char *path = t_path("unet_flow.safetensors");
    float a[4 * 784], b[4 * 784];
    fm_status s = fm_trainer_save(tr, path);
    fm_st *st = s ? NULL : fm_st_load(path);
    fm_flow *g = st ? fm_flow_load(st, 0) : NULL;
    fm_flow *ge = st ? fm_flow_load(st, 1) : NULL;
    int has_ema = st && fm_flow_has_ema(st);
    const char *model = st ? fm_st_meta(st, "model") : NULL;
    ok = g && ge && has_ema && model && !strcmp(model, "unet") && sample4(f, a) && sample4(g, b) && !memcmp(a, b, sizeof a);
    int finite = 1;
    for (int i = 0; i < 4 * 784; i++) finite &= isfinite(a[i]) != 0;
    /* the EMA weights load instead of the live ones */
    int ema_differs = ge && memcmp(fm_params_data(fm_flow_params(ge)), fm_params_data(fm_flow_params(g)),
                                   fm_params_size(fm_flow_params(g)) * sizeof(float)) != 0;
    t_check(ok && finite && ema_differs,
            "U-Net flow: saved (model = unet, EMA kept) and loaded, 4 samples of 784 pixels with the same bits; the "
            "EMA weights load on request %s", T_ERR(s));
    /* the likelihood's VJP path through the U-Net: Hutchinson, and exact on one point */
    if (g) {
        double grid[3], lp[2] = {NAN, NAN}, se[2], lpe = NAN;
        fm_time_grid_uniform(grid, 2, fm_flow_get_config(g)->path.t_end, 0.0);
        fm_nll_config nc = {fm_solver_config_default(FM_SOLVER_EULER), grid, 3, FM_DIV_HUTCH_RADEMACHER, 2, 1};
        fm_status s1 = fm_flow_log_likelihood(g, a, 2, &nc, lp, se, NULL);
        nc.div = FM_DIV_EXACT;
        nc.ngrid = 2;
        grid[1] = 0.0;
        fm_status s2 = fm_flow_log_likelihood(g, a, 1, &nc, &lpe, NULL, NULL);
        t_check(s1 == FM_OK && s2 == FM_OK && isfinite(lp[0]) && isfinite(lp[1]) && isfinite(lpe),
                "U-Net flow: log-likelihood through its VJPs, Hutchinson (2 points, %.1f, %.1f) and exact (1 point, "
                "784 backward passes, %.1f) %s",
                lp[0], lp[1], lpe, s1 ? fm_last_error() : T_ERR(s2));
    }
    fm_flow_free(g);
    fm_flow_free(ge);
    fm_st_free(st);

    /* resuming equals not stopping */
    check_resume(unet_config(8), "unet_half.safetensors", "U-Net flow");
    fm_trainer_free(tr);

    /* the same bits again for the same thread count (batch 64: two shards on two threads) */
    fm_train_config c3 = unet_config(64);
    fm_trainer *r1[2] = {NULL, NULL}, *r2[2] = {NULL, NULL};
    double loss1 = NAN, loss2 = NAN; /* the first step's loss on 1 and on 2 threads */
    for (int k = 0; k < 2; k++) {
        fm_set_threads(1);
        r1[k] = trained_first_loss(&c3, 2, &loss1);
        fm_set_threads(2);
        r2[k] = trained_first_loss(&c3, 2, &loss2);
    }
    int det1 = r1[0] && r1[1] && same_params(r1[0], r1[1]), det2 = r2[0] && r2[1] && same_params(r2[0], r2[1]);
    double diff = 0;
    if (r1[0] && r2[0]) {
        fm_params *pa = fm_flow_params(fm_trainer_flow(r1[0])), *pb = fm_flow_params(fm_trainer_flow(r2[0]));
        diff = t_relerr(fm_params_data(pb), fm_params_data(pa), fm_params_size(pa));
    }
    /* the shards' gradients are summed in another order, nothing more: rounding-level differences */
    double dloss = fabs(loss1 - loss2) / fabs(loss1);
    t_check(det1 && det2 && diff < 1e-6 && dloss < 1e-6,
            "U-Net flow: 1 thread twice, 2 threads twice, each the same bits; 1 against 2 threads: weights differ by "
            "%.1e, first losses by %.1e",
            diff, dloss);
    for (int k = 0; k < 2; k++) {
        fm_trainer_free(r1[k]);
        fm_trainer_free(r2[k]);
    }
    fm_set_threads(1);

    /* DDPM with the same network */
    fm_train_config cd = unet_config(8);
    cd.method = FM_METHOD_DDPM;
    cd.flow.ddpm.T = 50;
    fm_trainer *td = t_trained(&cd, 2);
    const char *pd = t_path("unet_ddpm.safetensors");
    fm_st *sd = td && fm_trainer_save(td, pd) == FM_OK ? fm_st_load(pd) : NULL;
    fm_model *m = sd ? fm_model_load(sd, 0) : NULL;
    int ddpm_ok = 0;
    if (m) {
        int steps;
        fm_solver_kind kind = fm_model_default_solver(m, &steps);
        fm_solver_config sc = fm_solver_config_default(kind);
        double grid[6];
        fm_time_grid_uniform(grid, 5, 0.0, 1.0);
        fm_rng r;
        fm_rng_seed(&r, 1, FM_STREAM_NOISE);
        float o[2 * 784];
        ddpm_ok = fm_model_method(m) == FM_METHOD_DDPM && fm_flow_unet(fm_model_flow(m)) &&
                  fm_model_sample(m, 2, &r, &sc, grid, 6, o, NULL, NULL, NULL) == FM_OK && isfinite(o[0]) && isfinite(o[783]);
    }
    t_check(ddpm_ok, "DDPM with a U-Net: trains, saves, loads and samples 5 steps %s", T_ERRP(m));
    fm_model_free(m);
    fm_st_free(sd);
    fm_trainer_free(td);

    /* the U-Net needs image data; VAE and GAN keep their MLPs */
    fm_train_config cm = unet_config(8);
    cm.flow.data = "moons";
    fm_trainer *bad = fm_trainer_new(&cm);
    int moons = !bad && fm_last_status() == FM_ERR_ARG && strstr(fm_last_error(), "image data");
    fm_trainer_free(bad);
    cm = unet_config(8);
    cm.method = FM_METHOD_VAE;
    bad = fm_trainer_new(&cm);
    t_check(moons && !bad && strstr(fm_last_error(), "unet"),
            "a U-Net on moons and a U-Net VAE are refused: %s", fm_last_error());
    fm_trainer_free(bad);
    fm_set_threads(saved_threads);
}

/* How many rows of the label embedding moved from start (a copy of it taken
 * before training); moved[r] says which. -1 without an embedding. */
static int moved_rows(fm_trainer *tr, const float *start, int *moved)
{
    fm_params *P = fm_flow_params(fm_trainer_flow(tr));
    int k = fm_params_find(P, "net.label_emb.weight");
    if (k < 0) return -1;
    fm_tensor *e = fm_params_tensor(P, k);
    int n = 0, w = e->shape[1];
    for (int r = 0; r < e->shape[0]; r++) {
        moved[r] = memcmp(e->data + r * w, start + r * w, (size_t)w * sizeof(float)) != 0;
        n += moved[r];
    }
    return n;
}

/* Class-conditional training: labels drawn with their images, label dropout,
 * labels following the OT coupling and the thread split, checkpoints,
 * refusals. */
static void test_cond_flow(void)
{
    int saved_threads = fm_get_threads();
    fm_set_threads(1);
    /* labelled draws are the plain draws, each with its own image's label */
    char spec[1100];
    snprintf(spec, sizeof spec, "mnist:%s", mnist_dir());
    fm_dataset *ds = fm_dataset_open(spec);
    enum { ND = 12 };
    float xa[ND * 784], xb[ND * 784];
    int lab[ND], ok = ds != NULL;
    fm_rng ra, rb;
    fm_rng_seed(&ra, 5, FM_STREAM_DATA);
    fm_rng_seed(&rb, 5, FM_STREAM_DATA);
    ok = ok && fm_dataset_sample_labeled(ds, &ra, xa, lab, ND) == FM_OK && fm_dataset_sample(ds, &rb, xb, ND) == FM_OK &&
         !memcmp(xa, xb, sizeof xa);
    int found = 0;
    for (int i = 0; ok && i < ND; i++) /* the image drawn is row r; its label must be r % 10 */
        for (int r = 0; r < 24; r++) {
            int p = 0;
            while (p < 784 && xa[i * 784 + p] == blob_pixel(r, p) / 255.0f) p++;
            if (p == 784) found += lab[i] == r % 10;
        }
    fm_dataset *moons = fm_dataset_open("moons");
    int unlabelled = moons && fm_dataset_sample_labeled(moons, &ra, xa, lab, 2) == FM_ERR_ARG;
    fm_dataset_free(moons);
    fm_dataset_free(ds);
    t_check(ok && found == ND && unlabelled,
            "labelled draws: the same %d images as unlabelled draws, each with its image's label (%d found); moons "
            "has no labels", ND, found);

    /* label dropout 0: only class rows of the embedding learn; dropout ~1: only "no label" */
    fm_train_config c = unet_config(8);
    c.flow.unet.num_classes = -1; /* from the data: 10 */
    float start[11 * 64];
    int moved[11], nm[2] = {-1, -1}, none_moved[2] = {-1, -1}, rows = 0;
    for (int k = 0; k < 2; k++) {
        c.label_dropout = k ? 0.999999 : 0.0;
        fm_trainer *tr = fm_trainer_new(&c);
        fm_params *P = tr ? fm_flow_params(fm_trainer_flow(tr)) : NULL;
        int e = P ? fm_params_find(P, "net.label_emb.weight") : -1;
        if (e < 0) break;
        fm_tensor *E = fm_params_tensor(P, e);
        rows = E->shape[0];
        if (E->size > sizeof start / sizeof *start) break;
        memcpy(start, E->data, E->size * sizeof(float));
        for (int i = 0; i < 2; i++)
            if (fm_trainer_step(tr, NULL)) break;
        nm[k] = moved_rows(tr, start, moved);
        none_moved[k] = moved[10];
        fm_trainer_free(tr);
    }
    t_check(rows == 11 && nm[0] >= 4 && !none_moved[0] && nm[1] == 1 && none_moved[1],
            "label dropout: %d embedding rows (10 classes + none); with dropout 0, %d class rows learn and none stays; "
            "with dropout 0.999999 only 'none' learns (%d row)", rows, nm[0], nm[1]);

    /* checkpoints keep the classes; a conditional sample reloads with the same bits */
    c.label_dropout = 0.2;
    c.coupling = FM_COUPLING_OT; /* labels follow their images through the pairing */
    fm_trainer *tr = t_trained(&c, 2);
    const char *path = t_path("unet_cond.safetensors");
    fm_status s = tr ? fm_trainer_save(tr, path) : FM_ERR_ARG;
    fm_st *st = s ? NULL : fm_st_load(path);
    fm_flow *g = st ? fm_flow_load(st, 0) : NULL;
    float a[4 * 784], b[4 * 784];
    int want[4] = {7, 0, -1, 3};
    ok = g && fm_flow_num_classes(g) == 10 && fm_flow_set_condition(fm_trainer_flow(tr), want, 4, 2.0) == FM_OK &&
         fm_flow_set_condition(g, want, 4, 2.0) == FM_OK && sample4(fm_trainer_flow(tr), a) && sample4(g, b) &&
         !memcmp(a, b, sizeof a);
    fm_flow_set_condition(g, want, 4, 1.0);
    int differs = ok && sample4(g, b) && memcmp(a, b, sizeof a) != 0; /* guidance changes the samples */
    const char *ld = st ? fm_st_meta(st, "train.label_dropout") : NULL;
    t_check(ok && differs && ld && atof(ld) == 0.2,
            "conditional U-Net flow (OT coupling): saved with 10 classes and label dropout %s, reloaded; samples for "
            "labels 7, 0, none, 3 at guidance 2 have the same bits, and differ at guidance 1 %s", ld ? ld : "?", T_ERR(s));
    fm_flow_free(g);
    fm_st_free(st);
    /* resuming equals not stopping */
    c.coupling = FM_COUPLING_INDEPENDENT;
    check_resume(c, "unet_cond_half.safetensors", "conditional U-Net flow");
    fm_trainer_free(tr);
    /* batch 64 split over 2 threads: each shard sees its own rows' labels */
    fm_train_config c3 = unet_config(64);
    c3.flow.unet.num_classes = -1;
    fm_set_threads(1);
    fm_trainer *t1 = t_trained(&c3, 1);
    fm_set_threads(2);
    fm_trainer *t2 = t_trained(&c3, 1);
    double dw = INFINITY;
    if (t1 && t2) {
        fm_params *p1 = fm_flow_params(fm_trainer_flow(t1)), *p2p = fm_flow_params(fm_trainer_flow(t2));
        dw = t_relerr(fm_params_data(p2p), fm_params_data(p1), fm_params_size(p1));
    }
    t_check(dw < 1e-6, "conditional U-Net flow: one step of batch 64 on 1 and on 2 threads, weights within %.1e", dw);
    fm_trainer_free(t1);
    fm_trainer_free(t2);
    /* refusals */
    fm_train_config bad = c;
    bad.flow.arch = FM_ARCH_MLP;
    fm_trainer *b1 = fm_trainer_new(&bad);
    int r1 = !b1 && strstr(fm_last_error(), "--arch unet");
    bad = c;
    bad.flow.unet.num_classes = 4; /* the labels go up to 9 */
    fm_trainer *b2 = fm_trainer_new(&bad);
    int r2 = !b2 && strstr(fm_last_error(), "up to 9");
    bad = c;
    bad.label_dropout = 1.0;
    fm_trainer *b3 = fm_trainer_new(&bad);
    int r3 = !b3 && strstr(fm_last_error(), "dropout");
    t_check(r1 && r2 && r3, "class conditioning refuses the MLP, 4 classes for labels up to 9, and label dropout 1");
    fm_trainer_free(b1);
    fm_trainer_free(b2);
    fm_trainer_free(b3);
    fm_set_threads(saved_threads);
}

void test_unet(void)
{
    test_reshape();
    test_fixture();
    test_fixture_cond();
    test_flow();
    test_cond_flow();
}
