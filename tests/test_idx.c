/* test_idx.c - IDX files (MNIST's format): byte round trips, the header's byte
 * layout, a gzip-compressed copy read like the plain file, every element type
 * decoded from hand-written big-endian bytes, and malformed files rejected
 * with their message.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* Header bytes: 00 00 type ndim, then big-endian sizes. Returns its length. */
static size_t header(unsigned char *h, int type, int ndim, const uint32_t *dims)
{
    h[0] = 0, h[1] = 0, h[2] = (unsigned char)type, h[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++)
        for (int k = 0; k < 4; k++) h[4 + 4 * d + k] = (unsigned char)(dims[d] >> (24 - 8 * k));
    return 4 + 4 * (size_t)ndim;
}

/* A file of the given header and n data bytes (pattern i % 251). */
static const char *make_file(const char *name, int type, int ndim, const uint32_t *dims, size_t n)
{
    unsigned char *b = malloc(64 + n);
    size_t h = header(b, type, ndim, dims);
    for (size_t i = 0; i < n; i++) b[h + i] = (unsigned char)(i % 251);
    const char *p = t_path(name);
    write_bytes(p, b, h + n);
    free(b);
    return p;
}

/* Reading path must fail with status want_s and a message containing want. */
static void rejects(const char *what, const char *path, fm_status want_s, const char *want)
{
    fm_idx x;
    fm_status s = fm_idx_read(path, &x);
    int ok = s == want_s && strstr(fm_last_error(), want) && strstr(fm_last_error(), path) && !x.data && !x.u8;
    t_check(ok, "rejects %s: %s", what, s ? fm_last_error() : "(accepted!)");
    if (!s) fm_idx_free(&x);
}

