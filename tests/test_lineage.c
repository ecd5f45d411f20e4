/* test_lineage.c - the two likelihood models of the tutorials' lineage and the
 * engine's forward-mode tangents under them: fm_act_grad and fm_mlp_jvp
 * against finite differences and torch's jvp; the CNF's loss and gradient
 * through 8 RK4 steps against PyTorch (double backward) and, for a linear
 * field, against the closed form; the normalizing flow's z, log-determinant,
 * loss and gradient against PyTorch, its inverse, its log-determinant against
 * a finite-difference Jacobian, and a trained one's density mass.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fm_act_grad: f' against a central difference of f, and its backward (f'') against one of f' */
static void act_grad(void)
{
    fm_tape *tp = fm_tape_new(0);
    for (int a = 1; a < FM_ACT_COUNT; a++) {
        enum { N = 64 };
        float xs[N];
        for (int i = 0; i < N; i++) xs[i] = -3.0f + 6.0f * (i + 0.37f) / N; /* no sample at relu's kink */
        double e1 = 0, e2 = 0, h = 1e-3;
        fm_tape_reset(tp);
        int sh[1] = {N};
        fm_tensor *x = fm_tensor_copy(tp, xs, 1, sh);
        x->requires_grad = 1;
        fm_tensor *g = fm_act_grad(tp, x, (fm_act)a);
        fm_status s = g ? fm_backward(tp, fm_sum(tp, g), NULL) : FM_ERR_ARG;
        for (int i = 0; !s && i < N; i++) {
            double v[4];
            for (int k = 0; k < 4; k++) { /* f(x +- h) and f'(x +- h) through the ops, in float */
                fm_tape *q = fm_tape_new(0);
                float xv = (float)(xs[i] + (k % 2 ? -h : h));
                int one[1] = {1};
                fm_tensor *xi = fm_tensor_copy(q, &xv, 1, one);
                fm_tensor *y = k < 2 ? fm_activation(q, xi, (fm_act)a) : fm_act_grad(q, xi, (fm_act)a);
                v[k] = y ? y->data[0] : NAN;
                fm_tape_free(q);
            }
            double fd1 = (v[0] - v[1]) / (2 * h), fd2 = (v[2] - v[3]) / (2 * h);
            e1 = fmax(e1, fabs(fd1 - g->data[i]) / fmax(1, fabs(fd1)));
            e2 = fmax(e2, fabs(fd2 - x->grad[i]) / fmax(1, fabs(fd2)));
        }
        t_family_max("act_grad", fmax(e1, e2));
        t_check(!s && e1 < 2e-3 && e2 < 2e-3, "act_grad %s: f' and f'' against central differences, err %.2e %.2e %s",
                fm_act_name((fm_act)a), e1, e2, T_ERR(s));
    }
    fm_tape_free(tp);
}

/* Every parameter of P from the fixture's tensor of the same name (a missing one fails its case). */
static void fixture_weights(const fm_st *st, fm_params *P)
{
    for (int i = 0; i < fm_params_count(P); i++) {
        size_t n;
        float *w = t_read(st, fm_params_name(P, i), &n);
        fm_tensor *T = fm_params_tensor(P, i);
        if (w && n == T->size) memcpy(T->data, w, n * sizeof(float));
        free(w);
    }
}

/* The fixture's velocity MLP (concat(t, x) -> 16 -> 16 -> 2, ELU) in a flow, weights from st. */
static fm_flow *fixture_flow(const fm_st *st)
{
    fm_flow_config fc;
    memset(&fc, 0, sizeof fc);
    fc.dim = 2;
    fc.net = fm_mlp_config_default(2);
    fc.net.nhidden = 2;
    fc.net.width[0] = fc.net.width[1] = 16;
    fc.path = fm_path_default(FM_PATH_OT);
    fc.data = "moons";
    fc.source = "gaussian";
    fm_flow *f = fm_flow_new(&fc);
    if (f) fixture_weights(st, fm_flow_params(f));
    return f;
}

