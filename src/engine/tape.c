/* tape.c - tensors on a tape, and the reverse-mode pass over them.
 *
 * Ops run eagerly (define by run): each computes its output at once and links
 * the output to its inputs and to the previous tensor on the tape. fm_backward
 * walks that list from the newest tensor to the oldest, so every tensor's
 * gradient is complete before its op passes it on.
 * Not here: the ops themselves (ops_*.c) and parameter storage (params.c).
 */
#include "internal.h"
#include "engine/profile.h"

#include <math.h>
#include <string.h>

fm_tape *fm_tape_new(size_t initial_bytes)
{
    fm_tape *tp = calloc(1, sizeof *tp);
    if (!tp) {
        fm__fail(FM_ERR_NOMEM, "out of memory creating a tape");
        return NULL;
    }
    fm__arena_init(&tp->arena, initial_bytes);
    return tp;
}

void fm_tape_free(fm_tape *tp)
{
    if (!tp) return;
    fm__arena_free(&tp->arena);
    free(tp);
}

void fm_tape_reset(fm_tape *tp)
{
    fm__prof_leave();
    fm__arena_reset(&tp->arena);
    tp->last = NULL;
    tp->status = FM_OK;
    tp->msg[0] = '\0';
}

fm__tape_mark fm__tape_get_mark(const fm_tape *tp)
{
    fm__tape_mark m = {fm__arena_get_mark(&tp->arena), tp->last};
    return m;
}

void fm__tape_rewind(fm_tape *tp, const fm__tape_mark *m)
{
    fm__arena_rewind(&tp->arena, &m->arena);
    tp->last = m->last;
}

fm_status fm_tape_status(const fm_tape *tp) { return tp->status; }

void fm_tape_stats(const fm_tape *tp, size_t *used, size_t *peak, size_t *mallocs)
{
    if (used) *used = tp->arena.used;
    if (peak) *peak = tp->arena.peak;
    if (mallocs) *mallocs = tp->arena.mallocs;
}

fm_tensor *fm__op_fail(fm_tape *tp, fm_status s, const char *fmt, ...)
{
    if (tp->status == FM_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tp->msg, sizeof tp->msg, fmt, ap);
        va_end(ap);
        fm__fail(s, "%s", tp->msg);
        tp->status = s;
    }
    return NULL;
}

void *fm__tape_alloc(fm_tape *tp, size_t bytes)
{
    void *p = fm__arena_alloc(&tp->arena, bytes);
    if (!p) fm__op_fail(tp, FM_ERR_NOMEM, "out of memory: the tape could not get %zu bytes", bytes);
    return p;
}

int fm__op_inputs_ok(fm_tape *tp, const char *op, fm_tensor *const *xs, int n)
{
    if (!tp) {
        fm__fail(FM_ERR_ARG, "%s: the tape is NULL", op);
        return 0;
    }
    if (tp->status != FM_OK) return 0;
    for (int i = 0; i < n; i++)
        if (!xs[i]) {
            fm__op_fail(tp, FM_ERR_ARG, "%s: input %d is NULL", op, i + 1);
            return 0;
        }
    return 1;
}

int fm__same_shape(const fm_tensor *a, const fm_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

void fm__fill_shape(fm_tensor *t, int ndim, const int *shape)
{
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < FM_MAX_DIMS; i++) {
        t->shape[i] = i < ndim ? shape[i] : 1;
        if (i < ndim) t->size *= (size_t)shape[i];
    }
}

/* Validate a shape and return its element count (0 with an error on failure). */
static size_t shape_check(fm_tape *tp, int ndim, const int *shape)
{
    if (ndim < 0 || ndim > FM_MAX_DIMS) {
        fm__op_fail(tp, FM_ERR_SHAPE, "tensor rank %d is outside 0..%d", ndim, FM_MAX_DIMS);
        return 0;
    }
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) {
            char b[96];
            fm__op_fail(tp, FM_ERR_SHAPE, "tensor shape %s has a non-positive dimension",
                        fm__shape_fmt(ndim, shape, b, sizeof b));
            return 0;
        }
        if (!fm__mul_ok(n, (size_t)shape[i], &n) || n > ((size_t)1 << 40)) {
            fm__op_fail(tp, FM_ERR_SHAPE, "tensor of %d dimensions is too large", ndim);
            return 0;
        }
    }
    return n;
}

