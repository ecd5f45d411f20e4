/* params.c - named parameters in one flat buffer, gradients in another.
 *
 * Keeping every trainable value contiguous makes an optimizer step, gradient
 * clipping, an EMA update and a checkpoint one loop each. Each parameter is a
 * leaf tensor that views its slice of both buffers.
 * Not here: what the parameters mean (models/) or how they are updated (optim.c).
 */
#include "internal.h"

#include <math.h>
#include <string.h>

typedef struct {
    char *name;
    size_t off;
} pinfo;

struct fm_params {
    int n, cap;
    pinfo *info;        /* (cap) */
    fm_tensor *views;   /* (cap) leaf tensors over data / grad */
    float *data, *grad; /* (size) */
    size_t size;
    int requires_grad;
    const fm_params *of; /* a replica: data belongs to `of`, names too */
};

fm_params *fm_params_new(void)
{
    fm_params *p = calloc(1, sizeof *p);
    if (!p) fm__fail(FM_ERR_NOMEM, "out of memory creating a parameter set");
    else p->requires_grad = 1;
    return p;
}

static void relink(fm_params *p)
{
    for (int i = 0; i < p->n; i++) {
        p->views[i].data = p->data + p->info[i].off;
        p->views[i].grad = p->grad + p->info[i].off;
    }
}

void fm_params_free(fm_params *p)
{
    if (!p) return;
    if (!p->of) {
        for (int i = 0; i < p->n; i++) free(p->info[i].name);
        free(p->data);
    }
    free(p->info);
    free(p->views);
    free(p->grad);
    free(p);
}

fm_params *fm__params_replica(const fm_params *p)
{
    fm_params *r = calloc(1, sizeof *r);
    if (!r) goto oom;
    r->of = p;
    r->n = r->cap = p->n;
    r->size = p->size;
    r->requires_grad = 1;
    r->data = p->data;
    r->info = malloc((size_t)(p->n ? p->n : 1) * sizeof *r->info);
    r->views = malloc((size_t)(p->n ? p->n : 1) * sizeof *r->views);
    r->grad = calloc(p->size ? p->size : 1, sizeof(float));
    if (!r->info || !r->views || !r->grad) goto oom;
    memcpy(r->info, p->info, (size_t)p->n * sizeof *r->info);
    memcpy(r->views, p->views, (size_t)p->n * sizeof *r->views);
    for (int i = 0; i < r->n; i++) r->views[i].requires_grad = 1;
    relink(r);
    return r;
oom:
    fm_params_free(r);
    fm__fail(FM_ERR_NOMEM, "out of memory for a gradient replica");
    return NULL;
}

void fm__params_truncate(fm_params *p, int n)
{
    if (!p || p->of || n < 0 || n >= p->n) return;
    for (int i = n; i < p->n; i++) free(p->info[i].name);
    p->size = p->info[n].off;
    p->n = n;
}

/* A loader's bound on what a network built from a file's metadata may add:
 * at most the values the file holds (SIZE_MAX: none). Per thread. */
static _Thread_local size_t budget = SIZE_MAX;
static _Thread_local const char *budget_what;

void fm__params_budget(size_t max_values, const char *what)
{
    budget = max_values;
    budget_what = what;
}

void fm__params_budget_end(void) { budget = SIZE_MAX; }

