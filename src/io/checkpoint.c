/* checkpoint.c - model, optimizer and EMA state to and from safetensors.
 *
 * Parameters keep their PyTorch state_dict names (net.0.weight); optimizer
 * state sits beside them as optim.exp_avg.<name>, optim.exp_avg_sq.<name>,
 * optim.max_exp_avg_sq.<name> or optim.momentum_buffer.<name>, the EMA as
 * ema.<name>, and every scalar setting (step, hyperparameters, model shape) is
 * a string in __metadata__. A file therefore loads into PyTorch after keeping
 * the keys of the model alone.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define NAME_MAX_LEN 512

/* prefix + name into buf; FM_ERR_ARG if it does not fit. */
static fm_status joined(char *buf, const char *a, const char *b)
{
    int n = snprintf(buf, NAME_MAX_LEN, "%s%s", a ? a : "", b);
    if (n < 0 || n >= NAME_MAX_LEN)
        return fm__fail(FM_ERR_ARG, "tensor name '%s%.40s...' is longer than %d bytes", a ? a : "", b, NAME_MAX_LEN - 1);
    return FM_OK;
}

/* Queue every parameter-shaped slice of flat, a buffer of n floats laid out like p. */
static fm_status save_flat(fm_params *p, fm_st_writer *w, const char *prefix, const float *flat, size_t n)
{
    if (n != fm_params_size(p))
        return fm__fail(FM_ERR_STATE, "state of %zu values does not match the model's %zu parameters", n,
                        fm_params_size(p));
    char name[NAME_MAX_LEN];
    for (int i = 0; i < fm_params_count(p); i++) {
        const fm_tensor *t = fm_params_tensor(p, i);
        fm_status s = joined(name, prefix, fm_params_name(p, i));
        if (!s) s = fm_st_writer_add(w, name, t->ndim, t->shape, flat + fm__params_offset(p, i));
        if (s != FM_OK) return s;
    }
    return FM_OK;
}

static fm_status load_flat(fm_params *p, const fm_st *st, const char *prefix, float *flat)
{
    char name[NAME_MAX_LEN];
    for (int i = 0; i < fm_params_count(p); i++) {
        const fm_tensor *t = fm_params_tensor(p, i);
        fm_status s = joined(name, prefix, fm_params_name(p, i));
        if (!s) s = fm_st_read(st, name, flat + fm__params_offset(p, i), t->ndim, t->shape);
        if (s != FM_OK) return s;
    }
    return FM_OK;
}

fm_status fm_params_save(fm_params *p, fm_st_writer *w, const char *prefix)
{
    return save_flat(p, w, prefix, fm_params_data(p), fm_params_size(p));
}

fm_status fm_params_load(fm_params *p, const fm_st *st, const char *prefix)
{
    /* Read into a scratch copy so a failure leaves the live weights untouched. */
    size_t n = fm_params_size(p);
    float *tmp = malloc((n ? n : 1) * sizeof(float));
    if (!tmp) return fm__fail(FM_ERR_NOMEM, "out of memory loading parameters");
    fm_status s = load_flat(p, st, prefix, tmp);
    if (s == FM_OK) memcpy(fm_params_data(p), tmp, n * sizeof(float));
    free(tmp);
    return s;
}

/* The name parameter i has under naming scheme k of fm_params_import (with
 * prefix when given) into buf; 0 when the scheme does not apply to it. */
static int import_name(char *buf, const fm_params *p, int i, const char *prefix, int k)
{
    const char *n = fm_params_name(p, i), *dot = strchr(n, '.');
    static const char *const wrap[] = {"", "", "model.", "module."};
    if (prefix) return joined(buf, prefix, n) == FM_OK;
    if (k == 1) return dot && joined(buf, NULL, dot + 1) == FM_OK; /* net.0.weight as nn.Sequential's 0.weight */
    return joined(buf, wrap[k], n) == FM_OK;
}

