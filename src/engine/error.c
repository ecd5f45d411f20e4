/* error.c - status names, the per-thread error message, the version, and small utilities
 * (overflow-checked sizes, shape formatting, the thread setting).
 *
 * Not here: any printing to stdout or exiting; the command-line tool decides
 * what a failure means for the process.
 */
#include "internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char fm__msg[1024];
static _Thread_local fm_status fm__status;

static const char *const status_names[FM_ERR_COUNT] = {
    "ok", "argument", "shape", "out of memory", "io", "format", "numeric", "state",
};

const char *fm_status_name(fm_status s)
{
    return (s >= 0 && s < FM_ERR_COUNT) ? status_names[s] : "unknown";
}

const char *fm_version(void) { return FM_VERSION; }

const char *fm_last_error(void) { return fm__msg; }
fm_status fm_last_status(void) { return fm__status; }

void fm_clear_error(void)
{
    fm__msg[0] = '\0';
    fm__status = FM_OK;
}

fm_status fm__fail(fm_status s, const char *fmt, ...)
{
    /* Format apart first: callers may pass fm_last_error() itself as an argument. */
    char buf[sizeof fm__msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(fm__msg, buf, sizeof buf);
    fm__status = s;
    return s;
}

void fm__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "flowmatch: internal error: assertion '%s' failed at %s:%d\n", expr, file,
            line);
    abort();
}

int fm__mul_ok(size_t n, size_t size, size_t *out)
{
    if (size != 0 && n > (size_t)-1 / size) {
        *out = 0;
        return 0;
    }
    *out = n * size;
    return 1;
}

const char *fm__name_of(const char *const *names, int n, int i) { return i >= 0 && i < n ? names[i] : "?"; }

int fm__name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

char *fm__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

const char *fm__shape_fmt(int ndim, const int *shape, char *buf, size_t len)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %d" : "%d", shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}

const char *fm_shape_str(const fm_tensor *t, char *buf, size_t len)
{
    if (!t) {
        snprintf(buf, len, "(null)");
        return buf;
    }
    return fm__shape_fmt(t->ndim, t->shape, buf, len);
}

/* ------------------------------------------------------------------ threads */

static int fm__nthreads = 0; /* 0: not set yet, use all */

void fm_set_threads(int n)
{
#ifdef _OPENMP
    fm__nthreads = n > 0 ? n : omp_get_num_procs();
#else
    (void)n;
    fm__nthreads = 1;
#endif
}

int fm_get_threads(void)
{
#ifdef _OPENMP
    return fm__nthreads > 0 ? fm__nthreads : omp_get_num_procs();
#else
    return 1;
#endif
}

static _Thread_local int fm__solo;

void fm__set_solo(int on) { fm__solo = on; }

int fm__threads_for(double work)
{
    if (fm__solo) return 1; /* one of several shards, spread over ranks */
#ifdef _OPENMP
    if (omp_in_parallel()) return 1; /* already one of several workers */
#endif
    int n = fm_get_threads();
    if (n <= 1 || work < FM__PAR_MIN_WORK) return 1;
    int by_work = (int)(work / FM__PAR_MIN_WORK);
    return by_work < n ? (by_work > 1 ? by_work : 1) : n;
}

int fm__threads_over(double work, int items)
{
    int nt = fm__threads_for(work);
    if (nt > items) nt = items;
    return nt < 1 ? 1 : nt;
}