/* ---- fm_mlp_jvp: against torch's jvp (along x and along t), central differences, and stacked tangents */
static void jvp(const fm_st *st, fm_flow *f)
{
    size_t n;
    float *t = t_read(st, "jvp.t", &n), *v = t_read(st, "jvp.v", &n), *x = t_read(st, "x", &n);
    float *out = t_read(st, "jvp.out", &n), *dx = t_read(st, "jvp.dx", &n), *dt = t_read(st, "jvp.dt", &n);
    if (!t || !v || !x || !out || !dx || !dt) goto done;
    fm_tape *tp = fm_tape_new(0);
    /* fm_mlp_jvp on the flow's network: build it over the same parameters */
    fm_params *P = fm_flow_params(f);
    fm_mlp_config mc = fm_flow_get_config(f)->net;
    fm_params *Q = fm_params_new();
    fm_mlp *m = fm_mlp_new(Q, "net", &mc);
    memcpy(fm_params_data(Q), fm_params_data(P), fm_params_size(P) * sizeof(float));
    int s2[2] = {12, 2}, s1[2] = {12, 1};
    fm_tensor *T = fm_tensor_copy(tp, t, 2, s1), *X = fm_tensor_copy(tp, x, 2, s2), *V = fm_tensor_copy(tp, v, 2, s2);
    fm_tensor *ones = fm_tensor_new(tp, 2, s1), *zeros = fm_tensor_new(tp, 2, s2), *y = NULL, *yt = NULL;
    for (int i = 0; i < 12; i++) ones->data[i] = 1;
    fm_tensor *jx = fm_mlp_jvp(tp, m, T, X, NULL, V, &y);
    fm_tensor *jt = fm_mlp_jvp(tp, m, T, X, ones, zeros, &yt);
    int ok = jx && jt;
    t_check(ok && t_relerr(y->data, out, 24) < 1e-5 && t_relerr(jx->data, dx, 24) < 1e-5 &&
                t_relerr(jt->data, dt, 24) < 1e-5,
            "mlp_jvp against torch's jvp: output %.2e, along x %.2e, along t %.2e", ok ? t_relerr(y->data, out, 24) : 1.0,
            ok ? t_relerr(jx->data, dx, 24) : 1.0, ok ? t_relerr(jt->data, dt, 24) : 1.0);
    t_family_max("jvp", ok ? fmax(t_relerr(jx->data, dx, 24), t_relerr(jt->data, dt, 24)) : 1.0);
    /* central differences of the network along v */
    double h = 1e-2, efd = 0;
    float xp[24], xm[24];
    for (int i = 0; i < 24; i++) xp[i] = (float)(x[i] + h * v[i]), xm[i] = (float)(x[i] - h * v[i]);
    fm_tensor *yp = fm_mlp_forward(tp, m, T, fm_tensor_copy(tp, xp, 2, s2));
    fm_tensor *ym = fm_mlp_forward(tp, m, T, fm_tensor_copy(tp, xm, 2, s2));
    float fd[24];
    for (int i = 0; yp && ym && i < 24; i++) fd[i] = (float)((yp->data[i] - ym->data[i]) / (2 * h));
    efd = (yp && ym && jx) ? t_relerr(jx->data, fd, 24) : 1.0;
    t_check(efd < 1e-3, "mlp_jvp against central differences (h = 1e-2): %.2e", efd);
    /* three tangents stacked give the three products */
    int s6[2] = {36, 2};
    fm_tensor *V3 = fm_tensor_new(tp, 2, s6);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 24; i++) V3->data[k * 24 + i] = v[i] * (float)(k - 1.5) + (float)(0.1 * k);
    fm_tensor *j3 = fm_mlp_jvp(tp, m, T, X, NULL, V3, NULL);
    double e3 = 0;
    for (int k = 0; k < 3 && j3; k++) {
        fm_tensor *jk = fm_mlp_jvp(tp, m, T, X, NULL, fm_tensor_copy(tp, V3->data + k * 24, 2, s2), NULL);
        e3 = fmax(e3, jk ? t_relerr(j3->data + k * 24, jk->data, 24) : 1.0);
    }
    t_check(j3 && e3 == 0, "mlp_jvp: three stacked tangents give the three products exactly (err %.2e)", e3);
    /* the product's gradient with respect to the weights, against central
     * differences (a tanh network: ELU's f'' jumps at 0, which a difference of
     * weights straddles) */
    fm_mlp_free(m);
    fm_params_free(Q);
    Q = fm_params_new();
    mc.act = FM_ACT_TANH;
    m = fm_mlp_new(Q, "net", &mc);
    fm_rng ri;
    fm_rng_seed(&ri, 3, FM_STREAM_NOISE);
    fm_mlp_init(m, &ri);
    fm_tape_reset(tp);
    fm_params_requires_grad(Q, 1);
    fm_params_zero_grad(Q);
    X = fm_tensor_copy(tp, x, 2, s2), V = fm_tensor_copy(tp, v, 2, s2), T = fm_tensor_copy(tp, t, 2, s1);
    fm_tensor *j = fm_mlp_jvp(tp, m, T, X, NULL, V, NULL);
    fm_tensor *w = fm_tensor_copy(tp, out, 2, s2); /* any fixed weights */
    fm_status s = j ? fm_backward(tp, fm_sum(tp, fm_mul(tp, w, j)), NULL) : FM_ERR_ARG;
    double eg = 0;
    float *pd = fm_params_data(Q);
    for (size_t k = 0; !s && k < fm_params_size(Q); k += 7) {
        double val[2], hp = 3e-3, keep = pd[k];
        for (int sgn = 0; sgn < 2; sgn++) {
            pd[k] = (float)(keep + (sgn ? -hp : hp));
            fm_tape *q = fm_tape_new(0);
            fm_tensor *jj = fm_mlp_jvp(q, m, fm_tensor_copy(q, t, 2, s1), fm_tensor_copy(q, x, 2, s2), NULL,
                                       fm_tensor_copy(q, v, 2, s2), NULL);
            double acc = 0;
            for (int i = 0; jj && i < 24; i++) acc += (double)out[i] * jj->data[i];
            val[sgn] = acc;
            fm_tape_free(q);
        }
        pd[k] = (float)keep;
        double fdg = (val[0] - val[1]) / (2 * hp);
        eg = fmax(eg, fabs(fdg - fm_params_grad(Q)[k]) / fmax(1, fabs(fdg)));
    }
    t_family_max("jvp weights", eg);
    t_check(!s && eg < 5e-3, "mlp_jvp is differentiable in the weights: gradient against central differences, err %.2e %s",
            eg, T_ERR(s));
    fm_mlp_free(m);
    fm_params_free(Q);
    fm_tape_free(tp);
