/* idx.c - LeCun's IDX format (MNIST's files): read any element type, write bytes.
 *
 * Layout: 0x00 0x00, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
 * 0x0D float32, 0x0E float64), the number of dimensions, that many big-endian
 * uint32 sizes, then the elements in C order, big-endian, and nothing after
 * them. The reader goes through zlib's gz* calls, which inflate a gzip stream
 * (the .gz files MNIST is distributed as) and pass any other file through
 * unchanged, so both read alike. It reads the header, checks it, allocates the
 * array the sizes describe, reads exactly that many bytes and then asks for
 * one more, so a short file, trailing bytes and a damaged gzip stream (whose
 * CRC is only checked at its end) are all told apart.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

#define IDX_CHUNK (1u << 30) /* gzread takes an unsigned and returns an int */
#define IDX_FIRST ((size_t)1 << 20) /* the first buffer for the data; it doubles as data arrive */

/* The length of a file that is not gzip-compressed, -1 for a gzip file or one
 * that cannot be examined (the reader then finds out). */
static long plain_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char m[2] = {0, 0};
    size_t k = fread(m, 1, 2, f);
    long n = k == 2 && m[0] == 0x1f && m[1] == 0x8b ? -1 : (fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1);
    fclose(f);
    return n;
}

static int elem_size(int type)
{
    switch (type) {
    case FM_IDX_U8:
    case FM_IDX_I8: return 1;
    case FM_IDX_I16: return 2;
    case FM_IDX_I32:
    case FM_IDX_F32: return 4;
    case FM_IDX_F64: return 8;
    default: return 0;
    }
}

static const char *type_name(int type)
{
    switch (type) {
    case FM_IDX_U8: return "uint8";
    case FM_IDX_I8: return "int8";
    case FM_IDX_I16: return "int16";
    case FM_IDX_I32: return "int32";
    case FM_IDX_F32: return "float32";
    case FM_IDX_F64: return "float64";
    default: return "unknown";
    }
}

/* Read up to n bytes; *got receives how many. Returns 0 on a clean read or end
 * of data, -1 when zlib reports an error (left in gzerror), a gzip stream that
 * ends early included. */
static int read_n(gzFile g, unsigned char *p, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < IDX_CHUNK ? n - *got : IDX_CHUNK;
        int r = gzread(g, p + *got, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        *got += (size_t)r;
    }
    int err;
    gzerror(g, &err);
    return err == Z_OK ? 0 : -1; /* Z_BUF_ERROR: a gzip stream cut short */
}