fm_status fm_params_import(fm_params *p, const fm_st *st, const char *prefix)
{
    int np = fm_params_count(p), k = 0, nk = prefix ? 1 : 4;
    char name[NAME_MAX_LEN];
    /* the scheme under which the first parameter is found names them all */
    for (k = 0; k < nk; k++)
        if (np > 0 && import_name(name, p, 0, prefix, k) && fm_st_find(st, name) >= 0) break;
    if (np > 0 && k == nk) {
        char tried[4 * NAME_MAX_LEN] = "";
        for (int q = 0; q < nk; q++)
            if (import_name(name, p, 0, prefix, q))
                snprintf(tried + strlen(tried), sizeof tried - strlen(tried), "%s'%s'", q ? ", " : "", name);
        return fm__fail(FM_ERR_FORMAT, "the model's first parameter %s is not in the file (looked for %s)",
                        fm_params_name(p, 0), tried);
    }
    size_t n = fm_params_size(p);
    float *tmp = malloc((n ? n : 1) * sizeof(float));
    unsigned char *used = calloc((size_t)(fm_st_count(st) ? fm_st_count(st) : 1), 1);
    fm_status s = tmp && used ? FM_OK : fm__fail(FM_ERR_NOMEM, "out of memory importing parameters");
    for (int i = 0; !s && i < np; i++) {
        const fm_tensor *t = fm_params_tensor(p, i);
        int at = import_name(name, p, i, prefix, k) ? fm_st_find(st, name) : -1;
        if (at < 0) {
            char sh[96];
            s = fm__fail(FM_ERR_FORMAT, "the file has no tensor '%s' for the model's %s (shape %s)", name,
                         fm_params_name(p, i), fm__shape_fmt(t->ndim, t->shape, sh, sizeof sh));
            break;
        }
        used[at] = 1;
        if ((s = fm_st_read(st, name, tmp + fm__params_offset(p, i), t->ndim, t->shape)))
            s = fm__fail(FM_ERR_FORMAT, "the model's %s: %s", fm_params_name(p, i), fm_last_error());
    }
    for (int j = 0; !s && j < fm_st_count(st); j++)
        if (!used[j])
            s = fm__fail(FM_ERR_FORMAT, "the file's tensor '%s' matches no parameter of the model (%d parameters, "
                         "the file %d tensors)", fm_st_entry(st, j, NULL, NULL, NULL), np, fm_st_count(st));
    if (!s) memcpy(fm_params_data(p), tmp, n * sizeof(float));
    free(tmp);
    free(used);
    return s;
}

/* ------------------------------------------------------------------ metadata helpers */

void fm__fmt_num(char *buf, double v)
{
    snprintf(buf, 32, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, 32, "%.17g", v);
}

fm_status fm__meta_put_u64(fm_st_writer *w, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return fm_st_writer_meta(w, key, buf);
}

fm_status fm__meta_put_format(fm_st_writer *w)
{
    fm_status s = fm_st_writer_meta(w, "format", "flowmatch");
    return s ? s : fm_st_writer_meta(w, "flowmatch.version", FM_VERSION);
}

fm_status fm__meta_check_format(const fm_st *st)
{
    const char *fmt = fm_st_meta(st, "format");
    if (!fmt || strcmp(fmt, "flowmatch") != 0)
        return fm__fail(FM_ERR_FORMAT, "not a flowmatch checkpoint (metadata 'format' is %s%s%s)", fmt ? "'" : "",
                        fmt ? fmt : "missing", fmt ? "'" : "");
    return FM_OK;
}

fm_status fm__meta_put_num(fm_st_writer *w, const char *key, double v)
{
    char buf[32];
    fm__fmt_num(buf, v);
    return fm_st_writer_meta(w, key, buf);
}

fm_status fm__meta_get_num(const fm_st *st, const char *key, double *out)
{
    const char *v = fm_st_meta(st, key);
    if (!v) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata lacks '%s'", key);
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno == ERANGE || !isfinite(d))
        return fm__fail(FM_ERR_FORMAT, "checkpoint metadata '%s' = '%s' is not a number", key, v);
    *out = d;
    return FM_OK;
}

fm_status fm__meta_get_whole(const fm_st *st, const char *key, double lo, double hi, double *out)
{
    fm_status s = fm__meta_get_num(st, key, out);
    if (s) return s;
    if (*out != floor(*out) || *out < lo || *out > hi)
        return fm__fail(FM_ERR_FORMAT, "checkpoint metadata '%s' = %g is not a whole number in %g..%g", key, *out, lo, hi);
    return FM_OK;
}