done:
    free(t), free(v), free(x), free(out), free(dx), free(dt);
}

/* ---- the CNF's loss and gradient through 8 RK4 steps, exact and Hutchinson, against PyTorch */
static void cnf_fixture(const fm_st *st, fm_flow *f)
{
    size_t n;
    float *x = t_read(st, "x", &n), *probe = t_read(st, "probe", &n);
    fm_tape *tp = fm_tape_new(0);
    fm_params *P = fm_flow_params(f);
    for (int hutch = 0; x && probe && hutch < 2; hutch++) {
        const char *tag = hutch ? "hutch" : "exact";
        char name[128];
        snprintf(name, sizeof name, "%s.loss", tag);
        float *ref = t_read(st, name, &n);
        fm_tape_reset(tp);
        fm_params_requires_grad(P, 1);
        fm_params_zero_grad(P);
        int s2[2] = {12, 2};
        fm_tensor *X = fm_tensor_copy(tp, x, 2, s2), *E = hutch ? fm_tensor_copy(tp, probe, 2, s2) : NULL;
        fm_tensor *l = fm_cnf_loss(tp, f, X, FM_SOLVER_RK4, 8, E);
        fm_status s = l ? fm_backward(tp, l, NULL) : fm_tape_status(tp);
        double el = (!s && ref) ? fabs(l->data[0] - ref[0]) / fabs(ref[0]) : 1.0, eg = 0;
        for (int i = 0; !s && i < fm_params_count(P); i++) {
            snprintf(name, sizeof name, "%s.grad.%s", tag, fm_params_name(P, i));
            float *g = t_read(st, name, &n);
            fm_tensor *T = fm_params_tensor(P, i);
            eg = fmax(eg, g ? t_relerr(fm_params_grad(P) + (T->data - fm_params_data(P)), g, n) : 1.0);
            free(g);
        }
        t_family_max("cnf", fmax(el, eg));
        t_check(!s && el < 1e-5 && eg < 1e-4,
                "cnf loss through 8 rk4 steps (%s divergence) against PyTorch: loss %.2e, gradient %.2e (relative) %s",
                tag, el, eg, T_ERR(s));
        free(ref);
    }
    fm_tape_free(tp);
    free(x), free(probe);
}

