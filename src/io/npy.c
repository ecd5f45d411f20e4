/* npy.c - NumPy's .npy format: write float32 arrays, read numeric arrays.
 *
 * Layout: "\x93NUMPY", version (1.0, 2.0 or 3.0), header length (2 bytes for
 * 1.0, 4 bytes after), an ASCII Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2000, 2), }
 * padded with spaces and a newline so the data starts on a 64-byte boundary,
 * then the raw array. The reader takes float16/32/64 and integer dtypes of
 * either byte order, C order of any rank up to 4 and Fortran order up to rank 2.
 */
#include "internal.h"

#include <string.h>

fm_status fm_npy_write(const char *path, const float *data, int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > 4) return fm__fail(FM_ERR_ARG, "%s: .npy rank %d is outside 1..4", path, ndim);
    char dims[160];
    size_t o = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return fm__fail(FM_ERR_ARG, "%s: negative dimension", path);
        o += (size_t)snprintf(dims + o, sizeof dims - o, "%lld,%s", (long long)shape[d],
                              (ndim > 1 && d + 1 < ndim) ? " " : "");
    }
    if (ndim > 1) dims[o - 1] = '\0'; /* "(2, 3)" rather than "(2, 3,)" */
    char hdr[256];
    int h = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    size_t total = 10 + (size_t)h + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(hdr + h, ' ', pad);
    hdr[h + pad] = '\n';
    uint16_t hl = (uint16_t)(h + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xFF),
                             (unsigned char)(hl >> 8)};
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    fm__afile af;
    fm_status s = fm__afile_open(&af, path);
    if (s != FM_OK) return s;
    fm__afile_write(&af, pre, 10);
    fm__afile_write(&af, hdr, hl);
    const uint16_t one = 1;
    if (*(const unsigned char *)&one == 1) {
        fm__afile_write(&af, data, n * sizeof(float));
    } else {
        for (size_t i = 0; i < n; i++) {
            unsigned char b[4], *src = (unsigned char *)&data[i];
            for (int k = 0; k < 4; k++) b[k] = src[3 - k];
            fm__afile_write(&af, b, 4);
        }
    }
    return fm__afile_commit(&af);
}

/* ---- reading */

typedef struct {
    const char *s, *end;
} cursor;

static void skip(cursor *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r')) c->s++;
}

static int eat(cursor *c, char ch)
{
    skip(c);
    if (c->s < c->end && *c->s == ch) {
        c->s++;
        return 1;
    }
    return 0;
}

/* A quoted Python string into buf. */
static int pystr(cursor *c, char *buf, size_t cap)
{
    skip(c);
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"')) return 0;
    char q = *c->s++;
    size_t n = 0;
    while (c->s < c->end && *c->s != q) {
        if (n + 1 >= cap) return 0;
        buf[n++] = *c->s++;
    }
    if (c->s >= c->end) return 0;
    c->s++;
    buf[n] = '\0';
    return 1;
}

static float half_bits_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF, u;
    if (e == 0x1F) u = sign | 0x7F800000u | (m << 13);
    else if (e == 0 && m == 0) u = sign;
    else if (e == 0) {
        int k = -1;
        do {
            m <<= 1;
            k++;
        } while (!(m & 0x400));
        u = sign | ((uint32_t)(127 - 15 - k) << 23) | ((m & 0x3FF) << 13);
    } else u = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Element i of raw data with the given kind ('f', 'i', 'u'), size and byte order. */
