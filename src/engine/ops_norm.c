/* ops_norm.c - group normalisation, as torch.nn.functional.group_norm.
 *
 * x (N, C, ...) is split per sample into G groups of C / G consecutive
 * channels; a group is one contiguous run of m = (C / G) S values, S the
 * values per channel. Each group's mean and biased variance are computed in
 * double (two passes, GN_LANES running sums each, combined pairwise) and
 * rstd = 1 / sqrt(var + eps); y = xhat gamma[c] + beta[c] with
 * xhat = (x - mean) rstd. The elementwise arithmetic is in float, the mean
 * taken off as a float and the float remainder of it, (x - m_hi) - m_lo: the
 * first difference is exact when x is near the mean, so data far from zero
 * keep their precision. The groups' mean and rstd stay on the tape.
 * Backward, with g = dy gamma[c] over a group:
 *   dx = rstd (g - mean(g) - xhat mean(g xhat)),
 *   dgamma[c] += sum over samples and pixels of dy xhat, dbeta[c] += sum of dy,
 * every sum in double. Groups are spread over the threads, each writing only
 * its own groups' outputs and its own per-(sample, channel) partial sums of
 * dgamma and dbeta; those are added over the samples in order afterwards, so
 * the bits do not depend on the thread count.
 *
 * fm__group_norm_act is act(group_norm(x)) as one op (the U-Net's norm and
 * SiLU): the normalised values h are not kept but made again, a group at a
 * time, by the backward, which takes g = dy act'(h) in place of dy. That
 * saves a tensor on the tape and two passes over memory each way.
 */
#include "internal.h"
#include "engine/kernels.h"

#include <limits.h>
#include <math.h>

/* Where the optional inputs sit among the node's sources (-1: absent). */
#define GN_GAMMA 1
#define GN_BETA 2
#define GN_ACT 3 /* arg.i[3]: the activation after the norm */

typedef struct {
    int N, C, G, cg; /* samples, channels, groups, channels per group */
    size_t S, m;     /* values per channel, per group */
} gn_geom;

static gn_geom gn_geom_of(int N, int C, size_t S, int groups)
{
    gn_geom g;
    g.N = N;
    g.C = C;
    g.G = groups;
    g.cg = g.C / groups;
    g.S = S;
    g.m = (size_t)g.cg * g.S;
    return g;
}

/* Running sums per lane (index mod GN_LANES): enough independent ones to
 * fill the vector units rather than wait on one add after another. */
#define GN_LANES 32

static double lanes_total(double *s)
{
    for (int w = GN_LANES / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) s[l] += s[l + w];
    return s[0];
}

/* sum of v[0 .. n) in double, by lanes combined pairwise */
static double sum_d(const float *v, size_t n)
{
    double s[GN_LANES] = {0};
    size_t i = 0;
    for (; i + GN_LANES <= n; i += GN_LANES)
        for (int l = 0; l < GN_LANES; l++) s[l] += v[i + l];
    for (; i < n; i++) s[i % GN_LANES] += v[i];
    return lanes_total(s);
}

/* sum of (v - c)^2 the same way */
static double sumsq_d(const float *v, size_t n, double c)
{
    double s[GN_LANES] = {0};
    size_t i = 0;
    for (; i + GN_LANES <= n; i += GN_LANES)
        for (int l = 0; l < GN_LANES; l++) {
            double d = v[i + l] - c;
            s[l] += d * d;
        }
    for (; i < n; i++) {
        double d = v[i] - c;
        s[i % GN_LANES] += d * d;
    }
    return lanes_total(s);
}

/* A group's mean as a float and the float remainder, and rstd as a float. */
typedef struct {
    float hi, lo, rstd;
} gn_center;

static gn_center center_of(double mean, double rstd)
{
    gn_center z;
    z.hi = (float)mean;
    z.lo = (float)(mean - (double)z.hi);
    z.rstd = (float)rstd;
    return z;
}

/* x - mean, in float */
static inline float centered(float x, gn_center z) { return (x - z.hi) - z.lo; }