/* ------------------------------------------------------------------ optimizer */

/* "<prefix>.<key>" into a static-size buffer. */
#define PKEY(buf, prefix, key) (snprintf(buf, sizeof buf, "%s.%s", prefix, key), buf)

static const char *optim_slot(const fm_optim_config *c, int k)
{
    /* slot k of the state buffers under PyTorch's names */
    if (c->kind == FM_OPTIM_SGD) return k == 0 && c->momentum != 0.0 ? "momentum_buffer." : NULL;
    if (k == 0) return "exp_avg.";
    if (k == 1) return "exp_avg_sq.";
    if (k == 2 && c->amsgrad) return "max_exp_avg_sq.";
    return NULL;
}

fm_status fm__optim_save_as(fm_optim *o, fm_st_writer *w, const char *prefix)
{
    const fm_optim_config *c = fm_optim_get_config(o);
    float *buf[3];
    int64_t *step;
    size_t n;
    fm__optim_view(o, &buf[0], &buf[1], &buf[2], &step, &n);
    fm_params *p = fm__optim_params(o);
    fm_status s = FM_OK;
    char key[96];
    for (int k = 0; k < 3 && s == FM_OK; k++) {
        const char *slot = optim_slot(c, k);
        if (slot) s = save_flat(p, w, PKEY(key, prefix, slot), buf[k], n);
    }
    if (s == FM_OK) s = fm_st_writer_meta(w, PKEY(key, prefix, "kind"), fm_optim_name(c->kind));
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "step"), (double)*step);
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "lr"), c->lr);
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "beta1"), c->beta1);
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "beta2"), c->beta2);
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "eps"), c->eps);
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "weight_decay"), c->weight_decay);
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "amsgrad"), c->amsgrad);
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "momentum"), c->momentum);
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "dampening"), c->dampening);
    if (s == FM_OK) s = fm__meta_put_num(w, PKEY(key, prefix, "nesterov"), c->nesterov);
    return s;
}

fm_status fm_optim_save(fm_optim *o, fm_st_writer *w) { return fm__optim_save_as(o, w, "optim"); }

fm_status fm__optim_config_load_as(fm_optim_config *c, const fm_st *st, const char *prefix)
{
    char key[96];
    const char *kind = fm_st_meta(st, PKEY(key, prefix, "kind"));
    if (!kind) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata lacks '%s'", key);
    int k = fm_optim_from_name(kind);
    if (k < 0) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata '%s' = '%s' is not an optimizer", key, kind);
    fm_optim_config t = fm_optim_config_default((fm_optim_kind)k);
    double ams = 0, nest = 0;
    fm_status s = fm__meta_get_num(st, PKEY(key, prefix, "lr"), &t.lr);
    if (!s) s = fm__meta_get_num(st, PKEY(key, prefix, "beta1"), &t.beta1);
    if (!s) s = fm__meta_get_num(st, PKEY(key, prefix, "beta2"), &t.beta2);
    if (!s) s = fm__meta_get_num(st, PKEY(key, prefix, "eps"), &t.eps);
    if (!s) s = fm__meta_get_num(st, PKEY(key, prefix, "weight_decay"), &t.weight_decay);
    if (!s) s = fm__meta_get_whole(st, PKEY(key, prefix, "amsgrad"), 0, 1, &ams);
    if (!s) s = fm__meta_get_num(st, PKEY(key, prefix, "momentum"), &t.momentum);
    if (!s) s = fm__meta_get_num(st, PKEY(key, prefix, "dampening"), &t.dampening);
    if (!s) s = fm__meta_get_whole(st, PKEY(key, prefix, "nesterov"), 0, 1, &nest);
    if (s != FM_OK) return s;
    t.amsgrad = (int)ams;
    t.nesterov = (int)nest;
    *c = t;
    return FM_OK;
}

fm_status fm_optim_config_load(fm_optim_config *c, const fm_st *st) { return fm__optim_config_load_as(c, st, "optim"); }

