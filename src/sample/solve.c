/* solve.c - stateless ODE solvers over a batched velocity callback.
 *
 * dy/dt = f(t, y) for a whole batch at once, from grid[0] to grid[ngrid-1]
 * (increasing or decreasing). Fixed-step methods take one step per grid
 * interval; Dormand-Prince 5(4) adapts its steps between grid points and lands
 * on each exactly. The core works on a double state, so an augmented system
 * (a log-density beside the points) accumulates in float64; fm_solve wraps it
 * for a float32 state and a float32 field. Not here: the model (the callback)
 * and where the initial points come from.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const solver_names[FM_SOLVER_COUNT] = {"euler", "midpoint", "heun", "rk4", "dopri5", "heun3"};

const char *fm_solver_name(fm_solver_kind k) { return fm__name_of(solver_names, FM_SOLVER_COUNT, k); }

int fm_solver_from_name(const char *name) { return fm__name_index(solver_names, FM_SOLVER_COUNT, name); }

fm_solver_config fm_solver_config_default(fm_solver_kind k)
{
    fm_solver_config c;
    memset(&c, 0, sizeof c);
    c.kind = k;
    c.rtol = 1e-5;
    c.atol = 1e-5;
    c.max_steps = 10000;
    c.noise = 1.0;
    c.snr = 0.16;
    c.corrector_steps = 1;
    return c;
}

void fm_time_grid_uniform(double *grid, int steps, double t0, double t1)
{
    for (int i = 0; i <= steps; i++) grid[i] = i == steps ? t1 : t0 + (t1 - t0) * i / steps;
}

typedef struct {
    fm__field_d f;
    void *ctx;
    fm_solve_stats *st;
} field;

static fm_status eval(field *F, double t, const double *x, double *v, size_t n)
{
    F->st->nfe++;
    return F->f(F->ctx, t, x, v, n);
}

/* out = x + h sum_k w_k K_k over nk stages. */
static void combine(double *out, const double *x, double h, int nk, const double *w, double *const *K, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int k = 0; k < nk; k++)
            if (w[k] != 0.0) s += w[k] * K[k][i];
        out[i] = x[i] + h * s;
    }
}

static fm_status fixed_step(fm_solver_kind kind, field *F, double t, double h, double *x, double **K, double *tmp,
                            size_t n)
{
    fm_status s;
    switch (kind) {
    case FM_SOLVER_EULER: /* x += h f(t, x) */
        if ((s = eval(F, t, x, K[0], n))) return s;
        for (size_t i = 0; i < n; i++) x[i] = x[i] + h * K[0][i];
        return FM_OK;
    case FM_SOLVER_MIDPOINT: /* k1 = f(t, x); k2 = f(t + h/2, x + h/2 k1); x += h k2 */
        if ((s = eval(F, t, x, K[0], n))) return s;
        for (size_t i = 0; i < n; i++) tmp[i] = x[i] + 0.5 * h * K[0][i];
        if ((s = eval(F, t + 0.5 * h, tmp, K[1], n))) return s;
        for (size_t i = 0; i < n; i++) x[i] = x[i] + h * K[1][i];
        return FM_OK;
    case FM_SOLVER_HEUN: /* k1 = f(t, x); k2 = f(t + h, x + h k1); x += h/2 (k1 + k2) */
        if ((s = eval(F, t, x, K[0], n))) return s;
        for (size_t i = 0; i < n; i++) tmp[i] = x[i] + h * K[0][i];
        if ((s = eval(F, t + h, tmp, K[1], n))) return s;
        for (size_t i = 0; i < n; i++) x[i] = x[i] + 0.5 * h * (K[0][i] + K[1][i]);
        return FM_OK;
    case FM_SOLVER_RK4: {
        static const double c[4] = {0, 0.5, 0.5, 1};
        for (int k = 0; k < 4; k++) {
            const double *in = x;
            if (k) {
                for (size_t i = 0; i < n; i++) tmp[i] = x[i] + c[k] * h * K[k - 1][i];
                in = tmp;
            }
            if ((s = eval(F, t + c[k] * h, in, K[k], n))) return s;
        }
        static const double w[4] = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6};
        combine(x, x, h, 4, w, K, n);
        return FM_OK;
    }
    case FM_SOLVER_HEUN3: { /* Heun's third-order method: c = (0, 1/3, 2/3), a21 = 1/3, a32 = 2/3, b = (1/4, 0, 3/4) */
        if ((s = eval(F, t, x, K[0], n))) return s;
        for (size_t i = 0; i < n; i++) tmp[i] = x[i] + h / 3 * K[0][i];
        if ((s = eval(F, t + h / 3, tmp, K[1], n))) return s;
        for (size_t i = 0; i < n; i++) tmp[i] = x[i] + 2 * h / 3 * K[1][i];
        if ((s = eval(F, t + 2 * h / 3, tmp, K[2], n))) return s;
        for (size_t i = 0; i < n; i++) x[i] = x[i] + h * (0.25 * K[0][i] + 0.75 * K[2][i]);
        return FM_OK;
    }
    default: FM_ASSERT(0 && "not a fixed-step solver");
    }
    return FM_OK;
}