/* *sd = sum of d, *sdx = sum of d (x - mean) rstd, the same way */
static void sums_dx(const float *x, const float *d, size_t n, gn_center z, double *sd, double *sdx)
{
    double a[GN_LANES] = {0}, b[GN_LANES] = {0};
    size_t i = 0;
    for (; i + GN_LANES <= n; i += GN_LANES)
        for (int l = 0; l < GN_LANES; l++) {
            float xh = centered(x[i + l], z) * z.rstd;
            a[l] += d[i + l];
            b[l] += d[i + l] * xh;
        }
    for (; i < n; i++) {
        float xh = centered(x[i], z) * z.rstd;
        a[i % GN_LANES] += d[i];
        b[i % GN_LANES] += d[i] * xh;
    }
    *sd = lanes_total(a);
    *sdx = lanes_total(b);
}

/* The norm's output for channel c of a group: h = (x - mean) a + beta,
 * a = gamma rstd. The forward and the backward (which makes h again) both
 * come here, so they agree to the bit. */
static void norm_channel(const float *x, size_t S, gn_center z, float a, float beta, float *h)
{
    for (size_t s = 0; s < S; s++) h[s] = centered(x[s], z) * a + beta;
}

/* Groups [q0, q1) (q = n G + group) of the forward pass, then act; stats
 * gets (mean, rstd) per group. */
static void gn_forward_groups(const gn_geom *g, const float *x, const float *gamma, const float *beta, double eps,
                              fm_act act, float *y, double *stats, int q0, int q1)
{
    for (int q = q0; q < q1; q++) {
        const float *xq = x + (size_t)q * g->m;
        float *yq = y + (size_t)q * g->m;
        double mean = sum_d(xq, g->m) / (double)g->m;
        double var = sumsq_d(xq, g->m, mean) / (double)g->m;
        double rstd = 1.0 / sqrt(var + eps);
        stats[2 * (size_t)q] = mean;
        stats[2 * (size_t)q + 1] = rstd;
        gn_center z = center_of(mean, rstd);
        int c0 = (q % g->G) * g->cg;
        for (int c = 0; c < g->cg; c++) {
            float a = (float)((gamma ? (double)gamma[c0 + c] : 1.0) * rstd), b = beta ? beta[c0 + c] : 0.0f;
            norm_channel(xq + (size_t)c * g->S, g->S, z, a, b, yq + (size_t)c * g->S);
        }
        if (act != FM_ACT_NONE) fm__act_forward(act, yq, yq, g->m);
    }
}

/* Backward of groups [q0, q1): dx (if wanted) and the per-(sample, channel)
 * sums pg = sum dy xhat, pb = sum dy (if wanted). With an activation, dy is
 * first replaced by dy act'(h): h (the norm's output, made again as the
 * forward made it) and that product go to hs and gs, a group each. */
static void gn_backward_groups(const gn_geom *g, const float *x, const float *gamma, const float *beta, fm_act act,
                               const float *y, const float *dy, const double *stats, float *dx, int dx_fresh,
                               double *pg, double *pb, float *hs, float *gs, int q0, int q1)
{
    for (int q = q0; q < q1; q++) {
        double rstd = stats[2 * (size_t)q + 1];
        gn_center z = center_of(stats[2 * (size_t)q], rstd);
        int n = q / g->G, c0 = (q % g->G) * g->cg;
        const float *xq = x + (size_t)q * g->m, *dq = dy + (size_t)q * g->m;
        if (act != FM_ACT_NONE) {
            for (int c = 0; c < g->cg; c++) {
                float a = (float)((gamma ? (double)gamma[c0 + c] : 1.0) * rstd), b = beta ? beta[c0 + c] : 0.0f;
                norm_channel(xq + (size_t)c * g->S, g->S, z, a, b, hs + (size_t)c * g->S);
            }
            fm__act_backward(act, hs, y + (size_t)q * g->m, dq, gs, g->m, 1);
            dq = gs;
        }
        double sg = 0.0, sgx = 0.0; /* sums of g and g xhat over the group */
        for (int c = 0; c < g->cg; c++) {
            double d, dxh;
            sums_dx(xq + (size_t)c * g->S, dq + (size_t)c * g->S, g->S, z, &d, &dxh);
            if (pb) pb[(size_t)n * g->C + c0 + c] = d;
            if (pg) pg[(size_t)n * g->C + c0 + c] = dxh;
            double gm = gamma ? (double)gamma[c0 + c] : 1.0;
            sg += gm * d;
            sgx += gm * dxh;
        }
        if (!dx) continue;
        /* dx = rstd (gamma g - mg - xhat mgx) = u g - v - xhat w */
        float v = (float)(rstd * sg / (double)g->m), w = (float)(rstd * sgx / (double)g->m);
        float *dxq = dx + (size_t)q * g->m;
        for (int c = 0; c < g->cg; c++) {
            float u = (float)(rstd * (gamma ? (double)gamma[c0 + c] : 1.0));
            const float *xc = xq + (size_t)c * g->S, *dc = dq + (size_t)c * g->S;
            float *dxc = dxq + (size_t)c * g->S;
            if (dx_fresh)
                for (size_t s = 0; s < g->S; s++) dxc[s] = u * dc[s] - v - centered(xc[s], z) * z.rstd * w;
            else
                for (size_t s = 0; s < g->S; s++) dxc[s] += u * dc[s] - v - centered(xc[s], z) * z.rstd * w;
        }
    }
}