fm_status fm__optim_load_as(fm_optim *o, const fm_st *st, const char *prefix)
{
    const fm_optim_config *c = fm_optim_get_config(o);
    fm_optim_config saved;
    fm_status s = fm__optim_config_load_as(&saved, st, prefix);
    if (s != FM_OK) return s;
    int sgd_mom = c->kind == FM_OPTIM_SGD && (saved.momentum != 0.0) != (c->momentum != 0.0);
    if (saved.kind != c->kind || saved.amsgrad != c->amsgrad || sgd_mom)
        return fm__fail(FM_ERR_STATE, "checkpoint holds %s%s%s state, which does not fit this %s%s%s optimizer",
                        fm_optim_name(saved.kind), saved.amsgrad ? " (amsgrad)" : "",
                        sgd_mom ? (saved.momentum != 0.0 ? " with momentum" : " without momentum") : "",
                        fm_optim_name(c->kind), c->amsgrad ? " (amsgrad)" : "",
                        sgd_mom ? (c->momentum != 0.0 ? " with momentum" : " without momentum") : "");
    double step = 0;
    char key[96];
    if ((s = fm__meta_get_whole(st, PKEY(key, prefix, "step"), 0, 9e15, &step))) return s;
    float *buf[3];
    int64_t *stp;
    size_t n;
    fm__optim_view(o, &buf[0], &buf[1], &buf[2], &stp, &n);
    fm_params *p = fm__optim_params(o);
    if (n != fm_params_size(p))
        return fm__fail(FM_ERR_STATE, "optimizer was made for %zu parameters but the model now has %zu", n,
                        fm_params_size(p));
    /* Stage into scratch so a failure leaves the live state alone. */
    float *tmp = malloc((3 * n + 1) * sizeof(float));
    if (!tmp) return fm__fail(FM_ERR_NOMEM, "out of memory loading optimizer state");
    for (int k = 0; k < 3 && s == FM_OK; k++) {
        const char *slot = optim_slot(c, k);
        if (slot) s = load_flat(p, st, PKEY(key, prefix, slot), tmp + k * n);
    }
    if (s == FM_OK) {
        for (int k = 0; k < 3; k++)
            if (optim_slot(c, k)) memcpy(buf[k], tmp + k * n, n * sizeof(float));
        *stp = (int64_t)step;
    }
    free(tmp);
    return s;
}

fm_status fm_optim_load(fm_optim *o, const fm_st *st) { return fm__optim_load_as(o, st, "optim"); }

/* ------------------------------------------------------------------ EMA */

fm_status fm_ema_save(fm_ema *e, fm_params *p, fm_st_writer *w)
{
    fm_status s = save_flat(p, w, "ema.", fm_ema_data(e), fm__ema_size(e));
    if (s == FM_OK) s = fm__meta_put_num(w, "ema.decay", fm_ema_decay(e));
    return s;
}

fm_status fm_ema_load(fm_ema *e, fm_params *p, const fm_st *st)
{
    size_t n = fm_params_size(p);
    if (n != fm__ema_size(e))
        return fm__fail(FM_ERR_STATE, "EMA holds %zu weights but the model has %zu", fm__ema_size(e), n);
    double decay = fm_ema_decay(e);
    fm_status s = FM_OK;
    if (fm_st_meta(st, "ema.decay")) s = fm__meta_get_num(st, "ema.decay", &decay);
    if (s == FM_OK && !(decay >= 0 && decay <= 1))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'ema.decay' = %g is outside [0, 1]", decay);
    if (s) return s;
    float *tmp = malloc((n ? n : 1) * sizeof(float));
    if (!tmp) return fm__fail(FM_ERR_NOMEM, "out of memory loading EMA weights");
    s = load_flat(p, st, "ema.", tmp);
    if (s == FM_OK) {
        memcpy(fm_ema_data(e), tmp, n * sizeof(float));
        fm__ema_set_decay(e, (float)decay);
    }
    free(tmp);
    return s;
}

/* ------------------------------------------------------------------ MLP configuration */

