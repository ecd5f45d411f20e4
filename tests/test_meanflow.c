/* test_meanflow.c - MeanFlow: the interval networks' Jacobian-vector
 * products against torch's jvp and central differences; the loss and its
 * gradient against PyTorch; the target against closed forms (a field whose
 * average velocity the network holds exactly, and the Gaussian-to-Gaussian
 * flow a trained model must learn); SplitMeanFlow's target on the same flow.
 */
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* An interval flow on dim-dimensional data: an MLP (hidden layers of width,
 * act, time_embed) or, with unet, a U-Net on 1 x 8 x 8 images (base 8, 2
 * levels, 4 groups, 3 classes). */
static fm_flow *interval_flow(int dim, int nhidden, int width, fm_act act, int time_embed, int unet)
{
    fm_flow_config fc;
    memset(&fc, 0, sizeof fc);
    fc.dim = dim;
    fc.interval = 1;
    fc.net = fm_mlp_config_default(dim);
    fc.net.nhidden = nhidden;
    for (int i = 0; i < nhidden; i++) fc.net.width[i] = width;
    fc.net.act = act;
    fc.net.time_embed = time_embed;
    if (unet) {
        fc.arch = FM_ARCH_UNET;
        fc.unet = fm_unet_config_default(1, 8, 8);
        fc.unet.base = 8;
        fc.unet.nlevels = 2;
        fc.unet.mult[0] = 1, fc.unet.mult[1] = 2;
        fc.unet.groups = 4;
        fc.unet.num_classes = 3;
    }
    fc.path = fm_path_default(FM_PATH_OT);
    fc.data = "moons";
    fc.source = "gaussian";
    return fm_flow_new(&fc);
}

/* The fixture's tensor "<prefix><name of parameter i>" (n values), or NULL. */
static float *read_prefixed(const fm_st *st, fm_params *P, const char *prefix, int i, size_t *n)
{
    char key[256];
    snprintf(key, sizeof key, "%s%s", prefix, fm_params_name(P, i));
    return t_read(st, key, n);
}

/* Parameters of P from the fixture's tensors "<prefix><name>". */
static int load_prefixed(const fm_st *st, fm_params *P, const char *prefix)
{
    int ok = 1;
    for (int i = 0; i < fm_params_count(P); i++) {
        size_t n = 0;
        float *w = read_prefixed(st, P, prefix, i, &n);
        fm_tensor *T = fm_params_tensor(P, i);
        if (w && n == T->size) memcpy(T->data, w, n * sizeof(float));
        else ok = 0;
        free(w);
    }
    return ok;
}

/* The largest relative error of every parameter's values (grad 0) or
 * gradient (grad 1) against the fixture's "<prefix><name>"; 1 for one missing. */
static double prefixed_err(const fm_st *st, fm_params *P, const char *prefix, int grad)
{
    double e = 0;
    for (int i = 0; i < fm_params_count(P); i++) {
        size_t m = 0;
        float *w = read_prefixed(st, P, prefix, i, &m);
        fm_tensor *T = fm_params_tensor(P, i);
        e = fmax(e, w && m == T->size ? t_relerr(grad ? T->grad : T->data, w, m) : 1.0);
        free(w);
    }
    return e;
}

/* (m, 2) rows (t_i, h_i) */
static fm_tensor *times2(fm_tape *tp, const float *t, const float *h, int m)
{
    fm_tensor *T = fm_tensor_2d(tp, m, 2);
    for (int i = 0; T && i < m; i++) T->data[2 * i] = t[i], T->data[2 * i + 1] = h[i];
    return T;
}

static fm_tensor *ones_minus(fm_tape *tp, int m)
{
    fm_tensor *T = fm_tensor_2d(tp, m, 2);
    for (int i = 0; T && i < m; i++) T->data[2 * i] = 1, T->data[2 * i + 1] = -1;
    return T;
}