static float be_f32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void test_idx(void)
{
    /* images: 5 x 28 x 28 bytes */
    enum { NI = 5 * 28 * 28 };
    static uint8_t img[NI];
    for (int i = 0; i < NI; i++) img[i] = (uint8_t)((i * 37 + i / 784) % 256);
    const int idims[3] = {5, 28, 28};
    char ipath[1024], lpath[1024], gpath[1024];
    snprintf(ipath, sizeof ipath, "%s", t_path("images-idx3-ubyte"));
    fm_status s = fm_idx_write_u8(ipath, 3, idims, img);
    t_check(s == FM_OK, "write_u8 5 x 28 x 28 %s", T_ERR(s));

    size_t n;
    unsigned char *raw = t_slurp(ipath, &n);
    static const unsigned char want_hdr[16] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28};
    t_check(raw && n == 16 + NI && !memcmp(raw, want_hdr, 16) && !memcmp(raw + 16, img, NI),
            "file is %zu bytes (want %d): header 00 00 08 03 | 5 28 28 big-endian, then the bytes", n, 16 + NI);
    free(raw);

    fm_idx x;
    s = fm_idx_read_u8(ipath, &x);
    int ok = s == FM_OK && x.type == FM_IDX_U8 && x.ndim == 3 && x.dims[0] == 5 && x.dims[1] == 28 &&
             x.dims[2] == 28 && x.count == NI && x.u8 && !x.data;
    int diff = ok ? 0 : -1;
    for (int i = 0; ok && i < NI; i++) diff += x.u8[i] != img[i];
    t_check(ok && diff == 0, "read_u8: type 0x%02x, %d dims [%d, %d, %d], %lld bytes, %d differ %s", s ? 0 : x.type,
            s ? 0 : x.ndim, x.dims[0], x.dims[1], x.dims[2], (long long)x.count, diff, T_ERR(s));
    fm_idx_free(&x);
    t_check(!x.u8 && !x.data && x.count == 0, "free zeroes the struct");

    s = fm_idx_read(ipath, &x);
    ok = s == FM_OK && x.count == NI && x.data && !x.u8;
    double err = ok ? 0 : 1;
    for (int i = 0; ok && i < NI; i++) {
        double e = x.data[i] - (double)img[i];
        if (e < 0) e = -e;
        if (e > err) err = e;
    }
    t_check(ok && err == 0, "read as float: values 0..255 exactly, max |err| %g %s", err, T_ERR(s));
    fm_idx_free(&x);

    /* labels: one dimension */
    static const uint8_t lab[10] = {7, 2, 1, 0, 4, 1, 4, 9, 5, 9};
    const int ldims[1] = {10};
    snprintf(lpath, sizeof lpath, "%s", t_path("labels-idx1-ubyte"));
    s = fm_idx_write_u8(lpath, 1, ldims, lab);
    s = s ? s : fm_idx_read_u8(lpath, &x);
    ok = s == FM_OK && x.ndim == 1 && x.dims[0] == 10 && x.count == 10 && !memcmp(x.u8, lab, 10);
    t_check(ok, "labels: 1 dim of %d, first %d last %d %s", s ? 0 : x.dims[0], s ? -1 : x.u8[0], s ? -1 : x.u8[9],
            T_ERR(s));
    fm_idx_free(&x);

    /* the gzip copy reads identically */
    snprintf(gpath, sizeof gpath, "%s", t_path("images-idx3-ubyte.gz"));
    ok = t_gzip_copy(ipath, gpath);
    raw = t_slurp(gpath, &n);
    t_check(ok && raw && n > 2 && raw[0] == 0x1f && raw[1] == 0x8b, "zlib wrote a gzip copy: %zu bytes, magic %02x %02x",
            n, raw && n > 1 ? raw[0] : 0, raw && n > 1 ? raw[1] : 0);
    s = fm_idx_read_u8(gpath, &x);
    ok = s == FM_OK && x.ndim == 3 && x.count == NI && !memcmp(x.u8, img, NI);
    t_check(ok, "gzip: read the same %lld bytes as the plain file %s", s ? 0LL : (long long)x.count, T_ERR(s));
    fm_idx_free(&x);
    /* ... also under a name without .gz */
    const char *gpath2 = t_path("gz-without-extension");
    write_bytes(gpath2, raw, n);
    s = fm_idx_read(gpath2, &x);
    ok = s == FM_OK && x.count == NI && x.data[NI - 1] == (float)img[NI - 1];
    t_check(ok, "gzip: detected by its magic, not its name %s", T_ERR(s));
    fm_idx_free(&x);

    /* corrupt gzip: damage the deflate data; then the CRC; then cut the stream */
    if (raw && n > 40) {
        unsigned char *bad = malloc(n);
        memcpy(bad, raw, n);
        for (size_t i = 12; i < 24; i++) bad[i] ^= 0xA5;
        write_bytes(t_path("bad-deflate.gz"), bad, n);
        rejects("a damaged deflate stream", t_path("bad-deflate.gz"), FM_ERR_FORMAT, "corrupt gzip stream");
        memcpy(bad, raw, n);
        bad[n - 6] ^= 0x01; /* the trailer: CRC32 then length */
        write_bytes(t_path("bad-crc.gz"), bad, n);
        rejects("a gzip CRC mismatch", t_path("bad-crc.gz"), FM_ERR_FORMAT, "corrupt gzip stream: incorrect data check");
        write_bytes(t_path("cut.gz"), raw, n / 2);
        rejects("a gzip stream cut in half", t_path("cut.gz"), FM_ERR_FORMAT, "corrupt gzip stream: unexpected end");
        free(bad);
    } else {
        t_check(0, "no gzip copy to damage");
    }
    free(raw);

    /* each element type, decoded from big-endian bytes written by hand */
    {
        const float want[6] = {1.5f, -2.0f, 0.1f, 1e30f, -0.0f, 3.25e-7f};
        unsigned char b[64];
        const uint32_t d23[2] = {2, 3};
        size_t h = header(b, 0x0D, 2, d23);
        for (int i = 0; i < 6; i++) {
            uint32_t u;
            memcpy(&u, &want[i], 4);
            for (int k = 0; k < 4; k++) b[h + 4 * i + k] = (unsigned char)(u >> (24 - 8 * k));
        }
        write_bytes(t_path("f32"), b, h + 24);
        s = fm_idx_read(t_path("f32"), &x);
        ok = s == FM_OK && x.type == FM_IDX_F32 && x.ndim == 2 && x.dims[0] == 2 && x.dims[1] == 3 &&
             !memcmp(x.data, want, sizeof want);
        t_check(ok, "float32 big-endian: [%g %g %g %g %g %g] bit-exact (first bytes %02x %02x %02x %02x = %g) %s",
                ok ? x.data[0] : 0, ok ? x.data[1] : 0, ok ? x.data[2] : 0, ok ? x.data[3] : 0, ok ? x.data[4] : 0,
                ok ? x.data[5] : 0, b[h], b[h + 1], b[h + 2], b[h + 3], be_f32(b + h), T_ERR(s));
        fm_idx_free(&x);
        t_check(fm_idx_read_u8(t_path("f32"), &x) == FM_ERR_FORMAT && strstr(fm_last_error(), "float32 (type 0x0d)"),
                "read_u8 refuses float32: %s", fm_last_error());

        /* int8, int16, int32, float64: three values each */
        static const struct {
            int type;
            unsigned char bytes[24];
            int size;
            float want[3];
        } cases[] = {
            {0x09, {0x80, 0xFF, 0x7F}, 1, {-128, -1, 127}},
            {0x0B, {0xFF, 0xFE, 0x80, 0x00, 0x01, 0x02}, 2, {-2, -32768, 258}},
            {0x0C, {0xFF, 0xFE, 0xEE, 0x90, 0x00, 0x01, 0x00, 0x00, 0x80, 0, 0, 0}, 4, {-70000, 65536, -2147483648.0f}},
            {0x0E,
             {0x3F, 0xB9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A, 0xC0, 0x24, 0, 0, 0, 0, 0, 0, 0x7F, 0xF0, 0, 0, 0, 0, 0,
              0},
             8,
             {0.1f, -10.0f, INFINITY}},
        };
        for (int c = 0; c < 4; c++) {
            const uint32_t d3[1] = {3};
            h = header(b, cases[c].type, 1, d3);
            memcpy(b + h, cases[c].bytes, 3 * (size_t)cases[c].size);
            write_bytes(t_path("typed"), b, h + 3 * (size_t)cases[c].size);
            s = fm_idx_read(t_path("typed"), &x);
            ok = s == FM_OK && (int)x.type == cases[c].type && x.count == 3 && !memcmp(x.data, cases[c].want, 12);
            t_check(ok, "type 0x%02x big-endian: got [%g %g %g], want [%g %g %g] %s", cases[c].type,
                    ok ? x.data[0] : 0, ok ? x.data[1] : 0, ok ? x.data[2] : 0, cases[c].want[0], cases[c].want[1],
                    cases[c].want[2], T_ERR(s));
            fm_idx_free(&x);
        }
    }

    /* malformed files */
    const uint32_t d5[3] = {5, 28, 28};
    rejects("a missing file", t_path("no-such-file"), FM_ERR_IO, "cannot open");
    write_bytes(t_path("empty"), "", 0);
    rejects("an empty file", t_path("empty"), FM_ERR_FORMAT, "0 bytes, shorter than the 4-byte magic");
    write_bytes(t_path("npy"), "\x93NUMPY\x01\x00", 8);
    rejects("bad magic", t_path("npy"), FM_ERR_FORMAT, "magic 93 4e 55 4d does not start with two zero bytes");
    rejects("an unknown type code", make_file("type0a", 0x0A, 3, d5, NI), FM_ERR_FORMAT,
            "unknown IDX element type 0x0a");
    rejects("0 dimensions", make_file("dims0", 0x08, 0, d5, 10), FM_ERR_FORMAT, "0 dimensions; 1 to 4");
    const uint32_t d6[5] = {1, 1, 1, 1, 2};
    rejects("5 dimensions", make_file("dims5", 0x08, 5, d6, 2), FM_ERR_FORMAT, "5 dimensions; 1 to 4");
    const uint32_t dz[3] = {5, 0, 28};
    rejects("a zero dimension", make_file("zero", 0x08, 3, dz, 0), FM_ERR_FORMAT, "dimension 1 has size 0");
    unsigned char hb[16];
    header(hb, 0x08, 3, d5);
    write_bytes(t_path("cuthdr"), hb, 10);
    rejects("a header cut inside the sizes", t_path("cuthdr"), FM_ERR_FORMAT,
            "header ends after 6 of the 12 bytes of its 3 dimension sizes");
    rejects("truncated data", make_file("trunc", 0x08, 3, d5, NI - 1), FM_ERR_FORMAT,
            "truncated: sizes [5, 28, 28] of uint8 need 3920 bytes of data but the file has 3919");
    rejects("trailing bytes", make_file("trail", 0x08, 3, d5, NI + 3), FM_ERR_FORMAT,
            "3 trailing bytes after the 3920 bytes of data");
    const uint32_t d4[3] = {4, 28, 28};
    rejects("sizes disagreeing with the data (5 images' bytes, 4 in the header)", make_file("more", 0x08, 3, d4, NI),
            FM_ERR_FORMAT, "784 trailing bytes after the 3136 bytes");
    rejects("sizes disagreeing with the data (4 images' bytes, 5 in the header)",
            make_file("fewer", 0x08, 3, d5, 4 * 784), FM_ERR_FORMAT, "need 3920 bytes of data but the file has 3136");
    rejects("float32 data of the wrong length", make_file("f32short", 0x0D, 1, d5, 18), FM_ERR_FORMAT,
            "sizes [5] of float32 need 20 bytes of data but the file has 18");
    const uint32_t dbig[2] = {65536, 32768};
    rejects("2^31 elements", make_file("big", 0x08, 2, dbig, 0), FM_ERR_FORMAT,
            "give 2147483648 elements, over the limit of 2^31");
    const uint32_t dhuge[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    rejects("sizes whose product overflows 64 bits", make_file("huge", 0x0E, 4, dhuge, 0), FM_ERR_FORMAT,
            "give at least 4294967295 elements, over the limit");
    rejects("a directory", t_tmpdir(), FM_ERR_IO, "cannot read");

    /* the writer's own checks; a failed write leaves the old file alone */
    const int bad0[2] = {3, 0};
    s = fm_idx_write_u8(lpath, 2, bad0, lab);
    t_check(s == FM_ERR_ARG && strstr(fm_last_error(), "dimension 1 has size 0"), "write refuses a 0 size: %s",
            fm_last_error());
    s = fm_idx_write_u8(lpath, 5, ldims, lab);
    t_check(s == FM_ERR_ARG && strstr(fm_last_error(), "rank 5 is outside 1..4"), "write refuses rank 5: %s",
            fm_last_error());
    s = fm_idx_write_u8(t_path("no-such-dir/x"), 1, ldims, lab);
    t_check(s == FM_ERR_IO && strstr(fm_last_error(), "cannot create"), "write to a missing folder: %s",
            fm_last_error());
    s = fm_idx_read_u8(lpath, &x);
    t_check(s == FM_OK && x.count == 10 && !memcmp(x.u8, lab, 10), "the labels file is intact after the refusals %s",
            T_ERR(s));
    fm_idx_free(&x);
}