/* ---- a linear field v = diag(a) x: x(0) = g x(1) with g = R(-a/N)^N (the
 * solver's amplification: RK4's Taylor polynomial of degree 4, a 3-stage
 * third-order method's of degree 3), A(0) = -(a1 + a2), so NLL = mean
 * |g x|^2 / 2 + log 2 pi + a1 + a2 and d NLL / d a_j = mean(x_j^2) g_j dg_j/da_j + 1. */
static void cnf_linear(fm_solver_kind kind)
{
    fm_flow_config fc;
    memset(&fc, 0, sizeof fc);
    fc.dim = 2;
    fc.net = fm_mlp_config_default(2);
    fc.net.nhidden = 0;
    fc.path = fm_path_default(FM_PATH_OT);
    fc.data = "moons";
    fc.source = "gaussian";
    fm_flow *f = fm_flow_new(&fc);
    fm_params *P = fm_flow_params(f);
    double a[2] = {0.7, -0.4};
    float *W = fm_params_tensor(P, fm_params_find(P, "net.0.weight"))->data; /* (2, 3): columns t, x0, x1 */
    memset(W, 0, 6 * sizeof(float));
    W[1] = (float)a[0], W[5] = (float)a[1];
    enum { B = 64, N = 8 };
    float x[2 * B];
    fm_rng r;
    fm_rng_seed(&r, 5, FM_STREAM_DATA);
    fm_rng_normal_fill(&r, x, 2 * B, 0.0f, 1.5f);
    fm_tape *tp = fm_tape_new(0);
    fm_params_requires_grad(P, 1);
    fm_params_zero_grad(P);
    int s2[2] = {B, 2};
    fm_tensor *l = fm_cnf_loss(tp, f, fm_tensor_copy(tp, x, 2, s2), kind, N, NULL);
    fm_status s = l ? fm_backward(tp, l, NULL) : fm_tape_status(tp);
    double loss = log(2 * M_PI) + a[0] + a[1], grad[2];
    int deg = kind == FM_SOLVER_RK4 ? 4 : 3;
    for (int j = 0; j < 2; j++) {
        double z = -a[j] / N, R = 0, dR = 0, term = 1; /* R = sum_k z^k / k!, dR its derivative in z */
        for (int k = 0; k <= deg; k++) {
            R += term;
            if (k < deg) dR += term;
            term *= z / (k + 1);
        }
        double g = pow(R, N), dg = -pow(R, N - 1) * dR, mx2 = 0;
        for (int i = 0; i < B; i++) mx2 += (double)x[2 * i + j] * x[2 * i + j] / B;
        loss += 0.5 * g * g * mx2;
        grad[j] = mx2 * g * dg + 1;
    }
    const float *G = fm_params_grad(P) + (W - fm_params_data(P));
    double el = s ? 1 : fabs(l->data[0] - loss) / fabs(loss);
    double eg = s ? 1 : fmax(fabs(G[1] - grad[0]) / fabs(grad[0]), fabs(G[5] - grad[1]) / fabs(grad[1]));
    t_check(!s && el < 1e-5 && eg < 1e-4, "cnf loss of a linear field by %s: loss %.6f (closed form %.6f, err %.2e), "
            "gradient err %.2e %s", fm_solver_name(kind), s ? NAN : l->data[0], loss, el, eg, T_ERR(s));
    fm_tape_free(tp);
    fm_flow_free(f);
}