/* ---- the MLP's u, JVP, target, loss and gradient against PyTorch */
static void fixture_mlp(const fm_st *st)
{
    fm_flow *f = interval_flow(2, 2, 16, FM_ACT_ELU, 0, 0);
    fm_params *P = f ? fm_flow_params(f) : NULL;
    int ok = f && load_prefixed(st, P, "");
    size_t n;
    float *x = t_read(st, "mlp.x", &n), *t = t_read(st, "mlp.t", &n), *h = t_read(st, "mlp.h", &n);
    float *v = t_read(st, "mlp.v", &n), *u = t_read(st, "mlp.u", &n), *du = t_read(st, "mlp.du", &n);
    float *loss = t_read(st, "mlp.loss", &n), *plain = t_read(st, "mlp.plain", &n);
    if (!ok || !x || !t || !h || !v || !u || !du || !loss || !plain) {
        t_check(0, "meanflow fixture: the MLP part is incomplete");
        goto done;
    }
    fm_tape *tp = fm_tape_new(0);
    int s2[2] = {8, 2};
    fm_tensor *X = fm_tensor_copy(tp, x, 2, s2), *V = fm_tensor_copy(tp, v, 2, s2), *y = NULL;
    fm_tensor *j = fm__flow_jvp_with(tp, f, P, times2(tp, t, h, 8), X, NULL, ones_minus(tp, 8), V, &y);
    double eu = j ? t_relerr(y->data, u, 16) : 1, ej = j ? t_relerr(j->data, du, 16) : 1;
    t_family_max("meanflow jvp", ej);
    t_check(eu < 1e-5 && ej < 1e-5, "meanflow MLP: u against torch %.2e, its JVP along (v, 1, -1) against torch's jvp "
            "%.2e", eu, ej);
    double pl = NAN;
    fm_tensor *l = fm__meanflow_loss(tp, f, P, times2(tp, t, h, 8), X, V, NULL, NULL, 1.0, 1e-3, 1.0 / 8, &pl);
    fm_status s = l ? fm_backward(tp, l, NULL) : fm_tape_status(tp);
    double el = l ? fabs(l->data[0] - loss[0]) / fabs(loss[0]) : 1, ep = fabs(pl - plain[0]) / fabs(plain[0]);
    t_check(!s && el < 1e-5 && ep < 1e-5, "meanflow loss (adaptive weight p = 1, c = 1e-3) %.6f against torch %.6f "
            "(rel %.2e), plain squared error rel %.2e %s", l ? l->data[0] : NAN, loss[0], el, ep, T_ERR(s));
    double eg = s ? 1.0 : prefixed_err(st, P, "mlp.grad.", 1);
    t_family_max("meanflow grad", eg);
    t_check(!s && eg < 1e-4, "meanflow loss: the gradient of every weight against torch (stop-gradient on the target "
            "and the weight), max rel err %.2e", eg);
    /* the rest of the training step: Adam (lr 1e-2) on that gradient */
    fm_optim_config oc = fm_optim_config_default(FM_OPTIM_ADAM);
    oc.lr = 1e-2;
    fm_optim *opt = s ? NULL : fm_optim_new(P, &oc);
    fm_status so = opt ? fm_optim_step(opt, oc.lr) : FM_ERR_ARG;
    double ew = so ? 1.0 : prefixed_err(st, P, "mlp.after.", 0);
    t_check(!so && ew < 1e-5, "meanflow: one training step (the loss's gradient, then Adam lr 1e-2) gives torch's "
            "weights, max rel err %.2e", ew);
    fm_optim_free(opt);
    fm_tape_free(tp);
done:
    free(x), free(t), free(h), free(v), free(u), free(du), free(loss), free(plain);
    fm_flow_free(f);
}