/* y = act(xhat gamma + beta), xhat = (x - mean) rstd per group; stats = (mean, rstd) per (sample, group) */
void fm__group_norm_forward(float *y, double *stats, const float *x, const float *gamma, const float *beta, int N,
                            int C, size_t S, int G, float eps, fm_act act)
{
    gn_geom g = gn_geom_of(N, C, S, G);
    int nq = g.N * g.G;
    int nt = fm__threads_over(6.0 * (double)((size_t)N * C * S), nq);
    FM__PARALLEL_FOR(nt)
    for (int t = 0; t < nt; t++) {
        int q0 = fm__split(nq, t, nt), q1 = fm__split(nq, t + 1, nt);
        gn_forward_groups(&g, x, gamma, beta, (double)eps, act, y, stats, q0, q1);
    }
}

/* Threads of the backward: its scratch depends on them. */
static int gn_backward_threads(const gn_geom *g)
{
    return fm__threads_over(8.0 * (double)((size_t)g->N * g->C * g->S), g->N * g->G);
}

/* The backward's scratch: the per-(sample, channel) sums pg and pb (N C each,
 * when dgamma and dbeta are wanted) and, with an activation, hs (2 m per
 * thread: h and g of a group). */
static void gn_scratch(fm__carve *c, const gn_geom *g, fm_act act, int nt, int want_dgamma, int want_dbeta,
                       double **pg, double **pb, float **hs)
{
    size_t nc = (size_t)g->N * g->C;
    *pg = want_dgamma ? fm__carve_take(c, nc * sizeof(double)) : NULL;
    *pb = want_dbeta ? fm__carve_take(c, nc * sizeof(double)) : NULL;
    *hs = act != FM_ACT_NONE ? fm__carve_take(c, 2 * (size_t)nt * g->m * sizeof(float)) : NULL;
}

size_t fm__group_norm_backward_work(int N, int C, size_t S, int G, fm_act act, int want_dgamma, int want_dbeta)
{
    gn_geom g = gn_geom_of(N, C, S, G);
    fm__carve c = {NULL, 0};
    double *pg, *pb;
    float *hs;
    gn_scratch(&c, &g, act, gn_backward_threads(&g), want_dgamma, want_dbeta, &pg, &pb, &hs);
    return c.used;
}

/* dx (=)+= rstd (g - mean(g) - xhat mean(g xhat)), dgamma += sum of dy' xhat, dbeta += sum of dy' */
void fm__group_norm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *y,
                             const float *gamma, const float *beta, const double *stats, int N, int C, size_t S,
                             int G, fm_act act, int dx_overwrite, void *work)
{
    gn_geom g = gn_geom_of(N, C, S, G);
    int nq = g.N * g.G, nt = gn_backward_threads(&g);
    fm__carve c = {work, 0};
    double *pg, *pb;
    float *hs;
    gn_scratch(&c, &g, act, nt, dgamma != NULL, dbeta != NULL, &pg, &pb, &hs);
    FM__PARALLEL_FOR(nt)
    for (int t = 0; t < nt; t++) {
        int q0 = fm__split(nq, t, nt), q1 = fm__split(nq, t + 1, nt);
        float *h = hs ? hs + 2 * (size_t)t * g.m : NULL;
        gn_backward_groups(&g, x, gamma, beta, act, y, dy, stats, dx, dx_overwrite, pg, pb, h, h ? h + g.m : NULL,
                           q0, q1);
    }
    /* the samples' sums per channel, in sample order */
    for (int ch = 0; ch < g.C; ch++) {
        double sg = 0.0, sb = 0.0;
        for (int n = 0; n < g.N; n++) {
            if (pg) sg += pg[(size_t)n * g.C + ch];
            if (pb) sb += pb[(size_t)n * g.C + ch];
        }
        if (dgamma) dgamma[ch] += (float)sg;
        if (dbeta) dbeta[ch] += (float)sb;
    }
}