/* ---- the normalizing flow */

/* The fixture's flow: 3 dimensions, 4 layers with ActNorm, scale 2, networks 2 x 8 ELU. */
static fm_nf *fixture_nf(const fm_st *st)
{
    fm_nf_config c = fm_nf_config_default(3);
    c.layers = 4;
    c.nhidden = 2;
    c.width[0] = c.width[1] = 8;
    fm_nf *f = fm_nf_new(&c);
    if (f) fixture_weights(st, fm_nf_params(f));
    return f;
}

static double det3(const double J[3][3])
{
    return J[0][0] * (J[1][1] * J[2][2] - J[1][2] * J[2][1]) - J[0][1] * (J[1][0] * J[2][2] - J[1][2] * J[2][0]) +
           J[0][2] * (J[1][0] * J[2][1] - J[1][1] * J[2][0]);
}

static void nf_checks(const fm_st *st)
{
    fm_nf *f = fixture_nf(st);
    size_t n;
    float *x = t_read(st, "x", &n), *zr = t_read(st, "z", &n), *ldr = t_read(st, "logdet", &n), *lr = t_read(st, "loss", &n);
    if (!f || !x || !zr || !ldr || !lr) goto done;
    enum { N = 10, D = 3 };
    /* z and log|det| per point against PyTorch */
    float z[N * D], back[N * D];
    double lp[N], eld = 0;
    fm_status s = fm_nf_transform(f, x, N, z, lp);
    for (int i = 0; !s && i < N; i++) {
        double sq = 0;
        for (int j = 0; j < D; j++) sq += (double)z[i * D + j] * z[i * D + j];
        double ld = lp[i] + 0.5 * sq + 0.5 * D * log(2 * M_PI);
        eld = fmax(eld, fabs(ld - ldr[i]) / fmax(1, fabs(ldr[i])));
    }
    double ez = s ? 1 : t_relerr(z, zr, N * D);
    t_family_max("nf", fmax(ez, eld));
    t_check(!s && ez < 1e-5 && eld < 1e-5, "nf: z and log|det| per point against PyTorch: %.2e, %.2e %s", ez, eld, T_ERR(s));
    /* the inverse undoes the forward */
    s = fm_nf_inverse(f, z, N, back);
    double einv = 0;
    for (int i = 0; !s && i < N * D; i++) einv = fmax(einv, fabs(back[i] - x[i]));
    t_check(!s && einv < 1e-5, "nf: inverse(forward(x)) = x, largest difference %.2e %s", einv, T_ERR(s));
    /* log|det| against the determinant of a central-difference Jacobian */
    double ejac = 0, h = 1e-3;
    for (int i = 0; !s && i < N; i++) {
        double J[3][3];
        for (int j = 0; j < D; j++) {
            float xp[D], xm[D], zp[D], zm[D];
            for (int k = 0; k < D; k++) xp[k] = xm[k] = x[i * D + k];
            xp[j] += (float)h, xm[j] -= (float)h;
            double dummy;
            s = fm_nf_transform(f, xp, 1, zp, &dummy);
            if (!s) s = fm_nf_transform(f, xm, 1, zm, &dummy);
            double hh = ((double)xp[j] - xm[j]) / 2;
            for (int k = 0; k < D; k++) J[k][j] = (zp[k] - zm[k]) / (2 * hh);
        }
        double sq = 0;
        for (int j = 0; j < D; j++) sq += (double)z[i * D + j] * z[i * D + j];
        double ld = lp[i] + 0.5 * sq + 0.5 * D * log(2 * M_PI);
        ejac = fmax(ejac, fabs(log(fabs(det3(J))) - ld));
    }
    t_check(!s && ejac < 2e-3, "nf: log|det| against a central-difference Jacobian's, largest difference %.2e %s", ejac,
            T_ERR(s));
    /* the loss and its gradient against PyTorch */
    fm_tape *tp = fm_tape_new(0);
    fm_params *P = fm_nf_params(f);
    fm_params_requires_grad(P, 1);
    fm_params_zero_grad(P);
    int s2[2] = {N, D};
    fm_tensor *l = fm_nf_loss(tp, f, fm_tensor_copy(tp, x, 2, s2));
    s = l ? fm_backward(tp, l, NULL) : fm_tape_status(tp);
    double el = s ? 1 : fabs(l->data[0] - lr[0]) / fabs(lr[0]), eg = 0;
    for (int i = 0; !s && i < fm_params_count(P); i++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", fm_params_name(P, i));
        float *g = t_read(st, name, &n);
        fm_tensor *T = fm_params_tensor(P, i);
        eg = fmax(eg, g ? t_relerr(fm_params_grad(P) + (T->data - fm_params_data(P)), g, n) : 1.0);
        free(g);
    }
    t_family_max("nf", fmax(el, eg));
    t_check(!s && el < 1e-5 && eg < 1e-4, "nf: one step's loss and gradient against PyTorch: %.2e, %.2e %s", el, eg,
            T_ERR(s));
    fm_tape_free(tp);
done:
    fm_nf_free(f);
    free(x), free(zr), free(ldr), free(lr);
}

