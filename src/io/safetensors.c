/* safetensors.c - reading and writing the safetensors format.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"k": "v", ...},
 *    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * and then the data section, which the tensors must cover exactly: offsets are
 * relative to it, sorted by begin they are contiguous, and nothing is left over.
 * The reader checks all of that and names the first thing wrong; it converts
 * F64, F16 and BF16 to float32. The writer writes F32 only, pads the header
 * with spaces to a multiple of 8 bytes, and replaces the target atomically.
 */
#include "io/json.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

uint32_t fm__crc32(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

#define ST_CRC_KEY "flowmatch.crc32" /* CRC-32 of the data section, 8 hex digits */

#define ST_MAX_DIMS FM_ST_MAX_DIMS
#define ST_MAX_HEADER (100u << 20)

typedef struct {
    const char *name;
    fm_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

struct fm_st {
    char *file;                 /* for messages */
    unsigned char *bytes;       /* the whole file */
    size_t len;
    const unsigned char *data;  /* start of the data section */
    size_t data_len;
    int n;
    st_entry *e;                /* (n) in header order */
    int nmeta;
    const char **mkey, **mval;  /* (nmeta) */
    fm__arena arena;            /* JSON tree, entries and strings */
};

static const struct {
    const char *name;
    int size;
} dtypes[FM_DT_COUNT] = {
    [FM_DT_F64] = {"F64", 8},   [FM_DT_F32] = {"F32", 4},   [FM_DT_F16] = {"F16", 2},
    [FM_DT_BF16] = {"BF16", 2}, [FM_DT_I64] = {"I64", 8},   [FM_DT_I32] = {"I32", 4},
    [FM_DT_I16] = {"I16", 2},   [FM_DT_I8] = {"I8", 1},     [FM_DT_U8] = {"U8", 1},
    [FM_DT_BOOL] = {"BOOL", 1}, [FM_DT_U16] = {"U16", 2},   [FM_DT_U32] = {"U32", 4},
    [FM_DT_U64] = {"U64", 8},   [FM_DT_F8_E4M3] = {"F8_E4M3", 1}, [FM_DT_F8_E5M2] = {"F8_E5M2", 1},
};

const char *fm_dtype_name(fm_dtype d) { return (d >= 0 && d < FM_DT_COUNT) ? dtypes[d].name : "?"; }

static int host_is_le(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static uint64_t rd_le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static uint16_t rd_le16(const unsigned char *b) { return (uint16_t)(b[0] | (b[1] << 8)); }

static uint32_t rd_le32(const unsigned char *b)
{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE half to float, subnormals, infinities and NaN included. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    uint32_t u;
    if (exp == 0x1F) {
        u = sign | 0x7F800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    return bits_f32(u);
}

void fm_st_free(fm_st *st)
{
    if (!st) return;
    fm__arena_free(&st->arena);
    free(st->bytes);
    free(st->file);
    free(st);
}

static fm_st *st_fail(fm_st *st, fm_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static fm_st *st_fail(fm_st *st, fm_status s, const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fm__fail(s, "%s: %s", st->file, buf);
    fm_st_free(st);
    return NULL;
}

static int parse_dtype(const char *s)
{
    for (int i = 0; i < FM_DT_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) return i;
    return -1;
}

static int cmp_begin(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The member named key; *dup set if it appears more than once. */
static const fm__json *member(const fm__json *obj, const char *key, int *dup)
{
    const fm__json *found = NULL;
    for (const fm__json *c = obj->child; c; c = c->next)
        if (strcmp(c->key, key) == 0) {
            if (found) *dup = 1;
            found = c;
        }
    return found;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Fill e from the header object j; returns an error message or NULL. */
static const char *parse_entry(const fm__json *j, st_entry *e, char *msg, size_t len)
{
    if (j->kind != FM__J_OBJ) return "entry is not an object";
    int dup = 0;
    const fm__json *dt = member(j, "dtype", &dup), *sh = member(j, "shape", &dup), *of = member(j, "data_offsets", &dup);
    if (dup) return "entry repeats \"dtype\", \"shape\" or \"data_offsets\"";
    if (!dt || dt->kind != FM__J_STR) return "missing or non-string \"dtype\"";
    if (!sh || sh->kind != FM__J_ARR) return "missing or non-array \"shape\"";
    if (!of || of->kind != FM__J_ARR) return "missing or non-array \"data_offsets\"";
    int d = parse_dtype(dt->str);
    if (d < 0) {
        snprintf(msg, len, "unknown dtype '%s'", dt->str);
        return msg;
    }
    e->dtype = (fm_dtype)d;
    if (sh->count > ST_MAX_DIMS) {
        snprintf(msg, len, "shape has %d dimensions, more than %d", sh->count, ST_MAX_DIMS);
        return msg;
    }
    e->ndim = 0;
    for (const fm__json *c = sh->child; c; c = c->next) {
        uint64_t v;
        if (!fm__json_uint(c, &v) || v > INT64_MAX) return "shape holds something other than non-negative integers";
        e->shape[e->ndim++] = (int64_t)v;
    }
    if (of->count != 2) return "data_offsets must hold two integers";
    if (!fm__json_uint(of->child, &e->begin) || !fm__json_uint(of->child->next, &e->end))
        return "data_offsets must hold two non-negative integers";
    if (e->end < e->begin) {
        snprintf(msg, len, "data_offsets [%llu, %llu] end before they begin",
                 (unsigned long long)e->begin, (unsigned long long)e->end);
        return msg;
    }
    return NULL;
}

static void shape_text(const st_entry *e, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < e->ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)e->shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* Parse a file image, taking ownership of bytes (malloc'ed). */
static fm_st *parse_owned(unsigned char *bytes, size_t len, const char *name)
{
    fm_st *st = calloc(1, sizeof *st);
    if (!st) {
        free(bytes);
        fm__fail(FM_ERR_NOMEM, "out of memory reading %s", name);
        return NULL;
    }
    fm__arena_init(&st->arena, 1 << 16);
    st->bytes = bytes;
    st->len = len;
    st->file = fm__strdup(name ? name : "(memory)");
    if (!st->file) return st_fail(st, FM_ERR_NOMEM, "out of memory");

    if (len < 8)
        return st_fail(st, FM_ERR_FORMAT, "file is %zu bytes, too short to hold the 8-byte header length", len);
    uint64_t hlen = rd_le64(st->bytes);
    if (hlen > len - 8) {
        if (len == 8 || st->bytes[8] != '{') /* not even the start of a safetensors header */
            return st_fail(st, FM_ERR_FORMAT, "not a safetensors file (it does not start with a header length and "
                                              "'{'; %zu bytes)", len);
        return st_fail(st, FM_ERR_FORMAT, "header length %llu runs past the end of the file (%zu bytes)",
                       (unsigned long long)hlen, len);
    }
    if (hlen > ST_MAX_HEADER)
        return st_fail(st, FM_ERR_FORMAT, "header length %llu exceeds the %u-byte limit",
                       (unsigned long long)hlen, ST_MAX_HEADER);
    const char *text = (const char *)st->bytes + 8;
    if (hlen == 0 || text[0] != '{')
        return st_fail(st, FM_ERR_FORMAT, "header does not start with '{'");
    char jerr[160];
    const fm__json *root = fm__json_parse(text, (size_t)hlen, &st->arena, jerr, sizeof jerr);
    if (!root) return st_fail(st, FM_ERR_FORMAT, "header: %s", jerr);
    if (root->kind != FM__J_OBJ) return st_fail(st, FM_ERR_FORMAT, "header is not a JSON object");
    st->data = st->bytes + 8 + hlen;
    st->data_len = len - 8 - (size_t)hlen;

    int ntens = 0;
    const fm__json *meta = NULL;
    for (const fm__json *c = root->child; c; c = c->next) {
        if (strcmp(c->key, "__metadata__") == 0) {
            if (meta) return st_fail(st, FM_ERR_FORMAT, "header has two \"__metadata__\" entries");
            meta = c;
        } else {
            ntens++;
        }
    }
    st->e = fm__arena_alloc(&st->arena, sizeof(st_entry) * (size_t)(ntens ? ntens : 1));
    st_entry **order = fm__arena_alloc(&st->arena, sizeof(st_entry *) * (size_t)(ntens ? ntens : 1));
    if (!st->e || !order) return st_fail(st, FM_ERR_NOMEM, "out of memory");

    if (meta) {
        if (meta->kind != FM__J_OBJ)
            return st_fail(st, FM_ERR_FORMAT, "\"__metadata__\" is not an object of strings");
        st->mkey = fm__arena_alloc(&st->arena, sizeof(char *) * (size_t)(meta->count + 1));
        st->mval = fm__arena_alloc(&st->arena, sizeof(char *) * (size_t)(meta->count + 1));
        if (!st->mkey || !st->mval) return st_fail(st, FM_ERR_NOMEM, "out of memory");
        for (const fm__json *c = meta->child; c; c = c->next) {
            if (c->kind != FM__J_STR)
                return st_fail(st, FM_ERR_FORMAT, "metadata value of '%s' is not a string", c->key);
            st->mkey[st->nmeta] = c->key;
            st->mval[st->nmeta++] = c->str;
        }
    }

    char msg[256], s1[160];
    for (const fm__json *c = root->child; c; c = c->next) {
        if (c == meta) continue;
        st_entry *e = &st->e[st->n];
        e->name = c->key;
        const char *bad = parse_entry(c, e, msg, sizeof msg);
        if (bad) return st_fail(st, FM_ERR_FORMAT, "tensor '%s': %s", c->key, bad);
        uint64_t numel = 1;
        int overflow = 0;
        for (int d = 0; d < e->ndim; d++) {
            uint64_t s = (uint64_t)e->shape[d];
            if (s && numel > UINT64_MAX / s) overflow = 1;
            else numel *= s;
        }
        uint64_t size = (uint64_t)dtypes[e->dtype].size;
        shape_text(e, s1, sizeof s1);
        if (overflow || numel > UINT64_MAX / size)
            return st_fail(st, FM_ERR_FORMAT, "tensor '%s': shape %s is too large", e->name, s1);
        if (numel * size != e->end - e->begin)
            return st_fail(st, FM_ERR_FORMAT,
                           "tensor '%s': shape %s of %s needs %llu bytes but data_offsets [%llu, %llu] hold %llu",
                           e->name, s1, dtypes[e->dtype].name, (unsigned long long)(numel * size),
                           (unsigned long long)e->begin, (unsigned long long)e->end,
                           (unsigned long long)(e->end - e->begin));
        if (e->end > st->data_len)
            return st_fail(st, FM_ERR_FORMAT,
                           "tensor '%s': data_offsets [%llu, %llu] run past the data section (%zu bytes)",
                           e->name, (unsigned long long)e->begin, (unsigned long long)e->end, st->data_len);
        order[st->n] = e;
        st->n++;
    }

    /* Duplicates, found by sorting (n log n even for hostile headers). */
    if (st->nmeta > 1) {
        const char **keys = fm__arena_alloc(&st->arena, sizeof(char *) * (size_t)st->nmeta);
        if (!keys) return st_fail(st, FM_ERR_NOMEM, "out of memory");
        memcpy(keys, st->mkey, sizeof(char *) * (size_t)st->nmeta);
        qsort(keys, (size_t)st->nmeta, sizeof *keys, cmp_str);
        for (int k = 1; k < st->nmeta; k++)
            if (!strcmp(keys[k - 1], keys[k])) return st_fail(st, FM_ERR_FORMAT, "metadata key '%s' appears twice", keys[k]);
    }
    qsort(order, (size_t)st->n, sizeof *order, cmp_name);
    for (int k = 1; k < st->n; k++)
        if (!strcmp(order[k - 1]->name, order[k]->name))
            return st_fail(st, FM_ERR_FORMAT, "tensor '%s' appears twice", order[k]->name);

    /* Sorted by offset, the tensors must tile the data section exactly. */
    qsort(order, (size_t)st->n, sizeof *order, cmp_begin);
    uint64_t at = 0;
    for (int k = 0; k < st->n; k++) {
        const st_entry *e = order[k];
        if (e->begin < at)
            return st_fail(st, FM_ERR_FORMAT, "tensors '%s' and '%s' overlap (bytes %llu to %llu and %llu to %llu)",
                           order[k - 1]->name, e->name, (unsigned long long)order[k - 1]->begin,
                           (unsigned long long)order[k - 1]->end, (unsigned long long)e->begin,
                           (unsigned long long)e->end);
        if (e->begin > at)
            return st_fail(st, FM_ERR_FORMAT, "gap in the data section: bytes %llu to %llu belong to no tensor",
                           (unsigned long long)at, (unsigned long long)e->begin);
        at = e->end;
    }
    if (at != st->data_len)
        return st_fail(st, FM_ERR_FORMAT, "the data section has %zu bytes but the tensors cover %llu",
                       st->data_len, (unsigned long long)at);
    /* A file written by flowmatch carries the CRC-32 of its data: a flipped byte is caught here. */
    const char *crc = fm_st_meta(st, ST_CRC_KEY);
    if (crc) {
        char *end = NULL;
        unsigned long want = strtoul(crc, &end, 16);
        if (end == crc || *end || strlen(crc) != 8)
            return st_fail(st, FM_ERR_FORMAT, "metadata '%s' = '%s' is not 8 hex digits", ST_CRC_KEY, crc);
        uint32_t got = fm__crc32((uint32_t)crc32(0L, Z_NULL, 0), st->data, st->data_len);
        if (got != (uint32_t)want)
            return st_fail(st, FM_ERR_FORMAT, "the tensor data are damaged: their CRC-32 is %08x, the file recorded %s",
                           got, crc);
    }
    return st;
}

fm_st *fm_st_parse(const void *bytes, size_t len, const char *name)
{
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) {
        fm__fail(FM_ERR_NOMEM, "out of memory reading %s", name ? name : "(memory)");
        return NULL;
    }
    memcpy(copy, bytes, len);
    return parse_owned(copy, len, name);
}

fm_st *fm_st_load(const char *path)
{
    unsigned char *buf;
    size_t len;
    if (fm__read_file(path, &buf, &len) != FM_OK) return NULL;
    return parse_owned(buf, len, path);
}

int fm_st_count(const fm_st *st) { return st->n; }

size_t fm__st_values(const fm_st *st)
{
    size_t total = 0;
    for (int i = 0; i < st->n; i++) {
        size_t v = 1;
        for (int d = 0; d < st->e[i].ndim; d++) v *= (size_t)st->e[i].shape[d]; /* each within the file's bytes */
        total += v;
    }
    return total;
}

const char *fm_st_entry(const fm_st *st, int i, fm_dtype *dtype, int *ndim, int64_t *shape)
{
    if (i < 0 || i >= st->n) return NULL;
    const st_entry *e = &st->e[i];
    if (dtype) *dtype = e->dtype;
    if (ndim) *ndim = e->ndim;
    if (shape) memcpy(shape, e->shape, sizeof(int64_t) * (size_t)e->ndim);
    return e->name;
}

int fm_st_find(const fm_st *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->e[i].name, name) == 0) return i;
    return -1;
}

const char *fm_st_meta(const fm_st *st, const char *key)
{
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->mkey[i], key) == 0) return st->mval[i];
    return NULL;
}

int fm_st_meta_count(const fm_st *st) { return st->nmeta; }

const char *fm_st_meta_at(const fm_st *st, int i, const char **value)
{
    if (i < 0 || i >= st->nmeta) return NULL;
    if (value) *value = st->mval[i];
    return st->mkey[i];
}

fm_status fm_st_read(const fm_st *st, const char *name, float *out, int ndim, const int *shape)
{
    int i = fm_st_find(st, name);
    if (i < 0) return fm__fail(FM_ERR_FORMAT, "%s: tensor '%s' is missing", st->file, name);
    const st_entry *e = &st->e[i];
    int same = e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    if (!same) {
        char s1[160], s2[96];
        shape_text(e, s1, sizeof s1);
        return fm__fail(FM_ERR_SHAPE, "%s: tensor '%s' has shape %s but %s is expected", st->file, name,
                        s1, fm__shape_fmt(ndim, shape, s2, sizeof s2));
    }
    const unsigned char *b = st->data + e->begin;
    size_t n = (size_t)((e->end - e->begin) / (uint64_t)dtypes[e->dtype].size);
    switch (e->dtype) {
    case FM_DT_F32:
        if (host_is_le()) memcpy(out, b, n * sizeof(float));
        else
            for (size_t k = 0; k < n; k++) out[k] = bits_f32(rd_le32(b + 4 * k));
        break;
    case FM_DT_F64:
        for (size_t k = 0; k < n; k++) {
            uint64_t u = rd_le64(b + 8 * k);
            double d;
            memcpy(&d, &u, sizeof d);
            out[k] = (float)d;
        }
        break;
    case FM_DT_F16:
        for (size_t k = 0; k < n; k++) out[k] = half_to_float(rd_le16(b + 2 * k));
        break;
    case FM_DT_BF16:
        for (size_t k = 0; k < n; k++) out[k] = bits_f32((uint32_t)rd_le16(b + 2 * k) << 16);
        break;
    default:
        return fm__fail(FM_ERR_FORMAT, "%s: tensor '%s' has dtype %s; only F32, F64, F16 and BF16 can be read",
                        st->file, name, dtypes[e->dtype].name);
    }
    return FM_OK;
}

/* ------------------------------------------------------------------ writer */

typedef struct {
    char *name;
    int ndim;
    int shape[FM_MAX_DIMS];
    const float *data;
    size_t n;
} w_entry;

struct fm_st_writer {
    int n, cap;
    w_entry *e;
    int nmeta, mcap;
    char **mkey, **mval;
};

fm_st_writer *fm_st_writer_new(void)
{
    fm_st_writer *w = calloc(1, sizeof *w);
    if (!w) fm__fail(FM_ERR_NOMEM, "out of memory creating a safetensors writer");
    return w;
}

void fm_st_writer_free(fm_st_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->e);
    free(w->mkey);
    free(w->mval);
    free(w);
}

fm_status fm_st_writer_add(fm_st_writer *w, const char *name, int ndim, const int *shape, const float *data)
{
    if (!name || !*name || strcmp(name, "__metadata__") == 0)
        return fm__fail(FM_ERR_ARG, "safetensors: invalid tensor name '%s'", name ? name : "");
    if (ndim < 0 || ndim > FM_MAX_DIMS)
        return fm__fail(FM_ERR_ARG, "safetensors: tensor '%s' has rank %d, outside 0..%d", name, ndim, FM_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return fm__fail(FM_ERR_ARG, "safetensors: tensor '%s' added twice", name);
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0 || !fm__mul_ok(n, (size_t)shape[d], &n))
            return fm__fail(FM_ERR_SHAPE, "safetensors: tensor '%s' has a bad shape", name);
    if (!data && n > 0) return fm__fail(FM_ERR_ARG, "safetensors: tensor '%s' has no data", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        w_entry *ne = realloc(w->e, (size_t)cap * sizeof *ne);
        if (!ne) return fm__fail(FM_ERR_NOMEM, "out of memory");
        w->e = ne;
        w->cap = cap;
    }
    w_entry *e = &w->e[w->n];
    e->name = fm__strdup(name);
    if (!e->name) return fm__fail(FM_ERR_NOMEM, "out of memory");
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->data = data;
    e->n = n;
    w->n++;
    return FM_OK;
}

fm_status fm_st_writer_meta(fm_st_writer *w, const char *key, const char *value)
{
    if (!key || !*key || !value) return fm__fail(FM_ERR_ARG, "safetensors: empty metadata key or value");
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->mkey[i], key) == 0) {
            char *v = fm__strdup(value);
            if (!v) return fm__fail(FM_ERR_NOMEM, "out of memory");
            free(w->mval[i]);
            w->mval[i] = v;
            return FM_OK;
        }
    if (w->nmeta == w->mcap) {
        int cap = w->mcap ? 2 * w->mcap : 16;
        char **nk = realloc(w->mkey, (size_t)cap * sizeof *nk);
        if (!nk) return fm__fail(FM_ERR_NOMEM, "out of memory");
        w->mkey = nk;
        char **nv = realloc(w->mval, (size_t)cap * sizeof *nv);
        if (!nv) return fm__fail(FM_ERR_NOMEM, "out of memory");
        w->mval = nv;
        w->mcap = cap;
    }
    char *k = fm__strdup(key), *v = fm__strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return fm__fail(FM_ERR_NOMEM, "out of memory");
    }
    w->mkey[w->nmeta] = k;
    w->mval[w->nmeta++] = v;
    return FM_OK;
}