/* The failure after read_n returned -1: an I/O error or a damaged gzip stream. */
static fm_status read_fail(gzFile g, const char *path)
{
    int err;
    const char *msg = gzerror(g, &err);
    if (err == Z_ERRNO) return fm__fail(FM_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    if (err == Z_MEM_ERROR) return fm__fail(FM_ERR_NOMEM, "%s: out of memory inflating the file", path);
    size_t pl = strlen(path); /* zlib's message starts "path: " */
    if (msg && !strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2)) msg += pl + 2;
    return fm__fail(FM_ERR_FORMAT, "%s: corrupt gzip stream: %s", path, msg && *msg ? msg : "inflate failed");
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Element i of big-endian raw data of the given type, as float. */
static float element(const unsigned char *p, int type)
{
    switch (type) {
    case FM_IDX_U8: return (float)p[0];
    case FM_IDX_I8: return (float)(int8_t)p[0];
    case FM_IDX_I16: return (float)(int16_t)(uint16_t)(p[0] << 8 | p[1]);
    case FM_IDX_I32: return (float)(int32_t)be32(p);
    case FM_IDX_F32: {
        uint32_t u = be32(p);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    default: {
        uint64_t u = (uint64_t)be32(p) << 32 | be32(p + 4);
        double d;
        memcpy(&d, &u, 8);
        return (float)d;
    }
    }
}

static fm_status idx_read(const char *path, fm_idx *out, int want_u8)
{
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile g = gzopen(path, "rb");
    if (!g) {
        if (errno) return fm__fail(FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return fm__fail(FM_ERR_NOMEM, "%s: out of memory opening the file", path);
    }
    gzbuffer(g, 1u << 17);
    unsigned char *raw = NULL;
    fm_status s = FM_OK;
#define BAD(st, ...)                                                                                            \
    do {                                                                                                        \
        char m_[256];                                                                                           \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                                   \
        s = fm__fail(st, "%s: %s", path, m_);                                                                   \
        goto done;                                                                                              \
    } while (0)
#define READ_OR_FAIL(p, n, got)                                                                                 \
    do {                                                                                                        \
        if (read_n(g, p, n, got) != 0) {                                                                        \
            s = read_fail(g, path);                                                                             \
            goto done;                                                                                          \
        }                                                                                                       \
    } while (0)
    unsigned char hdr[4 + 4 * FM_MAX_DIMS];
    size_t got;
    READ_OR_FAIL(hdr, 4, &got);
    if (got < 4) BAD(FM_ERR_FORMAT, "not an IDX file: %zu bytes, shorter than the 4-byte magic", got);
    if (hdr[0] != 0 || hdr[1] != 0)
        BAD(FM_ERR_FORMAT, "not an IDX file: magic %02x %02x %02x %02x does not start with two zero bytes", hdr[0],
            hdr[1], hdr[2], hdr[3]);
    int type = hdr[2], nd = hdr[3], size = elem_size(type);
    if (!size)
        BAD(FM_ERR_FORMAT, "unknown IDX element type 0x%02x (known: 0x08 uint8, 0x09 int8, 0x0b int16, "
                           "0x0c int32, 0x0d float32, 0x0e float64)", type);
    if (nd < 1 || nd > FM_MAX_DIMS) BAD(FM_ERR_FORMAT, "%d dimensions; 1 to %d are supported", nd, FM_MAX_DIMS);
    READ_OR_FAIL(hdr + 4, 4 * (size_t)nd, &got);
    if (got < 4 * (size_t)nd)
        BAD(FM_ERR_FORMAT, "header ends after %zu of the %d bytes of its %d dimension sizes", got, 4 * nd, nd);
    uint64_t count = 1;
    for (int d = 0; d < nd; d++) {
        uint32_t v = be32(hdr + 4 + 4 * d);
        if (v == 0) BAD(FM_ERR_FORMAT, "dimension %d has size 0", d);
        out->dims[d] = v > INT32_MAX ? INT32_MAX : (int)v;
        /* count < 2^31 before and v < 2^32, so the product cannot overflow 64 bits */
        count *= v;
        if (count >= (uint64_t)FM_IDX_MAX_COUNT)
            BAD(FM_ERR_FORMAT, "sizes of %d dimensions give %s%llu elements, over the limit of 2^31", nd,
                d + 1 < nd ? "at least " : "", (unsigned long long)count);
    }
    size_t need;
    char shape[96];
    fm__shape_fmt(nd, out->dims, shape, sizeof shape);
    if (!fm__mul_ok((size_t)count, (size_t)size, &need)) BAD(FM_ERR_FORMAT, "sizes %s are too large", shape);
    if (want_u8 && type != FM_IDX_U8)
        BAD(FM_ERR_FORMAT, "elements are %s (type 0x%02x); unsigned bytes (0x08) were expected", type_name(type),
            type);
    /* Sizes are claims: a plain file's are checked against its length before
     * anything is allocated; a gzip stream's data are read in chunks that grow
     * as they arrive, so memory follows the data, not the header. */
    size_t hbytes = 4 + 4 * (size_t)nd;
    long plain = plain_size(path);
    size_t body = plain >= 0 && (size_t)plain > hbytes ? (size_t)plain - hbytes : 0;
    if (plain >= 0 && body < need)
        BAD(FM_ERR_FORMAT, "truncated: sizes %s of %s need %zu bytes of data but the file has %zu", shape,
            type_name(type), need, body);
    if (plain >= 0 && body > need)
        BAD(FM_ERR_FORMAT, "%zu trailing bytes after the %zu bytes of data that sizes %s of %s need", body - need, need,
            shape, type_name(type));
    size_t cap = need < IDX_FIRST ? need : IDX_FIRST, have = 0;
    raw = malloc(cap);
    if (!raw) BAD(FM_ERR_NOMEM, "out of memory for %s elements of %s (%zu bytes)", shape, type_name(type), cap);
    for (;;) {
        READ_OR_FAIL(raw + have, cap - have, &got);
        have += got;
        if (have < cap || cap == need) break; /* the data ended, or all is read */
        size_t ncap = cap > need / 2 ? need : 2 * cap;
        unsigned char *r2 = realloc(raw, ncap);
        if (!r2) BAD(FM_ERR_NOMEM, "out of memory for %s elements of %s (%zu bytes)", shape, type_name(type), ncap);
        raw = r2;
        cap = ncap;
    }
    if (have < need)
        BAD(FM_ERR_FORMAT, "truncated: sizes %s of %s need %zu bytes of data but the file has %zu", shape,
            type_name(type), need, have);
    /* Then the file must end; reading on to its end also checks a gzip stream's CRC. */
    unsigned char extra[4096];
    size_t more = 0;
    for (;;) {
        READ_OR_FAIL(extra, sizeof extra, &got);
        more += got;
        if (got < sizeof extra) break;
    }
    if (more)
        BAD(FM_ERR_FORMAT, "%zu trailing bytes after the %zu bytes of data that sizes %s of %s need", more, need,
            shape, type_name(type));
    out->type = (fm_idx_type)type;
    out->ndim = nd;
    out->count = (int64_t)count;
    if (want_u8) {
        out->u8 = raw;
        raw = NULL;
    } else {
        out->data = malloc((size_t)count * sizeof(float));
        if (!out->data) BAD(FM_ERR_NOMEM, "out of memory for %s floats", shape);
        for (size_t i = 0; i < (size_t)count; i++) out->data[i] = element(raw + i * (size_t)size, type);
    }
done:
#undef BAD
#undef READ_OR_FAIL
    free(raw);
    gzclose(g);
    if (s != FM_OK) fm_idx_free(out);
    return s;
}

fm_status fm_idx_read(const char *path, fm_idx *out) { return idx_read(path, out, 0); }
fm_status fm_idx_read_u8(const char *path, fm_idx *out) { return idx_read(path, out, 1); }

void fm_idx_free(fm_idx *x)
{
    if (!x) return;
    free(x->data);
    free(x->u8);
    memset(x, 0, sizeof *x);
}

fm_status fm_idx_write_u8(const char *path, int ndim, const int *dims, const uint8_t *data)
{
    if (ndim < 1 || ndim > FM_MAX_DIMS)
        return fm__fail(FM_ERR_ARG, "%s: IDX rank %d is outside 1..%d", path, ndim, FM_MAX_DIMS);
    unsigned char hdr[4 + 4 * FM_MAX_DIMS] = {0, 0, FM_IDX_U8, (unsigned char)ndim};
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 1) return fm__fail(FM_ERR_ARG, "%s: IDX dimension %d has size %d", path, d, dims[d]);
        count *= dims[d]; /* < 2^31 before, < 2^62 after */
        if (count >= FM_IDX_MAX_COUNT) return fm__fail(FM_ERR_ARG, "%s: more than 2^31 elements", path);
        for (int k = 0; k < 4; k++) hdr[4 + 4 * d + k] = (unsigned char)((uint32_t)dims[d] >> (24 - 8 * k));
    }
    fm__afile af;
    fm_status s = fm__afile_open(&af, path);
    if (s != FM_OK) return s;
    fm__afile_write(&af, hdr, 4 + 4 * (size_t)ndim);
    fm__afile_write(&af, data, (size_t)count);
    return fm__afile_commit(&af);
}
