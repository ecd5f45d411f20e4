/* optim.c - SGD (momentum, Nesterov), Adam and AdamW with torch.optim's update
 * rules, global-norm gradient clipping, the weight EMA and learning-rate
 * schedules.
 *
 * Each update is one loop over the flat parameter buffer, written in the same
 * operation order as PyTorch's single-tensor implementation so the two agree to
 * float rounding. Scalars that PyTorch computes in Python (bias corrections,
 * step sizes) are computed here in double as well.
 */
#include "internal.h"
#include "engine/profile.h"

#include <math.h>
#include <string.h>

struct fm_optim {
    fm_params *p;
    fm_optim_config cfg;
    size_t n;       /* floats covered; must still equal fm_params_size */
    float *m;       /* (n) Adam exp_avg, or SGD momentum_buffer */
    float *v;       /* (n) Adam exp_avg_sq */
    float *vmax;    /* (n) AMSGrad max_exp_avg_sq, or NULL */
    int64_t step;
};

static const char *const optim_names[FM_OPTIM_COUNT] = {"sgd", "adam", "adamw"};

const char *fm_optim_name(fm_optim_kind k) { return fm__name_of(optim_names, FM_OPTIM_COUNT, k); }
int fm_optim_from_name(const char *name) { return fm__name_index(optim_names, FM_OPTIM_COUNT, name); }

fm_optim_config fm_optim_config_default(fm_optim_kind k)
{
    fm_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = k;
    c.lr = 1e-3;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weight_decay = k == FM_OPTIM_ADAMW ? 1e-2 : 0.0;
    return c;
}

static fm_status config_check(const fm_optim_config *c)
{
    if (c->kind < 0 || c->kind >= FM_OPTIM_COUNT)
        return fm__fail(FM_ERR_ARG, "optimizer: unknown kind %d", (int)c->kind);
    if (!(c->lr >= 0.0) || !isfinite(c->lr))
        return fm__fail(FM_ERR_ARG, "optimizer: learning rate %g is invalid", c->lr);
    if (!(c->beta1 >= 0.0 && c->beta1 < 1.0) || !(c->beta2 >= 0.0 && c->beta2 < 1.0))
        return fm__fail(FM_ERR_ARG, "optimizer: betas (%g, %g) must lie in [0, 1)", c->beta1, c->beta2);
    if (!(c->eps >= 0.0) || !isfinite(c->eps)) return fm__fail(FM_ERR_ARG, "optimizer: eps %g is invalid", c->eps);
    if (!(c->weight_decay >= 0.0) || !isfinite(c->weight_decay))
        return fm__fail(FM_ERR_ARG, "optimizer: weight decay %g is invalid", c->weight_decay);
    if (!(c->momentum >= 0.0) || !isfinite(c->momentum))
        return fm__fail(FM_ERR_ARG, "optimizer: momentum %g is invalid", c->momentum);
    if (!(c->dampening >= 0.0 && c->dampening <= 1.0))
        return fm__fail(FM_ERR_ARG, "optimizer: dampening %g must lie in [0, 1]", c->dampening);
    if (c->nesterov && (c->momentum <= 0.0 || c->dampening != 0.0))
        return fm__fail(FM_ERR_ARG, "optimizer: Nesterov momentum needs momentum > 0 and zero dampening");
    return FM_OK;
}

fm_optim *fm_optim_new(fm_params *p, const fm_optim_config *cfg)
{
    if (!p || !cfg) {
        fm__fail(FM_ERR_ARG, "fm_optim_new: missing parameter set or configuration");
        return NULL;
    }
    if (config_check(cfg) != FM_OK) return NULL;
    fm_optim *o = calloc(1, sizeof *o);
    if (!o) goto oom;
    o->p = p;
    o->cfg = *cfg;
    o->n = fm_params_size(p);
    size_t n = o->n ? o->n : 1;
    o->m = calloc(n, sizeof(float));
    o->v = calloc(n, sizeof(float));
    if (!o->m || !o->v) goto oom;
    if (cfg->amsgrad && cfg->kind != FM_OPTIM_SGD) {
        o->vmax = calloc(n, sizeof(float));
        if (!o->vmax) goto oom;
    }
    return o;
oom:
    fm_optim_free(o);
    fm__fail(FM_ERR_NOMEM, "out of memory creating the optimizer state");
    return NULL;
}

void fm_optim_free(fm_optim *o)
{
    if (!o) return;
    free(o->m);
    free(o->v);
    free(o->vmax);
    free(o);
}

int64_t fm_optim_steps(const fm_optim *o) { return o->step; }
fm_params *fm__optim_params(fm_optim *o) { return o->p; }