static double element(const unsigned char *p, char kind, int size, int big)
{
    unsigned char b[8];
    for (int k = 0; k < size; k++) b[k] = big ? p[size - 1 - k] : p[k]; /* to little endian */
    uint64_t u = 0;
    for (int k = size - 1; k >= 0; k--) u = (u << 8) | b[k];
    if (kind == 'f') {
        if (size == 2) return half_bits_to_float((uint16_t)u);
        if (size == 4) {
            uint32_t v = (uint32_t)u;
            float f;
            memcpy(&f, &v, 4);
            return f;
        }
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    if (kind == 'u') return (double)u;
    /* signed: sign-extend */
    int64_t v = (int64_t)(u << (64 - 8 * size)) >> (64 - 8 * size);
    return (double)v;
}

fm_status fm_npy_read(const char *path, float **data, int *ndim, int64_t *shape)
{
    unsigned char *buf;
    size_t len;
    fm_status s = fm__read_file(path, &buf, &len);
    if (s != FM_OK) return s;
#define BAD(...)                                                                                                \
    do {                                                                                                        \
        char m_[256];                                                                                           \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                                   \
        free(buf);                                                                                              \
        return fm__fail(FM_ERR_FORMAT, "%s: %s", path, m_);                                                     \
    } while (0)
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) BAD("not a .npy file (no \\x93NUMPY magic)");
    int major = buf[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)buf[8] | ((size_t)buf[9] << 8);
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) BAD("truncated header");
        hl = (size_t)buf[8] | ((size_t)buf[9] << 8) | ((size_t)buf[10] << 16) | ((size_t)buf[11] << 24);
        off = 12;
    } else {
        BAD("unsupported .npy version %d", major);
    }
    if (hl > len - off) BAD("header length %zu runs past the end of the file", hl);
    if (hl > 65536) BAD("header of %zu bytes is implausibly long", hl);
    char htext[65537]; /* a terminated copy, so number parsing cannot run past it */
    memcpy(htext, buf + off, hl);
    htext[hl] = '\0';
    cursor c = {htext, htext + hl};
    char descr[32] = "", key[32];
    int fortran = -1, nd = -1;
    int64_t sh[8];
    if (!eat(&c, '{')) BAD("header is not a dict");
    while (!eat(&c, '}')) {
        if (!pystr(&c, key, sizeof key) || !eat(&c, ':')) BAD("malformed header dict");
        if (!strcmp(key, "descr")) {
            if (!pystr(&c, descr, sizeof descr)) BAD("'descr' is not a string (structured arrays are not supported)");
        } else if (!strcmp(key, "fortran_order")) {
            skip(&c);
            if ((size_t)(c.end - c.s) >= 4 && !memcmp(c.s, "True", 4)) fortran = 1, c.s += 4;
            else if ((size_t)(c.end - c.s) >= 5 && !memcmp(c.s, "False", 5)) fortran = 0, c.s += 5;
            else BAD("'fortran_order' is not True or False");
        } else if (!strcmp(key, "shape")) {
            if (!eat(&c, '(')) BAD("'shape' is not a tuple");
            nd = 0;
            while (!eat(&c, ')')) {
                skip(&c);
                char *e;
                long long v = strtoll(c.s, &e, 10);
                if (e == c.s || v < 0 || nd == 8) BAD("bad 'shape' entry");
                sh[nd++] = v;
                c.s = e;
                if (!eat(&c, ',') && !(skip(&c), c.s < c.end && *c.s == ')')) BAD("bad 'shape' tuple");
            }
        } else {
            BAD("unknown header key '%s'", key);
        }
        if (!eat(&c, ',') && !(skip(&c), c.s < c.end && *c.s == '}')) BAD("malformed header dict");
    }
    if (!descr[0] || fortran < 0 || nd < 0) BAD("header lacks descr, fortran_order or shape");
    if (nd > 4) BAD("rank %d is more than 4", nd);
    char order = descr[0], kind = descr[1];
    int size = atoi(descr + 2);
    int ok_kind = (kind == 'f' && (size == 2 || size == 4 || size == 8)) ||
                  ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8));
    if (!strchr("<>|=", order) || !ok_kind || strlen(descr) > 3)
        BAD("dtype '%s' is not supported (use float16/32/64 or integers)", descr);
    const uint16_t one = 1;
    int big = order == '>' || (order == '=' && *(const unsigned char *)&one == 0);
    if (fortran && nd > 2) BAD("Fortran-order arrays of rank %d are not supported", nd);
    size_t n = 1;
    for (int d = 0; d < nd; d++) {
        if (!fm__mul_ok(n, (size_t)sh[d], &n) || n > ((size_t)1 << 40)) BAD("shape is too large");
    }
    size_t need;
    if (!fm__mul_ok(n, (size_t)size, &need) || need != len - off - hl)
        BAD("shape and dtype need %zu bytes of data but the file has %zu", n * (size_t)size, len - off - hl);
    float *out = malloc((n ? n : 1) * sizeof(float));
    if (!out) {
        free(buf);
        return fm__fail(FM_ERR_NOMEM, "%s: out of memory", path);
    }
    const unsigned char *p = buf + off + hl;
    size_t rows = nd >= 1 ? (size_t)sh[0] : 1, cols = nd == 2 ? (size_t)sh[1] : 1;
    for (size_t i = 0; i < n; i++) {
        /* Fortran order: element i of the file is (i % rows, i / rows) */
        size_t dst = (fortran && nd == 2) ? (i % rows) * cols + i / rows : i;
        out[dst] = (float)element(p + i * (size_t)size, kind, size, big);
    }
    free(buf);
#undef BAD
    *data = out;
    *ndim = nd;
    for (int d = 0; d < nd; d++) shape[d] = sh[d];
    return FM_OK;
}