/* The header JSON into buf (cap bytes); returns its full length. */
static size_t header_text(const fm_st_writer *w, char *buf, size_t cap)
{
    size_t pos = 0;
#define PUTS(s)                                                                                    \
    do {                                                                                           \
        for (const char *q_ = (s); *q_; q_++) {                                                    \
            if (pos + 1 < cap) buf[pos] = *q_;                                                     \
            pos++;                                                                                 \
        }                                                                                          \
    } while (0)
    PUTS("{");
    if (w->nmeta) {
        PUTS("\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            if (i) PUTS(",");
            fm__json_put_string(buf, cap, &pos, w->mkey[i]);
            PUTS(":");
            fm__json_put_string(buf, cap, &pos, w->mval[i]);
        }
        PUTS("}");
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const w_entry *e = &w->e[i];
        char num[64];
        if (i || w->nmeta) PUTS(",");
        fm__json_put_string(buf, cap, &pos, e->name);
        PUTS(":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%d" : "%d", e->shape[d]);
            PUTS(num);
        }
        uint64_t end = off + (uint64_t)e->n * 4;
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)end);
        PUTS(num);
        off = end;
    }
    PUTS("}");
#undef PUTS
    if (cap) buf[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

fm_status fm_st_writer_save(fm_st_writer *w, const char *path)
{
    /* the CRC-32 of the data as they will be written (little-endian floats, in order) */
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    int little = host_is_le();
    for (int i = 0; i < w->n; i++) {
        const w_entry *e = &w->e[i];
        if (little) {
            crc = fm__crc32(crc, (const unsigned char *)e->data, e->n * sizeof(float));
        } else {
            for (size_t k = 0; k < e->n; k++) {
                uint32_t u;
                memcpy(&u, &e->data[k], 4);
                unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                                      (unsigned char)(u >> 24)};
                crc = fm__crc32(crc, b, 4);
            }
        }
    }
    char hex[16];
    snprintf(hex, sizeof hex, "%08x", crc);
    fm_status cs = fm_st_writer_meta(w, ST_CRC_KEY, hex);
    if (cs) return cs;
    size_t hlen = header_text(w, NULL, 0);
    size_t padded = (hlen + 7) & ~(size_t)7;
    char *hdr = malloc(padded + 1);
    if (!hdr) return fm__fail(FM_ERR_NOMEM, "out of memory writing %s", path);
    header_text(w, hdr, hlen + 1);
    memset(hdr + hlen, ' ', padded - hlen);

    fm__afile af;
    fm_status s = fm__afile_open(&af, path);
    if (s != FM_OK) {
        free(hdr);
        return s;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fm__afile_write(&af, len8, 8);
    fm__afile_write(&af, hdr, padded);
    free(hdr);
    int le = host_is_le();
    for (int i = 0; i < w->n; i++) {
        const w_entry *e = &w->e[i];
        if (le) {
            fm__afile_write(&af, e->data, e->n * sizeof(float));
        } else {
            for (size_t k = 0; k < e->n; k++) {
                uint32_t u;
                memcpy(&u, &e->data[k], 4);
                unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                                      (unsigned char)(u >> 24)};
                fm__afile_write(&af, b, 4);
            }
        }
    }
    return fm__afile_commit(&af);
}
