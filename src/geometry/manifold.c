/* manifold.c - the two manifolds Riemannian flow matching works on: the unit
 * sphere S^2 in R^3 and the flat torus [0, 2 pi)^2.
 *
 * Points are stored in the coordinates the data comes in: unit vectors
 * (x, y, z) on the sphere, angle pairs on the torus. Tangent vectors are
 * ambient vectors orthogonal to the point (sphere) or angle rates (torus).
 * The maps, with theta = arccos <x, y> on the sphere:
 *   sphere  exp_x(v) = cos|v| x + sin|v| v / |v|
 *           log_x(y) = theta (y - cos(theta) x) / |y - cos(theta) x|
 *           d(x, y)  = theta
 *   torus   exp_x(v) = wrap(x + v),  log_x(y) = wrap'(y - x),  d = |log_x(y)|
 * where wrap takes angles to [0, 2 pi) and wrap' to [-pi, pi). The geodesic
 * from x0 to x1 is x_t = exp_{x0}(t log_{x0}(x1)); its velocity, the target of
 * the flow's regression, is log_{x_t}(x1) / (1 - t), which on the sphere is
 * the derivative of the slerp (computed in closed form, so t near 1 is fine).
 * Arithmetic is in double; points and vectors are float. The solvers (euler,
 * midpoint, rk4) project every stage point and every step's result back onto
 * the manifold; beside the points they can carry a log-density, d lp / dt =
 * div v, with the same stage weights.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

#define TWO_PI (2 * M_PI)

static const char *const manifold_names[FM_MANIFOLD_COUNT] = {"auto", "sphere", "torus"};

const char *fm_manifold_name(fm_manifold m) { return fm__name_of(manifold_names, FM_MANIFOLD_COUNT, m); }
int fm_manifold_from_name(const char *name) { return fm__name_index(manifold_names, FM_MANIFOLD_COUNT, name); }

int fm_manifold_dim(fm_manifold m) { return m == FM_MANIFOLD_SPHERE ? 3 : m == FM_MANIFOLD_TORUS ? 2 : 0; }

static double wrap(double a) /* to [0, 2 pi) */
{
    a = fmod(a, TWO_PI);
    if (a < 0) a += TWO_PI;
    return a >= TWO_PI ? 0 : a;
}

static double wrap_pm(double a) /* to [-pi, pi) */
{
    a = wrap(a + M_PI) - M_PI;
    return a;
}