/* ---- Dormand-Prince 5(4) */

static const double DP_C[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
static const double DP_A[7][6] = {
    {0},
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
};
/* 5th-order weights minus the embedded 4th-order ones */
static const double DP_E[7] = {35.0 / 384 - 5179.0 / 57600, 0, 500.0 / 1113 - 7571.0 / 16695,
                               125.0 / 192 - 393.0 / 640, -2187.0 / 6784 + 92097.0 / 339200,
                               11.0 / 84 - 187.0 / 2100, -1.0 / 40};

/* RMS of v / (atol + rtol |x|) */
static double wnorm(const double *v, const double *x, const double *x2, double rtol, double atol, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double m = fabs(x[i]);
        if (x2 && fabs(x2[i]) > m) m = fabs(x2[i]);
        double e = v[i] / (atol + rtol * m);
        s += e * e;
    }
    return n ? sqrt(s / (double)n) : 0.0;
}

/* Hairer, Norsett and Wanner's starting step (Solving ODEs I, II.4). */
static fm_status initial_step(field *F, const fm_solver_config *c, double t, double dir, const double *x, double *f0,
                              double *x1, double *f1, size_t n, double span, double *h)
{
    double d0 = wnorm(x, x, NULL, c->rtol, c->atol, n), d1 = wnorm(f0, x, NULL, c->rtol, c->atol, n);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    if (h0 > span) h0 = span;
    for (size_t i = 0; i < n; i++) x1[i] = x[i] + dir * h0 * f0[i];
    fm_status s = eval(F, t + dir * h0, x1, f1, n);
    if (s) return s;
    for (size_t i = 0; i < n; i++) x1[i] = f1[i] - f0[i];
    double d2 = wnorm(x1, x, NULL, c->rtol, c->atol, n) / h0;
    double m = d1 > d2 ? d1 : d2;
    double h1 = m <= 1e-15 ? fmax(1e-6, h0 * 1e-3) : pow(0.01 / m, 1.0 / 5);
    *h = fmin(100 * h0, h1);
    if (*h > span) *h = span;
    return FM_OK;
}

static fm_status dopri5(const fm_solver_config *c, field *F, const double *grid, int ngrid, double *x, size_t n,
                        fm__observe_d obs, void *octx, double *buf)
{
    double *K[7], *y = buf + 7 * n, *err = buf + 8 * n;
    for (int k = 0; k < 7; k++) K[k] = buf + (size_t)k * n;
    double t = grid[0], dir = grid[ngrid - 1] >= grid[0] ? 1.0 : -1.0;
    fm_status s = eval(F, t, x, K[0], n);
    if (s) return s;
    double h = 0;
    s = initial_step(F, c, t, dir, x, K[0], y, err, n, fabs(grid[ngrid - 1] - grid[0]), &h);
    if (s) return s;
    long steps = 0;
    for (int g = 1; g < ngrid; g++) {
        double tg = grid[g];
        while (dir * (tg - t) > 0) {
            if (steps >= c->max_steps)
                return fm__fail(FM_ERR_NUMERIC,
                                "dopri5 gave up after %ld steps at t = %.6g (raise the step limit or loosen rtol/atol)",
                                steps, t);
            double hs = h, rest = fabs(tg - t);
            if (rest <= 1e-14 * fmax(1.0, fabs(tg))) { /* nothing left to integrate */
                t = tg;
                break;
            }
            int last = hs >= rest * (1 - 1e-12);
            if (last) hs = rest;
            if (hs < 1e-14 * fmax(1.0, fabs(t)))
                return fm__fail(FM_ERR_NUMERIC, "dopri5 step size underflow at t = %.6g: the field is too stiff or not finite", t);
            double hd = dir * hs;
            for (int k = 1; k < 7; k++) {
                combine(y, x, hd, k, DP_A[k], K, n);
                if ((s = eval(F, t + DP_C[k] * hd, y, K[k], n))) return s;
            }
            /* y holds the 5th-order solution (stage 7 is evaluated there: FSAL) */
            for (size_t i = 0; i < n; i++) {
                double e = 0;
                for (int k = 0; k < 7; k++) e += DP_E[k] * K[k][i];
                err[i] = hd * e;
            }
            double en = wnorm(err, x, y, c->rtol, c->atol, n);
            steps++;
            F->st->steps++;
            if (!isfinite(en))
                return fm__fail(FM_ERR_NUMERIC, "dopri5: the state became NaN or infinite at t = %.6g", t);
            if (en <= 1.0) {
                t = last ? tg : t + hd;
                memcpy(x, y, n * sizeof(double));
                double *tk = K[0];
                K[0] = K[6];
                K[6] = tk; /* FSAL: f(t_new, y) */
                double fac = en == 0 ? 10.0 : fmin(10.0, fmax(0.2, 0.9 * pow(en, -0.2)));
                double hn = hs * fac;
                if (!last || hn > h) h = hn; /* a step shortened to hit the grid does not shrink h */
            } else {
                F->st->rejected++;
                h = hs * fmax(0.2, 0.9 * pow(en, -0.2));
            }
        }
        if (obs && (s = obs(octx, g, tg, x, n))) return s;
    }
    return FM_OK;
}