void fm__optim_view(fm_optim *o, float **m, float **v, float **vmax, int64_t **step, size_t *n)
{
    *n = o->n;
    *m = o->m;
    *v = o->v;
    *vmax = o->vmax;
    *step = &o->step;
}
const fm_optim_config *fm_optim_get_config(const fm_optim *o) { return &o->cfg; }

static void sgd_step(fm_optim *o, float *restrict w, const float *restrict g, double lr)
{
    const fm_optim_config *c = &o->cfg;
    float wd = (float)c->weight_decay, mom = (float)c->momentum, damp = (float)(1.0 - c->dampening);
    float neg_lr = (float)-lr;
    float *restrict buf = o->m;
    size_t n = o->n;
    if (mom == 0.0f) {
        for (size_t i = 0; i < n; i++) w[i] = w[i] + neg_lr * (g[i] + wd * w[i]);
    } else if (o->step == 0) { /* the buffer starts as the first gradient */
        for (size_t i = 0; i < n; i++) {
            float d = g[i] + wd * w[i];
            buf[i] = d;
            w[i] = w[i] + neg_lr * (c->nesterov ? d + mom * d : d);
        }
    } else if (c->nesterov) {
        for (size_t i = 0; i < n; i++) {
            float d = g[i] + wd * w[i];
            float b = buf[i] * mom + damp * d;
            buf[i] = b;
            w[i] = w[i] + neg_lr * (d + mom * b);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float d = g[i] + wd * w[i];
            float b = buf[i] * mom + damp * d;
            buf[i] = b;
            w[i] = w[i] + neg_lr * b;
        }
    }
}

static void adam_step(fm_optim *o, float *restrict w, const float *restrict g, double lr)
{
    const fm_optim_config *c = &o->cfg;
    int decoupled = c->kind == FM_OPTIM_ADAMW;
    float b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    float c1 = (float)(1.0 - c->beta1), c2 = (float)(1.0 - c->beta2);
    double t = (double)o->step; /* already incremented */
    double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
    float neg_step = (float)(-lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    /* Adam adds wd w to the gradient; AdamW shrinks w by (1 - lr wd) first.
     * Multiplying by 1 and adding 0 w leave finite values unchanged, so one
     * branch-free loop (which the compiler vectorises) serves all variants. */
    float l2 = decoupled ? 0.0f : (float)c->weight_decay;
    float shrink = decoupled ? (float)(1.0 - lr * c->weight_decay) : 1.0f;
    float *restrict m = o->m, *restrict v = o->v, *restrict vmax = o->vmax;
    size_t n = o->n;
    if (!vmax) {
        for (size_t i = 0; i < n; i++) {
            float wi = w[i] * shrink, gi = g[i] + l2 * w[i];
            float mi = m[i] * b1 + c1 * gi, vi = v[i] * b2 + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            w[i] = wi + neg_step * mi / (sqrtf(vi) / bc2_sqrt + eps);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float wi = w[i] * shrink, gi = g[i] + l2 * w[i];
            float mi = m[i] * b1 + c1 * gi, vi = v[i] * b2 + c2 * gi * gi;
            float vm = vi > vmax[i] ? vi : vmax[i];
            m[i] = mi;
            v[i] = vi;
            vmax[i] = vm;
            w[i] = wi + neg_step * mi / (sqrtf(vm) / bc2_sqrt + eps);
        }
    }
}

fm_status fm_optim_step(fm_optim *o, double lr)
{
    if (!o) return fm__fail(FM_ERR_ARG, "fm_optim_step: optimizer is NULL");
    if (fm_params_size(o->p) != o->n)
        return fm__fail(FM_ERR_STATE,
                        "optimizer was made for %zu parameters but the model now has %zu",
                        o->n, fm_params_size(o->p));
    if (!(lr >= 0.0) || !isfinite(lr))
        return fm__fail(FM_ERR_ARG, "optimizer: learning rate %g is invalid", lr);
    float *w = fm_params_data(o->p), *g = fm_params_grad(o->p);
    if (o->cfg.kind == FM_OPTIM_SGD) {
        sgd_step(o, w, g, lr);
        o->step++;
    } else {
        o->step++;
        adam_step(o, w, g, lr);
    }
    return FM_OK;
}

/* ------------------------------------------------------------------ clipping */

fm_status fm_clip_grad_norm(fm_params *p, double max_norm, double *total_norm)
{
    float *g = fm_params_grad(p);
    size_t n = fm_params_size(p);
    /* 8 double partial sums in a fixed order, then added pairwise: vectorises,
     * and the result does not depend on anything but the gradients */
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) part[k] += (double)g[i + k] * g[i + k];
    for (; i < n; i++) part[0] += (double)g[i] * g[i];
    double ss = ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
    double total = sqrt(ss);
    if (total_norm) *total_norm = total;
    if (!isfinite(total))
        return fm__fail(FM_ERR_NUMERIC, "gradient norm is %g: the loss or the model produced NaN or infinity", total);
    if (max_norm > 0.0) {
        double coef = max_norm / (total + 1e-6);
        if (coef < 1.0) {
            float k = (float)coef;
            for (i = 0; i < n; i++) g[i] *= k;
        }
    }
    return FM_OK;
}