fm_status fm__meta_put_widths(fm_st_writer *w, const char *key, int n, const int *width)
{
    char widths[FM_MLP_MAX_LAYERS * 12 + 1] = "";
    size_t o = 0;
    for (int i = 0; i < n; i++) o += (size_t)snprintf(widths + o, sizeof widths - o, i ? ",%d" : "%d", width[i]);
    return fm_st_writer_meta(w, key, widths);
}

fm_status fm__meta_get_widths(const fm_st *st, const char *key, int *n, int *width)
{
    const char *widths = fm_st_meta(st, key);
    if (!widths) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata lacks '%s'", key);
    int k = 0;
    const char *q = widths;
    while (*q) {
        char *end;
        errno = 0;
        long v = strtol(q, &end, 10);
        if (end == q || v < 1 || v > (1 << 20) || errno || (*end && *end != ',') || k == FM_MLP_MAX_LAYERS)
            return fm__fail(FM_ERR_FORMAT, "checkpoint metadata '%s' = '%s' is not a list of widths", key, widths);
        width[k++] = (int)v;
        q = *end ? end + 1 : end;
    }
    *n = k;
    return FM_OK;
}

fm_status fm__meta_get_act(const fm_st *st, const char *key, fm_act *out)
{
    const char *act = fm_st_meta(st, key);
    if (!act) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata lacks '%s'", key);
    int a = fm_act_from_name(act);
    if (a < 0) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata '%s' = '%s' is not an activation", key, act);
    *out = (fm_act)a;
    return FM_OK;
}

fm_status fm_mlp_config_save(const fm_mlp_config *c, fm_st_writer *w)
{
    fm_status s = fm_st_writer_meta(w, "model", "mlp");
    if (s == FM_OK) s = fm__meta_put_num(w, "mlp.in_dim", c->in_dim);
    if (s == FM_OK) s = fm__meta_put_num(w, "mlp.out_dim", c->out_dim);
    if (s == FM_OK) s = fm__meta_put_widths(w, "mlp.widths", c->nhidden, c->width);
    if (s == FM_OK) s = fm_st_writer_meta(w, "mlp.act", fm_act_name(c->act));
    if (s == FM_OK) s = fm__meta_put_num(w, "mlp.time_input", c->time_input);
    if (s == FM_OK) s = fm__meta_put_num(w, "mlp.time_embed", c->time_embed);
    if (s == FM_OK && c->time_scale > 0) s = fm__meta_put_num(w, "mlp.time_scale", c->time_scale); /* only when set */
    return s;
}

fm_status fm_mlp_config_load(fm_mlp_config *c, const fm_st *st)
{
    const char *model = fm_st_meta(st, "model");
    if (!model) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata lacks 'model'");
    if (strcmp(model, "mlp") != 0)
        return fm__fail(FM_ERR_FORMAT, "checkpoint holds a '%s' model, not an mlp", model);
    fm_mlp_config t;
    memset(&t, 0, sizeof t);
    double in = 0, out = 0, ti = 0, te = 0;
    fm_status s = fm__meta_get_whole(st, "mlp.in_dim", 1, 1 << 20, &in);
    if (!s) s = fm__meta_get_whole(st, "mlp.out_dim", 1, 1 << 20, &out);
    if (!s) s = fm__meta_get_whole(st, "mlp.time_input", 0, 1, &ti);
    if (!s) s = fm__meta_get_whole(st, "mlp.time_embed", 0, 1 << 16, &te);
    if (!s) s = fm__meta_get_act(st, "mlp.act", &t.act);
    if (!s) s = fm__meta_get_widths(st, "mlp.widths", &t.nhidden, t.width);
    if (!s && fm_st_meta(st, "mlp.time_scale")) s = fm__meta_get_num(st, "mlp.time_scale", &t.time_scale);
    if (!s && !(t.time_scale >= 0 && t.time_scale <= 1e6))
        s = fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'mlp.time_scale' %g is outside 0..1e6", t.time_scale);
    if (s != FM_OK) return s;
    t.in_dim = (int)in;
    t.out_dim = (int)out;
    t.time_input = (int)ti;
    t.time_embed = (int)te;
    *c = t;
    return FM_OK;
}