fm_status fm__solve_d(const fm_solver_config *c, fm__field_d f, void *fctx, const double *grid, int ngrid, double *x,
                      size_t n, fm__observe_d obs, void *octx, fm_solve_stats *stats)
{
    fm_solve_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!c || c->kind < 0 || c->kind >= FM_SOLVER_COUNT)
        return fm__fail(FM_ERR_ARG, "unknown ODE solver %d (euler, midpoint, heun, heun3, rk4, dopri5)", c ? (int)c->kind : -1);
    if (ngrid < 2) return fm__fail(FM_ERR_ARG, "the time grid needs at least 2 points, got %d", ngrid);
    double dir = grid[ngrid - 1] >= grid[0] ? 1.0 : -1.0;
    for (int i = 0; i < ngrid; i++) {
        if (!isfinite(grid[i])) return fm__fail(FM_ERR_ARG, "time grid point %d is not finite", i);
        if (i && !(dir * (grid[i] - grid[i - 1]) > 0))
            return fm__fail(FM_ERR_ARG, "time grid must be strictly monotonic (points %d and %d: %g, %g)", i - 1, i,
                            grid[i - 1], grid[i]);
    }
    if (c->kind == FM_SOLVER_DOPRI5 && !(c->rtol > 0 && c->atol > 0 && c->max_steps > 0))
        return fm__fail(FM_ERR_ARG, "dopri5 needs rtol > 0, atol > 0 and a positive step limit");
    size_t nbuf = c->kind == FM_SOLVER_DOPRI5 ? 9 : 5;
    size_t bytes;
    if (!fm__mul_ok(n, nbuf * sizeof(double), &bytes)) return fm__fail(FM_ERR_NOMEM, "solver state too large");
    double *buf = malloc(bytes ? bytes : 1);
    if (!buf) return fm__fail(FM_ERR_NOMEM, "out of memory for the solver's %zu stage buffers", nbuf);
    field F = {f, fctx, stats};
    fm_status s = obs ? obs(octx, 0, grid[0], x, n) : FM_OK;
    if (s == FM_OK) {
        if (c->kind == FM_SOLVER_DOPRI5) {
            s = dopri5(c, &F, grid, ngrid, x, n, obs, octx, buf);
        } else {
            double *K[4] = {buf, buf + n, buf + 2 * n, buf + 3 * n};
            for (int g = 1; g < ngrid && s == FM_OK; g++) {
                s = fixed_step(c->kind, &F, grid[g - 1], grid[g] - grid[g - 1], x, K, buf + 4 * n, n);
                stats->steps++;
                if (s == FM_OK && obs) s = obs(octx, g, grid[g], x, n);
            }
        }
    }
    free(buf);
    if (s == FM_OK)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(x[i]))
                return fm__fail(FM_ERR_NUMERIC, "the ODE state became NaN or infinite (element %zu): the model or the "
                                                "starting points are not finite, or the steps are too large", i);
    return s;
}

/* ---- the float32 face: a double state behind a float field and observer */

typedef struct {
    fm_field_fn f;
    void *fctx;
    fm_observe_fn obs;
    void *octx;
    float *x, *v; /* (n) conversion buffers */
} float_face;

static fm_status face_field(void *ctx, double t, const double *y, double *dy, size_t n)
{
    float_face *w = ctx;
    for (size_t i = 0; i < n; i++) w->x[i] = (float)y[i];
    fm_status s = w->f(w->fctx, t, w->x, w->v, n);
    for (size_t i = 0; i < n; i++) dy[i] = w->v[i];
    return s;
}

static fm_status face_observe(void *ctx, int k, double t, const double *y, size_t n)
{
    float_face *w = ctx;
    for (size_t i = 0; i < n; i++) w->x[i] = (float)y[i];
    return w->obs(w->octx, k, t, w->x, n);
}

fm_status fm_solve(const fm_solver_config *c, fm_field_fn f, void *fctx, const double *grid, int ngrid, float *x,
                   size_t n, fm_observe_fn obs, void *octx, fm_solve_stats *stats)
{
    size_t bytes;
    if (!fm__mul_ok(n, sizeof(double), &bytes)) return fm__fail(FM_ERR_NOMEM, "solver state too large");
    double *y = malloc(bytes ? bytes : 1);
    float_face w = {f, fctx, obs, octx, malloc(n ? n * sizeof(float) : 1), malloc(n ? n * sizeof(float) : 1)};
    fm_status s = FM_OK;
    if (!y || !w.x || !w.v) s = fm__fail(FM_ERR_NOMEM, "out of memory for the solver state");
    if (!s) {
        for (size_t i = 0; i < n; i++) y[i] = x[i];
        s = fm__solve_d(c, face_field, &w, grid, ngrid, y, n, obs ? face_observe : NULL, &w, stats);
        if (!s)
            for (size_t i = 0; i < n; i++) x[i] = (float)y[i];
    }
    free(y);
    free(w.x);
    free(w.v);
    return s;
}