int fm_params_add(fm_params *p, const char *name, int ndim, const int *shape)
{
    char b[96];
    if (!p || !name || !*name) {
        fm__fail(FM_ERR_ARG, "fm_params_add: missing parameter set or name");
        return -1;
    }
    FM_ASSERT(!p->of); /* replicas have a fixed layout */
    if (fm_params_find(p, name) >= 0) {
        fm__fail(FM_ERR_ARG, "parameter '%s' is already defined", name);
        return -1;
    }
    if (ndim < 1 || ndim > FM_MAX_DIMS) {
        fm__fail(FM_ERR_SHAPE, "parameter '%s': rank %d is outside 1..%d", name, ndim, FM_MAX_DIMS);
        return -1;
    }
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0 || !fm__mul_ok(n, (size_t)shape[i], &n) || n > ((size_t)1 << 32)) {
            fm__fail(FM_ERR_SHAPE, "parameter '%s': bad shape %s", name,
                     fm__shape_fmt(ndim, shape, b, sizeof b));
            return -1;
        }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        pinfo *ni = realloc(p->info, (size_t)cap * sizeof *ni);
        if (!ni) goto oom;
        p->info = ni;
        fm_tensor *nv = realloc(p->views, (size_t)cap * sizeof *nv);
        if (!nv) goto oom;
        p->views = nv;
        p->cap = cap;
    }
    size_t total = p->size + n;
    if (total > budget) {
        fm__fail(FM_ERR_FORMAT, "%s: its metadata describe a network of more than %zu parameters (at '%s'), but the "
                                "file holds only %zu values", budget_what ? budget_what : "checkpoint", budget, name,
                 budget);
        return -1;
    }
    float *nd = realloc(p->data, total * sizeof(float));
    if (!nd) goto oom;
    p->data = nd;
    float *ng = realloc(p->grad, total * sizeof(float));
    if (!ng) goto oom;
    p->grad = ng;
    char *nm = fm__strdup(name);
    if (!nm) goto oom;
    memset(p->data + p->size, 0, n * sizeof(float));
    memset(p->grad + p->size, 0, n * sizeof(float));
    int i = p->n++;
    p->info[i].name = nm;
    p->info[i].off = p->size;
    fm_tensor *t = &p->views[i];
    memset(t, 0, sizeof *t);
    fm__fill_shape(t, ndim, shape);
    t->is_param = 1;
    t->requires_grad = (unsigned char)p->requires_grad;
    p->size = total;
    relink(p);
    return i;
oom:
    relink(p);
    fm__fail(FM_ERR_NOMEM, "out of memory adding parameter '%s'", name);
    return -1;
}

int fm_params_count(const fm_params *p) { return p->n; }
size_t fm_params_size(const fm_params *p) { return p->size; }
float *fm_params_data(fm_params *p) { return p->data; }
float *fm_params_grad(fm_params *p) { return p->grad; }

fm_tensor *fm_params_tensor(fm_params *p, int i)
{
    FM_ASSERT(i >= 0 && i < p->n);
    return &p->views[i];
}

const char *fm_params_name(const fm_params *p, int i)
{
    FM_ASSERT(i >= 0 && i < p->n);
    return p->info[i].name;
}

size_t fm__params_offset(const fm_params *p, int i)
{
    FM_ASSERT(i >= 0 && i < p->n);
    return p->info[i].off;
}

int fm_params_find(const fm_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->info[i].name, name) == 0) return i;
    return -1;
}

void fm_params_zero_grad(fm_params *p)
{
    if (p->size) memset(p->grad, 0, p->size * sizeof(float));
}

int fm__params_get_requires_grad(const fm_params *p) { return p->requires_grad; }

void fm_params_requires_grad(fm_params *p, int on)
{
    p->requires_grad = on ? 1 : 0;
    for (int i = 0; i < p->n; i++) p->views[i].requires_grad = (unsigned char)p->requires_grad;
}

void fm_init_linear(fm_rng *r, fm_tensor *w, fm_tensor *b)
{
    /* kaiming_uniform_(a = sqrt 5): gain sqrt(2 / (1 + 5)), bound gain sqrt(3 / fan_in)
     * = 1 / sqrt(fan_in); the bias uses the same bound. */
    int fan_in = w->ndim >= 2 ? (int)(w->size / (size_t)w->shape[0]) : (int)w->size;
    float bound = (float)(1.0 / sqrt((double)fan_in));
    fm_rng_uniform_fill(r, w->data, w->size, -bound, bound);
    if (b) fm_rng_uniform_fill(r, b->data, b->size, -bound, bound);
}