/* ------------------------------------------------------------------ EMA */

struct fm_ema {
    float decay;
    size_t n;
    float *w; /* (n) */
};

fm_ema *fm_ema_new(const fm_params *p, float decay)
{
    if (!p) {
        fm__fail(FM_ERR_ARG, "fm_ema_new: parameter set is NULL");
        return NULL;
    }
    if (!(decay >= 0.0f && decay <= 1.0f)) {
        fm__fail(FM_ERR_ARG, "EMA decay %g must lie in [0, 1]", (double)decay);
        return NULL;
    }
    fm_ema *e = calloc(1, sizeof *e);
    size_t n = fm_params_size(p);
    if (e) e->w = malloc((n ? n : 1) * sizeof(float));
    if (!e || !e->w) {
        fm_ema_free(e);
        fm__fail(FM_ERR_NOMEM, "out of memory creating the EMA weights");
        return NULL;
    }
    e->decay = decay;
    e->n = n;
    memcpy(e->w, fm_params_data((fm_params *)p), n * sizeof(float));
    return e;
}

void fm_ema_free(fm_ema *e)
{
    if (!e) return;
    free(e->w);
    free(e);
}

float *fm_ema_data(fm_ema *e) { return e->w; }
float fm_ema_decay(const fm_ema *e) { return e->decay; }
size_t fm__ema_size(const fm_ema *e) { return e->n; }
void fm__ema_set_decay(fm_ema *e, float decay) { e->decay = decay; }

fm_status fm_ema_update(fm_ema *e, const fm_params *p)
{
    if (fm_params_size(p) != e->n)
        return fm__fail(FM_ERR_STATE, "EMA holds %zu weights but the model has %zu", e->n,
                        fm_params_size(p));
    const float *w = fm_params_data((fm_params *)p);
    float k = 1.0f - e->decay;
    for (size_t i = 0; i < e->n; i++) e->w[i] -= k * (e->w[i] - w[i]);
    return FM_OK;
}

fm_status fm_ema_swap(fm_ema *e, fm_params *p)
{
    if (fm_params_size(p) != e->n)
        return fm__fail(FM_ERR_STATE, "EMA holds %zu weights but the model has %zu", e->n,
                        fm_params_size(p));
    float *w = fm_params_data(p);
    for (size_t i = 0; i < e->n; i++) {
        float t = w[i];
        w[i] = e->w[i];
        e->w[i] = t;
    }
    return FM_OK;
}

/* ------------------------------------------------------------------ schedules */

static const char *const sched_names[FM_SCHED_COUNT] = {"constant", "cosine", "linear"};

const char *fm_sched_name(fm_sched_kind k) { return fm__name_of(sched_names, FM_SCHED_COUNT, k); }
int fm_sched_from_name(const char *name) { return fm__name_index(sched_names, FM_SCHED_COUNT, name); }

double fm_schedule_lr(const fm_schedule *s, double lr, int64_t step)
{
    if (step < 0) step = 0;
    if (s->warmup > 0 && step < s->warmup) return lr * (double)(step + 1) / (double)s->warmup;
    if (s->kind == FM_SCHED_CONSTANT) return lr;
    int64_t span = s->total - (s->warmup > 0 ? s->warmup : 0);
    double p = span > 0 ? (double)(step - (s->warmup > 0 ? s->warmup : 0)) / (double)span : 1.0;
    if (p > 1.0) p = 1.0;
    if (s->kind == FM_SCHED_COSINE) return s->min_lr + (lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * p));
    return lr + (s->min_lr - lr) * p;
}

fm_status fm__clip_and_step(fm_params *P, fm_optim *opt, double clip, int64_t iter, double lr)
{
    fm__prof_enter("optimizer", 0);
    fm_status s = fm_clip_grad_norm(P, clip, NULL);
    if (s) {
        fm__prof_leave();
        return fm__fail(s, "iteration %lld: %s", (long long)iter + 1, fm_last_error());
    }
    s = fm_optim_step(opt, lr);
    fm__prof_leave();
    return s;
}