/* A flow trained briefly on moons: its density integrates to 1 over a grid
 * that holds the data, its samples come back through the inverse. */
static void nf_density(void)
{
    fm_train_config c = fm_train_config_for((fm_method)fm_method_from_name("nf"));
    c.iters = 300;
    c.nf.layers = 6;
    fm_set_threads(1);
    fm_trainer *tr = fm_trainer_new(&c);
    fm_status s = tr ? FM_OK : fm_last_status();
    double loss = NAN;
    for (int i = 0; !s && i < 300; i++) s = fm_trainer_step(tr, &loss);
    fm_model *M = tr ? fm_trainer_model(tr) : NULL;
    enum { G = 240 };
    double lo = -4, hi = 4, h = (hi - lo) / G, mass = 0;
    float *pts = malloc((size_t)G * G * 2 * sizeof(float));
    double *lp = malloc((size_t)G * G * sizeof(double));
    for (int i = 0; pts && i < G; i++)
        for (int j = 0; j < G; j++)
            pts[2 * (i * G + j)] = (float)(lo + (j + 0.5) * h), pts[2 * (i * G + j) + 1] = (float)(lo + (i + 0.5) * h);
    if (!s && pts && lp) s = fm_model_log_prob(M, pts, G * G, lp);
    for (int i = 0; !s && i < G * G; i++) mass += exp(lp[i]) * h * h;
    t_check(!s && fabs(mass - 1) < 0.01, "nf on moons (300 steps, loss %.3f): the density integrates to %.4f over "
            "[-4, 4]^2 (%d x %d cells) %s", loss, mass, G, G, T_ERR(s));
    free(pts), free(lp);
    fm_trainer_free(tr);
}

void test_lineage(void)
{
    act_grad();
    fm_st *st = t_fixture("cnf.safetensors");
    fm_flow *f = st ? fixture_flow(st) : NULL;
    if (f) {
        jvp(st, f);
        cnf_fixture(st, f);
    }
    fm_flow_free(f);
    fm_st_free(st);
    cnf_linear(FM_SOLVER_RK4);
    cnf_linear(FM_SOLVER_HEUN3);
    st = t_fixture("nf.safetensors");
    if (st) nf_checks(st);
    fm_st_free(st);
    nf_density();
}