/* ---- the U-Net's u and JVP (x, t and h) against torch's jvp */
static void fixture_unet(const fm_st *st)
{
    fm_flow *f = interval_flow(64, 0, 0, FM_ACT_SILU, 0, 1);
    fm_params *P = f ? fm_flow_params(f) : NULL;
    int ok = f && load_prefixed(st, P, "unet.");
    size_t n;
    float *x = t_read(st, "unet.x", &n), *t = t_read(st, "unet.t", &n), *h = t_read(st, "unet.h", &n);
    float *dx = t_read(st, "unet.dx", &n), *u = t_read(st, "unet.u", &n), *du = t_read(st, "unet.du", &n);
    if (!ok || !x || !t || !h || !dx || !u || !du) {
        t_check(0, "meanflow fixture: the U-Net part is incomplete");
        goto done;
    }
    fm_tape *tp = fm_tape_new(0);
    int s2[2] = {3, 64}, labels[3] = {0, 2, 3};
    fm_tensor *y = NULL;
    fm_tensor *j = fm__flow_jvp_with(tp, f, P, times2(tp, t, h, 3), fm_tensor_copy(tp, x, 2, s2), labels,
                                     ones_minus(tp, 3), fm_tensor_copy(tp, dx, 2, s2), &y);
    double eu = j ? t_relerr(y->data, u, 192) : 1, ej = j ? t_relerr(j->data, du, 192) : 1;
    t_family_max("meanflow jvp", ej);
    t_check(eu < 1e-4 && ej < 1e-4, "interval U-Net (3 classes, labels 0, 2, none): u against torch %.2e, JVP along "
            "(dx, 1, -1) through group norms, SiLUs, convolutions and both time embeddings against torch's jvp %.2e",
            eu, ej);
    fm_tape_free(tp);
done:
    free(x), free(t), free(h), free(dx), free(u), free(du);
    fm_flow_free(f);
}

/* ---- JVPs against central differences along x (h = 1e-2, float), and the
 * forward of the JVP pass equal to the plain forward bit for bit */
static void jvp_fd(void)
{
    for (int k = 0; k < 3; k++) {
        int unet = k == 2, d = unet ? 64 : 2, m = 5;
        fm_flow *f = interval_flow(d, 2, 32, FM_ACT_SILU, k == 1 ? 16 : 0, unet);
        fm_rng r;
        fm_rng_seed(&r, 11 + k, FM_STREAM_NOISE);
        if (f) fm_flow_init(f, &r);
        fm_params *P = f ? fm_flow_params(f) : NULL;
        fm_tape *tp = fm_tape_new(0);
        float t[5], hh[5], *x = malloc(sizeof(float) * m * d), *v = malloc(sizeof(float) * m * d);
        float *xp = malloc(sizeof(float) * m * d), *xm = malloc(sizeof(float) * m * d);
        for (int i = 0; i < m; i++) t[i] = 0.1f + 0.15f * i, hh[i] = 0.8f - t[i] * 0.9f;
        for (int i = 0; i < m * d; i++) x[i] = (float)fm_rng_normal(&r), v[i] = (float)fm_rng_normal(&r);
        double step = 1e-2;
        for (int i = 0; i < m * d; i++) xp[i] = (float)(x[i] + step * v[i]), xm[i] = (float)(x[i] - step * v[i]);
        int s2[2] = {m, d}, labels[5] = {0, 1, 2, 3, 1};
        const int *lab = unet ? labels : NULL;
        fm_tensor *y = NULL, *T = times2(tp, t, hh, m);
        fm_tensor *j = f ? fm__flow_jvp_with(tp, f, P, T, fm_tensor_copy(tp, x, 2, s2), lab, NULL,
                                             fm_tensor_copy(tp, v, 2, s2), &y)
                         : NULL;
        fm_tensor *y0 = f ? fm__flow_forward_with(tp, f, P, T, fm_tensor_copy(tp, x, 2, s2), lab) : NULL;
        fm_tensor *yp = f ? fm__flow_forward_with(tp, f, P, T, fm_tensor_copy(tp, xp, 2, s2), lab) : NULL;
        fm_tensor *ym = f ? fm__flow_forward_with(tp, f, P, T, fm_tensor_copy(tp, xm, 2, s2), lab) : NULL;
        double e = 1, same = 0;
        if (j && y0 && yp && ym) {
            float *fd = malloc(sizeof(float) * m * d);
            for (int i = 0; i < m * d; i++) fd[i] = (float)((yp->data[i] - ym->data[i]) / (2 * step));
            e = t_relerr(j->data, fd, (size_t)m * d);
            same = memcmp(y->data, y0->data, sizeof(float) * m * d) != 0;
            free(fd);
        }
        const char *what[3] = {"MLP, raw time", "MLP, time embedding 16", "U-Net with classes"};
        t_check(e < 2e-3 && same == 0, "interval %s: JVP along x against central differences %.2e; the JVP pass's "
                "output is the forward's bit for bit (%s)", what[k], e, same == 0 ? "yes" : "no");
        free(x), free(v), free(xp), free(xm);
        fm_tape_free(tp);
        fm_flow_free(f);
    }
}

