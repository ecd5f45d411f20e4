/* csv.c - numeric CSV tables: read with line-numbered errors, write.
 *
 * A table is rows of comma-separated numbers, all rows the same width. The
 * first line is a header when any of its fields is not a number. Blank lines
 * and lines starting with '#' are skipped; Windows line ends are accepted.
 * The first line is a header when all its fields are names (none a number,
 * none empty); numbers are decimal (no hex, no inf or nan).
 * Not a general CSV parser: no quoted fields, no missing values.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void fm_table_free(fm_table *t)
{
    if (!t) return;
    free(t->data);
    if (t->names)
        for (int j = 0; j < t->cols; j++) free(t->names[j]);
    free(t->names);
    memset(t, 0, sizeof *t);
}

/* Trim spaces and tabs in place; returns the start. */
static char *trim(char *s, char *e)
{
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *e = '\0';
    return s;
}

/* A decimal number: sign, digits, point, exponent; no hex, inf or nan. */
static int decimal(const char *s)
{
    if (*s == '+' || *s == '-') s++;
    int digits = 0;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') s++, digits++;
    }
    if (!digits) return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == '\0';
}

static int parse_num(const char *s, float *out)
{
    if (!*s || !decimal(s)) return 0;
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e == s || *e || !isfinite(v) || fabs(v) > 3.4e38) return 0;
    *out = (float)v;
    return 1;
}

fm_status fm_csv_read(const char *path, fm_table *t)
{
    memset(t, 0, sizeof *t);
    unsigned char *buf;
    size_t len;
    fm_status s = fm__read_file(path, &buf, &len);
    if (s != FM_OK) return s;
    char *text = realloc(buf, len + 1);
    if (!text) {
        free(buf);
        return fm__fail(FM_ERR_NOMEM, "%s: out of memory", path);
    }
    text[len] = '\0';
    size_t cap = 0, n = 0;
    float *data = NULL;
    int cols = -1, line = 0, rows = 0, header_done = 0, fcap = 0;
    char **fv = NULL;   /* (fcap) fields of the current line */
    float *vals = NULL; /* (fcap) their values */
    char *p = text, *end = text + len;
#define FAIL(...)                                                                                               \
    do {                                                                                                        \
        char m_[300];                                                                                           \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                                   \
        s = fm__fail(FM_ERR_FORMAT, "%s:%d: %s", path, line, m_);                                               \
        goto out;                                                                                               \
    } while (0)
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line++;
        char *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r') le--;
        if (le > p && memchr(p, '\0', (size_t)(le - p))) FAIL("line contains a NUL byte (binary file?)");
        char *ln = trim(p, le);
        p = next;
        if (!*ln || *ln == '#') continue;
        /* split into trimmed fields, in place */
        int nf = 1;
        for (char *q = ln; *q; q++) nf += *q == ',';
        if (cols >= 0 && nf != cols) FAIL("row has %d fields, expected %d", nf, cols);
        if (nf > fcap) {
            char **nfv = realloc(fv, (size_t)nf * sizeof *nfv);
            float *nv = realloc(vals, (size_t)nf * sizeof *nv);
            if (nfv) fv = nfv;
            if (nv) vals = nv;
            if (!nfv || !nv) FAIL("out of memory");
            fcap = nf;
        }
        char *q = ln;
        for (int j = 0; j < nf; j++) {
            char *c = strchr(q, ',');
            char *fe = c ? c : q + strlen(q);
            fv[j] = trim(q, fe);
            q = c ? c + 1 : fe;
        }
        int bad = -1, numeric = 0, empty = 0;
        for (int j = 0; j < nf; j++) {
            if (parse_num(fv[j], &vals[j])) numeric++;
            else if (bad < 0) bad = j;
            empty += !*fv[j];
        }
        /* The first line is a header only when it is all names: no number, no empty cell. */
        if (bad >= 0 && !header_done && !numeric && !empty) {
            /* a header: keep the names */
            cols = nf;
            t->names = calloc((size_t)nf, sizeof(char *));
            if (!t->names) FAIL("out of memory");
            t->cols = nf; /* so fm_table_free releases the names on a later error */
            for (int j = 0; j < nf; j++)
                if (!(t->names[j] = fm__strdup(fv[j]))) FAIL("out of memory");
            header_done = 1;
            continue;
        }
        header_done = 1;
        if (bad >= 0) FAIL("field %d '%.40s' is not a finite number", bad + 1, fv[bad]);
        cols = nf;
        if (n + (size_t)nf > cap) {
            size_t nc = cap ? cap * 2 : 1024;
            while (nc < n + (size_t)nf) nc *= 2;
            float *nd = realloc(data, nc * sizeof(float));
            if (!nd) FAIL("out of memory");
            data = nd;
            cap = nc;
        }
        memcpy(data + n, vals, (size_t)nf * sizeof(float));
        n += (size_t)nf;
        rows++;
    }
    if (rows == 0) {
        s = fm__fail(FM_ERR_FORMAT, "%s: no data rows%s", path, len == 0 ? " (the file is empty)" : "");
        goto out;
    }
    t->data = data;
    t->rows = rows;
    t->cols = cols;
    data = NULL;
    s = FM_OK;
out:
#undef FAIL
    free(fv);
    free(vals);
    free(data);
    free(text);
    if (s != FM_OK) fm_table_free(t);
    return s;
}

fm_status fm_csv_write(const char *path, const float *data, int rows, int cols, const char *const *names)
{
    fm__afile af;
    fm_status s = fm__afile_open(&af, path);
    if (s != FM_OK) return s;
    char buf[64];
    if (names) {
        for (int j = 0; j < cols; j++) {
            fm__afile_write(&af, names[j], strlen(names[j]));
            fm__afile_write(&af, j + 1 < cols ? "," : "\n", 1);
        }
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            int k = snprintf(buf, sizeof buf, "%.9g%c", (double)data[(size_t)i * cols + j], j + 1 < cols ? ',' : '\n');
            fm__afile_write(&af, buf, (size_t)k);
        }
    return fm__afile_commit(&af);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

const char *fm_points_file(const char *spec)
{
    if (!spec) return NULL;
    if (!strncmp(spec, "csv:", 4) || !strncmp(spec, "npy:", 4)) return spec[4] ? spec + 4 : NULL;
    return ends_with(spec, ".csv") || ends_with(spec, ".npy") ? spec : NULL;
}

fm_status fm_points_read(const char *spec, fm_table *t)
{
    memset(t, 0, sizeof *t);
    const char *path = fm_points_file(spec);
    if (!path) return fm__fail(FM_ERR_ARG, "%s: expected a .npy or .csv file (or csv:FILE, npy:FILE)", spec ? spec : "");
    int npy = !strncmp(spec, "npy:", 4) || (strncmp(spec, "csv:", 4) && ends_with(path, ".npy"));
    if (npy) {
        int nd;
        int64_t sh[4];
        float *d;
        fm_status s = fm_npy_read(path, &d, &nd, sh);
        if (s != FM_OK) return s;
        if (nd < 1 || nd > 2 || sh[0] < 1 || sh[0] > 1 << 30 || (nd == 2 && (sh[1] < 1 || sh[1] > 1 << 20))) {
            free(d);
            return fm__fail(FM_ERR_SHAPE, "%s: expected an array of points (rows, dims), got rank %d", path, nd);
        }
        t->data = d;
        t->rows = (int)sh[0];
        t->cols = nd == 2 ? (int)sh[1] : 1;
        return FM_OK;
    }
    return fm_csv_read(path, t);
}