static void group_norm_backward(fm_tape *tp, fm_tensor *y)
{
    fm_tensor *x = y->src[0];
    fm_tensor *gamma = y->arg.i[GN_GAMMA] >= 0 ? y->src[y->arg.i[GN_GAMMA]] : NULL;
    fm_tensor *beta = y->arg.i[GN_BETA] >= 0 ? y->src[y->arg.i[GN_BETA]] : NULL;
    fm_act act = (fm_act)y->arg.i[GN_ACT];
    int N = x->shape[0], C = x->shape[1], G = y->arg.i[0];
    size_t S = x->size / ((size_t)N * C);
    int dx_fresh = 0;
    float *dx = fm__wants_grad(x) ? fm__grad_w(tp, x, &dx_fresh) : NULL;
    float *dgamma = fm__wants_grad(gamma) ? fm__grad(tp, gamma) : NULL;
    float *dbeta = fm__wants_grad(beta) ? fm__grad(tp, beta) : NULL;
    if (tp->status != FM_OK) return;
    fm__arena_mark mark = fm__arena_get_mark(&tp->arena);
    size_t bytes = fm__group_norm_backward_work(N, C, S, G, act, dgamma != NULL, dbeta != NULL);
    void *work = bytes ? fm__tape_alloc(tp, bytes) : NULL;
    if (tp->status != FM_OK) return;
    fm__group_norm_backward(dx, dgamma, dbeta, y->grad, x->data, y->data, gamma ? gamma->data : NULL,
                            beta ? beta->data : NULL, y->aux, N, C, S, G, act, dx_fresh, work);
    fm__arena_rewind(&tp->arena, &mark);
}

static const fm_op OP_GROUP_NORM = {"group_norm", group_norm_backward};
static const fm_op OP_GROUP_NORM_ACT = {"group_norm_act", group_norm_backward};

fm_tensor *fm__group_norm_act(fm_tape *tp, fm_tensor *x, int groups, fm_tensor *gamma, fm_tensor *beta, float eps,
                              fm_act act)
{
    if (!fm__op_inputs_ok(tp, "group_norm", &x, 1)) return NULL;
    char s1[96], s2[96];
    if (x->ndim < 2)
        return fm__op_fail(tp, FM_ERR_SHAPE, "group_norm: input %s is not [N, C], [N, C, L] or [N, C, H, W]",
                           fm_shape_str(x, s1, sizeof s1));
    int C = x->shape[1];
    if (groups < 1)
        return fm__op_fail(tp, FM_ERR_ARG, "group_norm: groups %d must be at least 1 (input %s)", groups,
                           fm_shape_str(x, s1, sizeof s1));
    if (C % groups)
        return fm__op_fail(tp, FM_ERR_SHAPE, "group_norm: input %s has %d channels, which do not divide into %d groups",
                           fm_shape_str(x, s1, sizeof s1), C, groups);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return fm__op_fail(tp, FM_ERR_ARG, "group_norm: eps %g must be finite and at least 0 (input %s)", (double)eps,
                           fm_shape_str(x, s1, sizeof s1));
    fm_tensor *aff[2] = {gamma, beta};
    static const char *const aff_name[2] = {"gamma", "beta"};
    for (int k = 0; k < 2; k++)
        if (aff[k] && (aff[k]->ndim != 1 || aff[k]->shape[0] != C))
            return fm__op_fail(tp, FM_ERR_SHAPE, "group_norm: %s %s does not fit input %s (expected [%d])",
                               aff_name[k], fm_shape_str(aff[k], s2, sizeof s2), fm_shape_str(x, s1, sizeof s1), C);
    if ((size_t)x->shape[0] * (size_t)groups > (size_t)INT_MAX)
        return fm__op_fail(tp, FM_ERR_SHAPE, "group_norm: input %s in %d groups has too many groups",
                           fm_shape_str(x, s1, sizeof s1), groups);

    fm_tensor *src[3] = {x, NULL, NULL};
    int nsrc = 1, gi = -1, bi = -1;
    if (gamma) {
        gi = nsrc;
        src[nsrc++] = gamma;
    }
    if (beta) {
        bi = nsrc;
        src[nsrc++] = beta;
    }
    if (act < 0 || act >= FM_ACT_COUNT)
        return fm__op_fail(tp, FM_ERR_ARG, "group_norm: unknown activation %d (input %s)", (int)act,
                           fm_shape_str(x, s1, sizeof s1));
    fm_tensor *y = fm__node(tp, act == FM_ACT_NONE ? &OP_GROUP_NORM : &OP_GROUP_NORM_ACT, x->ndim, x->shape, src, nsrc);
    if (!y) return NULL;
    int N = x->shape[0];
    size_t S = x->size / ((size_t)N * C);
    double *stats = fm__tape_alloc(tp, 2 * (size_t)N * groups * sizeof(double)); /* (mean, rstd) per group */
    if (!stats) return NULL;
    y->arg.i[0] = groups;
    y->arg.i[GN_GAMMA] = gi;
    y->arg.i[GN_BETA] = bi;
    y->arg.i[GN_ACT] = act;
    y->aux = stats;
    fm__group_norm_forward(y->data, stats, x->data, gamma ? gamma->data : NULL, beta ? beta->data : NULL, N, C, S,
                           groups, eps, act);
    return y;
}