/* ---- the identity on a field whose average velocity the network holds
 * exactly: v(x, t) = a + b t gives x(t + h) - x(t) = h (a + b t + b h / 2), so
 * u = a + b t + (b / 2) h, which a linear network (no hidden layer) is with
 * weights (b, 0, 0, b / 2) on (t, x, h). Its target v + h du/dt must equal u:
 * the loss's plain squared error is zero, and the wrong sign of the
 * interval's tangent would make it (b h)^2. */
static void identity_exact(void)
{
    fm_flow *f = interval_flow(2, 0, 0, FM_ACT_NONE, 0, 0);
    if (!f) {
        t_check(0, "a linear interval flow: %s", fm_last_error());
        return;
    }
    fm_params *P = fm_flow_params(f);
    const double a[2] = {0.7, -1.3}, b[2] = {2.0, 0.5};
    fm_tensor *W = fm_params_tensor(P, 0), *Bv = fm_params_tensor(P, 1); /* (2, 4): inputs t, x0, x1, h */
    for (int o = 0; o < 2; o++) {
        float *row = W->data + 4 * o;
        row[0] = (float)b[o], row[1] = row[2] = 0, row[3] = (float)(b[o] / 2);
        Bv->data[o] = (float)a[o];
    }
    enum { M = 64 };
    float t[M], h[M], x[2 * M], v[2 * M];
    fm_rng r;
    fm_rng_seed(&r, 5, FM_STREAM_NOISE);
    for (int i = 0; i < M; i++) {
        t[i] = (float)fm_rng_uniform(&r);
        h[i] = (float)((1 - t[i]) * fm_rng_uniform(&r));
        for (int o = 0; o < 2; o++) x[2 * i + o] = (float)fm_rng_normal(&r), v[2 * i + o] = (float)(a[o] + b[o] * t[i]);
    }
    fm_tape *tp = fm_tape_new(0);
    int s2[2] = {M, 2};
    double plain = NAN;
    fm_tensor *l = fm__meanflow_loss(tp, f, P, times2(tp, t, h, M), fm_tensor_copy(tp, x, 2, s2),
                                     fm_tensor_copy(tp, v, 2, s2), NULL, NULL, 0.0, 1.0, 1.0 / M, &plain);
    t_check(l && plain / M < 1e-11, "MeanFlow target on v = a + b t: equals the exact average velocity a + b t + b h / 2 "
            "(mean squared error %.2e over %d rows)", plain / M, M);
    fm_tape_free(tp);
    fm_flow_free(f);
}

/* ---- trained on N(0, I) -> N(0, s^2 I) (independent pairs, the straight
 * path): the marginal flow is x(t) = s_t x(0), s_t^2 = (1 - t)^2 + t^2 s^2, so
 * the exact average velocity is u(x, t, h) = (s_{t+h} / s_t - 1) x / h. The
 * squared error's minimiser is the conditional mean of the target, which the
 * MeanFlow identity makes that u: both targets (JVP and split) must learn it.
 * The bound, 0.25 relative RMS, is what a short noisy regression reaches
 * (the same runs' velocity u(x, 0.5, 0) is 5 to 7% off); without the JVP
 * term u(x, 0, 1) would learn the velocity at t = 0, E[x1 - x0 | x0] = -x,
 * 200% off. */