static fm_tensor *tensor_alloc(fm_tape *tp, int ndim, const int *shape, int with_data)
{
    if (!tp) {
        fm__fail(FM_ERR_ARG, "tensor: the tape is NULL");
        return NULL;
    }
    if (tp->status != FM_OK) return NULL;
    size_t n = shape_check(tp, ndim, shape);
    if (!n) return NULL;
    fm_tensor *t = fm__tape_alloc(tp, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    fm__fill_shape(t, ndim, shape);
    if (with_data) {
        t->data = fm__tape_alloc(tp, n * sizeof(float));
        if (!t->data) return NULL;
    }
    t->prev = tp->last;
    tp->last = t;
    return t;
}

fm_tensor *fm_tensor_new(fm_tape *tp, int ndim, const int *shape)
{
    fm_tensor *t = tensor_alloc(tp, ndim, shape, 1);
    if (t) memset(t->data, 0, t->size * sizeof(float));
    return t;
}

fm_tensor *fm_tensor_2d(fm_tape *tp, int rows, int cols)
{
    int s[2] = {rows, cols};
    return fm_tensor_new(tp, 2, s);
}

fm_tensor *fm_tensor_wrap(fm_tape *tp, float *data, int ndim, const int *shape)
{
    if (!data) return tp ? fm__op_fail(tp, FM_ERR_ARG, "fm_tensor_wrap: data is NULL") : NULL;
    fm_tensor *t = tensor_alloc(tp, ndim, shape, 0);
    if (t) t->data = data;
    return t;
}

fm_tensor *fm_tensor_copy(fm_tape *tp, const float *data, int ndim, const int *shape)
{
    if (!data) return tp ? fm__op_fail(tp, FM_ERR_ARG, "fm_tensor_copy: data is NULL") : NULL;
    fm_tensor *t = tensor_alloc(tp, ndim, shape, 1);
    if (t) memcpy(t->data, data, t->size * sizeof(float));
    return t;
}

void fm_tensor_requires_grad(fm_tensor *t, int on)
{
    if (t) t->requires_grad = on ? 1 : 0;
}

static fm_tensor *node(fm_tape *tp, const fm_op *op, int ndim, const int *shape, fm_tensor *const *srcs, int nsrc,
                       float *data)
{
    fm__prof_enter(op->name, 0); /* its forward runs from here to the next interval */
    fm_tensor *t = tensor_alloc(tp, ndim, shape, data == NULL);
    if (!t) return NULL;
    if (data) t->data = data;
    t->op = op;
    t->nsrc = nsrc;
    t->src = fm__tape_alloc(tp, (size_t)(nsrc > 0 ? nsrc : 1) * sizeof *t->src);
    if (!t->src) return NULL;
    for (int i = 0; i < nsrc; i++) {
        t->src[i] = srcs[i];
        if (srcs[i]->requires_grad) t->requires_grad = 1;
    }
    return t;
}

fm_tensor *fm__node(fm_tape *tp, const fm_op *op, int ndim, const int *shape, fm_tensor *const *srcs, int nsrc)
{
    return node(tp, op, ndim, shape, srcs, nsrc, NULL);
}

fm_tensor *fm__node_on(fm_tape *tp, const fm_op *op, float *data, int ndim, const int *shape, fm_tensor *const *srcs,
                       int nsrc)
{
    return node(tp, op, ndim, shape, srcs, nsrc, data);
}

/* A spare gradient buffer: an op's output whose backward has run needs its
 * gradient no more, and a tensor further back of the same size takes it, so a
 * backward pass holds the gradients of its frontier, not of the whole tape. */
typedef struct spare {
    size_t bytes;
    struct spare *next;
} spare;
enum { SPARE_MIN_BYTES = 4096 };

static void *spare_take(fm_tape *tp, size_t bytes)
{
    for (spare **p = (spare **)&tp->spare; *p; p = &(*p)->next)
        if ((*p)->bytes == bytes) {
            spare *s = *p;
            *p = s->next;
            return s;
        }
    return NULL;
}
static void spare_give(fm_tape *tp, fm_tensor *t)
{
    size_t bytes = t->size * sizeof(float);
    if (!t->op || t->is_param || !t->grad || bytes < SPARE_MIN_BYTES) return;
    spare *s = (spare *)(void *)t->grad;
    s->bytes = bytes;
    s->next = tp->spare;
    tp->spare = s;
    t->grad = NULL; /* not kept: only leaves' gradients are read after a pass */
}

float *fm__grad_w(fm_tape *tp, fm_tensor *x, int *fresh)
{
    *fresh = 0;
    if (!x->grad) {
        FM_ASSERT(!x->is_param); /* parameters always have their flat buffer */
        size_t bytes = x->size * sizeof(float);
        x->grad = bytes >= SPARE_MIN_BYTES ? spare_take(tp, bytes) : NULL;
        if (!x->grad) x->grad = fm__tape_alloc(tp, bytes);
        *fresh = x->grad != NULL;
    }
    return x->grad;
}

float *fm__grad(fm_tape *tp, fm_tensor *x)
{
    int fresh;
    float *g = fm__grad_w(tp, x, &fresh);
    if (fresh) memset(g, 0, x->size * sizeof(float));
    return g;
}

fm_status fm_backward(fm_tape *tp, fm_tensor *y, const float *dy)
{
    if (!tp) return fm__fail(FM_ERR_ARG, "fm_backward: tape is NULL");
    if (tp->status != FM_OK)
        return fm__fail(tp->status, "fm_backward: the forward pass failed earlier: %s", tp->msg);
    if (!y) return fm__fail(FM_ERR_ARG, "fm_backward: output tensor is NULL");
    if (!dy && y->size != 1) {
        char b[96];
        return fm__fail(FM_ERR_SHAPE,
                        "fm_backward: output has shape %s; a cotangent is needed unless it is a scalar",
                        fm_shape_str(y, b, sizeof b));
    }
    fm__prof_leave();
    /* Gradients of tape tensors are fresh for every pass. */
    for (fm_tensor *t = tp->last; t; t = t->prev)
        if (!t->is_param) t->grad = NULL;
    if (!y->requires_grad) return FM_OK; /* nothing depends on a differentiable input */

    float *g = fm__grad(tp, y);
    if (!g) return tp->status;
    for (size_t i = 0; i < y->size; i++) g[i] = dy ? dy[i] : 1.0f;

    tp->spare = NULL;
    for (fm_tensor *t = tp->last; t; t = t->prev) {
        if (!t->op || !t->grad || !t->requires_grad) continue;
        fm__prof_enter(t->op->name, 1);
        t->op->backward(tp, t);
        fm__prof_leave();
        if (tp->status != FM_OK) {
            tp->spare = NULL;
            return fm__fail(tp->status, "backward of %s: %s", t->op->name, tp->msg);
        }
        spare_give(tp, t);
    }
    tp->spare = NULL; /* the buffers belong to the arena again: a rewind may hand them out */
    return FM_OK;
}