/* Forward-mode tangent of y = act(group_norm(x)) along dx, per group with
 * xhat = (x - mean) rstd:  dn = gamma rstd (dx - mean(dx) - xhat mean(dx xhat)),
 * then act'(h) dn. Its values only: no gradient flows back through it. */
fm_tensor *fm__group_norm_act_jvp(fm_tape *tp, fm_tensor *y, fm_tensor *dx)
{
    fm_tensor *in2[2] = {y, dx};
    if (!fm__op_inputs_ok(tp, "group_norm_jvp", in2, 2)) return NULL;
    if ((y->op != &OP_GROUP_NORM && y->op != &OP_GROUP_NORM_ACT) || !fm__same_shape(y, dx))
        return fm__op_fail(tp, FM_ERR_ARG, "group_norm_jvp: needs a group norm's output and a tangent of its shape");
    fm_tensor *x = y->src[0], *out = fm_tensor_new(tp, dx->ndim, dx->shape);
    float *tmp = fm__tape_alloc(tp, 2 * dx->size * sizeof(float));
    if (!out || !tmp) return NULL;
    const float *gamma = y->arg.i[GN_GAMMA] >= 0 ? y->src[y->arg.i[GN_GAMMA]]->data : NULL;
    const float *beta = y->arg.i[GN_BETA] >= 0 ? y->src[y->arg.i[GN_BETA]]->data : NULL;
    const double *stats = y->aux;
    fm_act act = (fm_act)y->arg.i[GN_ACT];
    int N = x->shape[0], C = x->shape[1];
    gn_geom g = gn_geom_of(N, C, x->size / ((size_t)N * C), y->arg.i[0]);
    int nq = N * g.G;
#pragma omp parallel for schedule(static) if (nq > 1 && x->size > 65536)
    for (int q = 0; q < nq; q++) {
        double rstd = stats[2 * (size_t)q + 1], sd, sdx;
        gn_center z = center_of(stats[2 * (size_t)q], rstd);
        size_t off = (size_t)q * g.m;
        const float *xq = x->data + off, *dq = dx->data + off;
        float *oq = out->data + off, *h = tmp + off, *fh = tmp + dx->size + off;
        sums_dx(xq, dq, g.m, z, &sd, &sdx);
        float md = (float)(sd / (double)g.m), mdx = (float)(sdx / (double)g.m);
        int c0 = (q % g.G) * g.cg;
        for (int c = 0; c < g.cg; c++) {
            float gm = gamma ? gamma[c0 + c] : 1.0f, a = (float)(gm * rstd), b = beta ? beta[c0 + c] : 0.0f;
            for (size_t s = 0; s < g.S; s++) {
                size_t k = (size_t)c * g.S + s;
                float xh = centered(xq[k], z) * z.rstd;
                oq[k] = a * (dq[k] - md - xh * mdx);
                h[k] = xh * gm + b;
            }
        }
        if (act != FM_ACT_NONE) {
            fm__act_forward(act, h, fh, g.m);
            fm__act_backward(act, h, fh, oq, oq, g.m, 1);
        }
    }
    return out;
}

fm_tensor *fm_group_norm(fm_tape *tp, fm_tensor *x, int groups, fm_tensor *gamma, fm_tensor *beta, float eps)
{
    return fm__group_norm_act(tp, x, groups, gamma, beta, eps, FM_ACT_NONE);
}
