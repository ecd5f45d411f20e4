/* standardize.c - per-column standardisation (x - mean) / std, shared by every
 * model: set, apply both ways, and keep in checkpoint metadata as lists of
 * numbers ("0.5,-1.25").
 */
#include "internal.h"

#include <math.h>
#include <string.h>

void fm__stdz_free(fm__stdz *z)
{
    free(z->mean);
    free(z->std);
    z->mean = z->std = NULL;
}

fm_status fm__stdz_set(fm__stdz *z, int d, const float *mean, const float *std)
{
    fm__stdz_free(z);
    z->d = d;
    if (!mean) return FM_OK;
    for (int j = 0; j < d; j++)
        if (!isfinite(mean[j]) || !(std[j] > 0) || !isfinite(std[j]))
            return fm__fail(FM_ERR_NUMERIC, "standardisation of column %d: mean %g, std %g", j + 1, mean[j], std[j]);
    z->mean = malloc((size_t)d * sizeof(float));
    z->std = malloc((size_t)d * sizeof(float));
    if (!z->mean || !z->std) {
        fm__stdz_free(z);
        return fm__fail(FM_ERR_NOMEM, "out of memory");
    }
    memcpy(z->mean, mean, (size_t)d * sizeof(float));
    memcpy(z->std, std, (size_t)d * sizeof(float));
    return FM_OK;
}

void fm__stdz_to_model(const fm__stdz *z, float *x, int n)
{
    if (!z->mean) return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < z->d; j++) x[(size_t)i * z->d + j] = (x[(size_t)i * z->d + j] - z->mean[j]) / z->std[j];
}

void fm__stdz_to_data(const fm__stdz *z, float *x, int n)
{
    if (!z->mean) return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < z->d; j++) x[(size_t)i * z->d + j] = x[(size_t)i * z->d + j] * z->std[j] + z->mean[j];
}

static fm_status put_list(fm_st_writer *w, const char *key, const float *v, int n)
{
    size_t cap = (size_t)n * 20 + 1, o = 0;
    char *buf = malloc(cap);
    if (!buf) return fm__fail(FM_ERR_NOMEM, "out of memory");
    buf[0] = '\0';
    for (int i = 0; i < n; i++) o += (size_t)snprintf(buf + o, cap - o, i ? ",%.9g" : "%.9g", (double)v[i]);
    fm_status s = fm_st_writer_meta(w, key, buf);
    free(buf);
    return s;
}

static fm_status get_list(const fm_st *st, const char *key, float *out, int n)
{
    const char *v = fm_st_meta(st, key);
    if (!v) return fm__fail(FM_ERR_FORMAT, "checkpoint metadata lacks '%s'", key);
    const char *p = v;
    for (int i = 0; i < n; i++) {
        char *e;
        double d = strtod(p, &e);
        if (e == p || !isfinite(d) || (i + 1 < n && *e != ',') || (i + 1 == n && *e))
            return fm__fail(FM_ERR_FORMAT, "checkpoint metadata '%s' is not a list of %d numbers", key, n);
        out[i] = (float)d;
        p = e + 1;
    }
    return FM_OK;
}

fm_status fm__stdz_save(const fm__stdz *z, fm_st_writer *w, const char *prefix)
{
    if (!z->mean) return FM_OK;
    char k1[64], k2[64];
    snprintf(k1, sizeof k1, "%s.mean", prefix);
    snprintf(k2, sizeof k2, "%s.std", prefix);
    fm_status s = put_list(w, k1, z->mean, z->d);
    return s ? s : put_list(w, k2, z->std, z->d);
}

fm_status fm__stdz_load(fm__stdz *z, const fm_st *st, const char *prefix, int d)
{
    char k1[64], k2[64];
    snprintf(k1, sizeof k1, "%s.mean", prefix);
    snprintf(k2, sizeof k2, "%s.std", prefix);
    fm__stdz_free(z);
    z->d = d;
    if (!fm_st_meta(st, k1)) return FM_OK;
    float *m = malloc((size_t)d * 2 * sizeof(float));
    if (!m) return fm__fail(FM_ERR_NOMEM, "out of memory");
    fm_status s = get_list(st, k1, m, d);
    if (!s) s = get_list(st, k2, m + d, d);
    if (!s) s = fm__stdz_set(z, d, m, m + d);
    free(m);
    return s;
}