static double dot3(const double *a, const double *b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

static void load(const float *p, double *o, int d)
{
    for (int j = 0; j < d; j++) o[j] = p[j];
}

/* The angle between unit vectors, atan2(|a x b|, <a, b>): accurate near 0 and pi, where acos is not. */
static double angle(const double *a, const double *b)
{
    double c[3] = {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
    return atan2(sqrt(dot3(c, c)), dot3(a, b));
}

static void sphere_unit(double *x)
{
    double r = sqrt(dot3(x, x));
    if (r > 0)
        for (int j = 0; j < 3; j++) x[j] /= r;
    else x[0] = 1, x[1] = x[2] = 0; /* the origin has no direction: the north of the first axis */
}

void fm_manifold_project(fm_manifold m, float *x, int n)
{
    for (int i = 0; i < n; i++) {
        if (m == FM_MANIFOLD_SPHERE) {
            double p[3];
            load(x + 3 * (size_t)i, p, 3);
            sphere_unit(p);
            for (int j = 0; j < 3; j++) x[3 * (size_t)i + j] = (float)p[j];
        } else {
            for (int j = 0; j < 2; j++) x[2 * (size_t)i + j] = (float)wrap(x[2 * (size_t)i + j]);
        }
    }
}

void fm_manifold_tangent(fm_manifold m, const float *x, float *v, int n)
{
    if (m != FM_MANIFOLD_SPHERE) return; /* every rate of the flat torus is tangent */
    for (int i = 0; i < n; i++) {
        double p[3], u[3];
        load(x + 3 * (size_t)i, p, 3);
        load(v + 3 * (size_t)i, u, 3);
        double c = dot3(p, u);
        for (int j = 0; j < 3; j++) v[3 * (size_t)i + j] = (float)(u[j] - c * p[j]);
    }
}

/* One point: exp_x(v) into out (double). */
static void exp1(fm_manifold m, const double *x, const double *v, double *out)
{
    if (m == FM_MANIFOLD_SPHERE) {
        double c = dot3(x, v), t[3] = {v[0] - c * x[0], v[1] - c * x[1], v[2] - c * x[2]}, r = sqrt(dot3(t, t));
        double cr = cos(r), sr = r > 1e-12 ? sin(r) / r : 1.0;
        for (int j = 0; j < 3; j++) out[j] = cr * x[j] + sr * t[j];
        sphere_unit(out);
    } else {
        for (int j = 0; j < 2; j++) out[j] = wrap(x[j] + v[j]);
    }
}

/* log_x(y) into out, and the distance. */
static double log1(fm_manifold m, const double *x, const double *y, double *out)
{
    if (m == FM_MANIFOLD_SPHERE) {
        double a[3] = {x[0], x[1], x[2]}, b[3] = {y[0], y[1], y[2]};
        sphere_unit(a);
        sphere_unit(b);
        double th = angle(a, b), c = dot3(a, b), t[3] = {b[0] - c * a[0], b[1] - c * a[1], b[2] - c * a[2]};
        double r = sqrt(dot3(t, t)), s = r > 1e-300 ? th / r : 1.0; /* |t| = sin(theta) */
        for (int j = 0; j < 3; j++) out[j] = s * t[j];
        return th;
    }
    double d2 = 0;
    for (int j = 0; j < 2; j++) {
        out[j] = wrap_pm(y[j] - x[j]);
        d2 += out[j] * out[j];
    }
    return sqrt(d2);
}

/* exp_x(v) (log 0) or log_x(y) (log 1) of n rows, through double. */
static void map_rows(fm_manifold m, const float *x, const float *y, int n, float *out, int log)
{
    int d = fm_manifold_dim(m);
    for (int i = 0; i < n; i++) {
        double a[3], b[3], o[3];
        load(x + (size_t)i * d, a, d);
        load(y + (size_t)i * d, b, d);
        if (log) log1(m, a, b, o);
        else exp1(m, a, b, o);
        for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (float)o[j];
    }
}

void fm_manifold_exp(fm_manifold m, const float *x, const float *v, int n, float *out) { map_rows(m, x, v, n, out, 0); }
void fm_manifold_log(fm_manifold m, const float *x, const float *y, int n, float *out) { map_rows(m, x, y, n, out, 1); }

double fm_manifold_dist(fm_manifold m, const float *x, const float *y)
{
    double a[3], b[3], o[3];
    int d = fm_manifold_dim(m);
    load(x, a, d);
    load(y, b, d);
    return log1(m, a, b, o);
}

void fm_manifold_geodesic(fm_manifold m, const float *x0, const float *x1, const float *t, int n, float *xt, float *ut)
{
    int d = fm_manifold_dim(m);
    for (int i = 0; i < n; i++) {
        double a[3], b[3], l[3], tt = t[i];
        load(x0 + (size_t)i * d, a, d);
        load(x1 + (size_t)i * d, b, d);
        if (m == FM_MANIFOLD_SPHERE) {
            sphere_unit(a);
            sphere_unit(b);
            double th = angle(a, b), s = sin(th), p[3], u[3];
            if (s < 1e-7) { /* the same point (or, measure zero, antipodes): a straight step */
                for (int j = 0; j < 3; j++) p[j] = (1 - tt) * a[j] + tt * b[j], u[j] = b[j] - a[j];
            } else { /* slerp and its derivative */
                double wa = sin((1 - tt) * th) / s, wb = sin(tt * th) / s;
                double da = -th * cos((1 - tt) * th) / s, db = th * cos(tt * th) / s;
                for (int j = 0; j < 3; j++) p[j] = wa * a[j] + wb * b[j], u[j] = da * a[j] + db * b[j];
            }
            for (int j = 0; j < 3; j++) xt[(size_t)i * 3 + j] = (float)p[j], ut[(size_t)i * 3 + j] = (float)u[j];
        } else {
            log1(m, a, b, l);
            for (int j = 0; j < 2; j++)
                xt[(size_t)i * 2 + j] = (float)wrap(a[j] + tt * l[j]), ut[(size_t)i * 2 + j] = (float)l[j];
        }
    }
}

void fm_manifold_uniform(fm_manifold m, fm_rng *r, float *x, int n)
{
    for (int i = 0; i < n; i++) {
        if (m == FM_MANIFOLD_SPHERE) {
            double p[3];
            do {
                for (int j = 0; j < 3; j++) p[j] = fm_rng_normal(r);
            } while (dot3(p, p) < 1e-20);
            sphere_unit(p);
            for (int j = 0; j < 3; j++) x[(size_t)i * 3 + j] = (float)p[j];
        } else {
            for (int j = 0; j < 2; j++) x[(size_t)i * 2 + j] = (float)(TWO_PI * fm_rng_uniform(r));
        }
    }
}

double fm_manifold_log_volume(fm_manifold m) { return m == FM_MANIFOLD_SPHERE ? log(4 * M_PI) : 2 * log(TWO_PI); }

/* ---- ODE solvers that stay on the manifold */

/* y = project(x + h k) */
static void step_to(fm_manifold man, const float *x, const float *k, double h, size_t nd, int n, float *y)
{
    for (size_t i = 0; i < nd; i++) y[i] = (float)(x[i] + h * k[i]);
    fm_manifold_project(man, y, n);
}

fm_status fm__manifold_integrate(fm_manifold man, int kind, fm__manifold_field fn, void *ctx, const double *grid,
                                 int ngrid, float *x, int n, double *lp, fm_observe_fn obs, void *octx,
                                 fm_solve_stats *st)
{
    int d = fm_manifold_dim(man);
    size_t nd = (size_t)n * d;
    float *k = malloc(4 * nd * sizeof(float)), *y = malloc(nd * sizeof(float));
    double *dk = lp ? malloc(4 * (size_t)n * sizeof(double)) : NULL;
    if (!k || !y || (lp && !dk)) {
        free(k), free(y), free(dk);
        return fm__fail(FM_ERR_NOMEM, "out of memory integrating %d points", n);
    }
    static const double rk_c[4] = {0, 0.5, 0.5, 1}, rk_w[4] = {1 / 6.0, 1 / 3.0, 1 / 3.0, 1 / 6.0};
    int stages = kind == 0 ? 1 : kind == 1 ? 2 : 4;
    fm_status s = obs ? obs(octx, 0, grid[0], x, nd) : FM_OK;
    for (int g = 0; g + 1 < ngrid && !s; g++) {
        double t = grid[g], h = grid[g + 1] - grid[g];
        for (int q = 0; q < stages && !s; q++) {
            double c = kind == 2 ? rk_c[q] : q ? 0.5 : 0;
            const float *at = x;
            if (q) {
                step_to(man, x, k + (size_t)(q - 1) * nd, c * h, nd, n, y);
                at = y;
            }
            s = fn(ctx, t + c * h, at, n, k + (size_t)q * nd, lp ? dk + (size_t)q * n : NULL);
            if (st) st->nfe++;
        }
        if (s) break;
        /* the step: euler k0, midpoint k1, rk4 the weighted stages */
        float *dir = y;
        for (size_t i = 0; i < nd; i++) {
            double acc = 0;
            for (int q = 0; q < stages; q++) acc += (kind == 2 ? rk_w[q] : kind == 1 ? (q == 1) : 1.0) * k[(size_t)q * nd + i];
            dir[i] = (float)acc;
        }
        for (int i = 0; lp && i < n; i++) {
            double acc = 0;
            for (int q = 0; q < stages; q++) acc += (kind == 2 ? rk_w[q] : kind == 1 ? (q == 1) : 1.0) * dk[(size_t)q * n + i];
            lp[i] += h * acc;
        }
        for (size_t i = 0; i < nd; i++) x[i] = (float)(x[i] + h * dir[i]);
        fm_manifold_project(man, x, n);
        if (st) st->steps++;
        if (obs) s = obs(octx, g + 1, grid[g + 1], x, nd);
    }
    free(k), free(y), free(dk);
    return s;
}

/* ---- the geodesic W2 between two point sets (exact assignment) */

typedef struct {
    fm_manifold m;
    const float *a, *b;
    int d, n;
    const double *full; /* (n, n) the costs computed once, or NULL */
} geo_ctx;

static void geo_cost(void *ctx, int i, const int *cols, int ncols, double *out)
{
    const geo_ctx *g = ctx;
    for (int k = 0; k < ncols; k++) {
        int j = cols ? cols[k] : k;
        if (g->full) {
            out[k] = g->full[(size_t)i * g->n + j];
            continue;
        }
        double dd = fm_manifold_dist(g->m, g->a + (size_t)i * g->d, g->b + (size_t)j * g->d);
        out[k] = dd * dd;
    }
}

fm_status fm_manifold_w2(fm_manifold m, const float *a, const float *b, int n, double *w2)
{
    if (fm_manifold_dim(m) == 0) return fm__fail(FM_ERR_ARG, "geodesic W2: name the manifold (sphere or torus)");
    if (n < 1) return fm__fail(FM_ERR_ARG, "geodesic W2 of %d points", n);
    geo_ctx g = {m, a, b, fm_manifold_dim(m), n, NULL};
    int *x = malloc((size_t)n * sizeof(int));
    if (!x) return fm__fail(FM_ERR_NOMEM, "out of memory for an assignment of %d points", n);
    /* the solver reads each cost many times: up to 64 MB of them are computed once, over the threads */
    double *full = (double)n * n * sizeof(double) <= 64e6 ? malloc((size_t)n * n * sizeof(double)) : NULL;
    if (full) {
        FM__PARALLEL_FOR(fm__threads_over((double)n * n * 40, n))
        for (int i = 0; i < n; i++) geo_cost(&g, i, NULL, n, full + (size_t)i * n);
        g.full = full;
    }
    double total = 0;
    fm_status s = fm_assignment(n, geo_cost, &g, x, NULL, NULL, &total);
    free(x);
    free(full);
    if (!s) *w2 = sqrt(total / n);
    return s;
}