static void gaussian_closed_form(void)
{
    const double S = 2.0;
    for (int split = 0; split < 2; split++) {
        fm_train_config c = fm_train_config_for((fm_method)fm_method_from_name("meanflow"));
        c.flow.data = "gaussian:dim=2,scale=2";
        c.standardize = 0;
        c.iters = 2000;
        c.seed = 3;
        c.meanflow.ratio = 0.5;
        c.meanflow.split = split;
        c.meanflow.weight_p = 0; /* plain squared error, whose minimiser is the target's conditional mean */
        c.tdist.kind = FM_TDIST_UNIFORM; /* intervals reaching t = 0 and 1 as often as any */
        c.optim.lr = 3e-3;
        c.batch = 512;
        c.sched.kind = FM_SCHED_COSINE; /* to 0: the noisy regression settles */
        c.sched.total = c.iters;
        c.ema_decay = 0.99;
        fm_trainer *tr = t_trained(&c, (int)c.iters);
        fm_model *M = tr ? fm_trainer_model(tr) : NULL;
        fm_flow *f = M ? fm_model_flow(M) : NULL;
        double err[3] = {INFINITY, INFINITY, INFINITY};
        fm_ema *ema = tr ? fm_trainer_ema(tr) : NULL;
        if (f && ema) /* evaluate the EMA weights */
            memcpy(fm_params_data(fm_flow_params(f)), fm_ema_data(ema), fm_params_size(fm_flow_params(f)) * sizeof(float));
        if (f) { /* points drawn from the marginal at t: x = s_t z */
            enum { N = 2000 };
            float *x = malloc(sizeof(float) * 2 * N), *u = malloc(sizeof(float) * 2 * N);
            fm_rng r;
            fm_rng_seed(&r, 9, FM_STREAM_NOISE);
            const double tt[3] = {0, 0.5, 0.5}, hh[3] = {1, 0.5, 0};
            for (int q = 0; q < 3 && x && u; q++) {
                double st0 = sqrt((1 - tt[q]) * (1 - tt[q]) + tt[q] * tt[q] * S * S);
                double te = tt[q] + hh[q], st1 = sqrt((1 - te) * (1 - te) + te * te * S * S);
                /* h = 0: the velocity s_t' / s_t x = (t S^2 - (1 - t)) / s_t^2 x */
                double g = hh[q] > 0 ? (st1 / st0 - 1) / hh[q] : (tt[q] * S * S - (1 - tt[q])) / (st0 * st0);
                double num = 0, den = 0;
                for (int i = 0; i < 2 * N; i++) x[i] = (float)(st0 * fm_rng_normal(&r));
                if (fm_flow_average_velocity(f, tt[q], hh[q], x, u, N)) break;
                for (int i = 0; i < 2 * N; i++) num += (u[i] - g * x[i]) * (u[i] - g * x[i]), den += g * x[i] * g * x[i];
                err[q] = sqrt(num / den);
            }
            free(x), free(u);
        }
        t_check(err[0] < 0.25 && err[1] < 0.25 && err[2] < 0.25, "meanflow (%s target) on N(0, I) -> N(0, 4 I): u(x, 0, 1) "
                "against the exact x, relative RMS error %.3f; u(x, 0.5, 0.5) against 1.578 x, %.3f; the velocity "
                "u(x, 0.5, 0) against 1.2 x, %.3f (2000 points of each marginal)", split ? "split" : "JVP", err[0],
                err[1], err[2]);
        fm_trainer_free(tr);
    }
}

void test_meanflow(void)
{
    fm_st *st = t_fixture("meanflow.safetensors");
    if (st) {
        fixture_mlp(st);
        fixture_unet(st);
    }
    fm_st_free(st);
    jvp_fd();
    identity_exact();
    gaussian_closed_form();
}
