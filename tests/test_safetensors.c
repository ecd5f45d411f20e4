/* test_safetensors.c - round trips, the Python-written fixture (F64, F16,
 * BF16, escaped metadata), and every malformed case rejected with a message
 * that names the problem.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A file image: 8-byte length (hlen_override if nonzero), header, data. */
static unsigned char *image(const char *hdr, const void *data, size_t dlen, uint64_t hlen_override, size_t *len)
{
    size_t h = strlen(hdr);
    *len = 8 + h + dlen;
    unsigned char *b = malloc(*len);
    uint64_t n = hlen_override ? hlen_override : h;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
    memcpy(b + 8, hdr, h);
    if (dlen) memcpy(b + 8 + h, data, dlen);
    return b;
}

/* The image must be rejected with a message containing want. */
static void rejects(const char *what, const char *hdr, size_t dlen, uint64_t hlen, const char *want)
{
    static const unsigned char zeros[64];
    size_t len;
    unsigned char *b = image(hdr, zeros, dlen, hlen, &len);
    fm_st *st = fm_st_parse(b, len, "bad.safetensors");
    int ok = st == NULL && strstr(fm_last_error(), want) && strstr(fm_last_error(), "bad.safetensors");
    t_check(ok, "rejects %s: %s", what, st ? "(accepted!)" : fm_last_error());
    fm_st_free(st);
    free(b);
}

void test_safetensors(void)
{
    /* Round trip through a file, with awkward names and metadata. */
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 1e30f}, s0 = 42.0f, big[1000];
    for (int i = 0; i < 1000; i++) big[i] = (float)sin(i);
    int sa[2] = {2, 3}, sb[4] = {2, 5, 10, 10};
    fm_st_writer *w = fm_st_writer_new();
    fm_st_writer_add(w, "layer.0.weight", 2, sa, a);
    fm_st_writer_add(w, "scalar", 0, NULL, &s0);
    fm_st_writer_add(w, "quote\"back\\slash\ttab", 4, sb, big);
    fm_st_writer_meta(w, "model", "mlp");
    fm_st_writer_meta(w, "text", "line1\nline2 \"q\" caf\xc3\xa9");
    t_check(fm_st_writer_add(w, "scalar", 0, NULL, &s0) != FM_OK && strstr(fm_last_error(), "twice"),
            "writer refuses a duplicate name: %s", fm_last_error());
    char path[600];
    snprintf(path, sizeof path, "%s/rt.safetensors", t_tmpdir());
    fm_status ws = fm_st_writer_save(w, path);
    t_check(ws == FM_OK, "round trip: file written %s", T_ERR(ws));
    fm_st_writer_free(w);
    fm_st *st = fm_st_load(path);
    if (t_check(st != NULL, "round trip: file loads %s", T_ERRP(st))) {
        float ra[6], rs, rb[1000];
        int ok = fm_st_read(st, "layer.0.weight", ra, 2, sa) == FM_OK && fm_st_read(st, "scalar", &rs, 0, NULL) == FM_OK &&
                 fm_st_read(st, "quote\"back\\slash\ttab", rb, 4, sb) == FM_OK;
        ok = ok && !memcmp(ra, a, sizeof a) && rs == s0 && !memcmp(rb, big, sizeof big);
        t_check(ok, "round trip: tensors bit-identical (incl. -0, 1e-30, escaped name)");
        const char *txt = fm_st_meta(st, "text");
        t_check(txt && !strcmp(txt, "line1\nline2 \"q\" caf\xc3\xa9") && !strcmp(fm_st_meta(st, "model"), "mlp"),
                "round trip: metadata with escapes");
        FILE *f = fopen(path, "rb");
        unsigned char h8[8];
        size_t got = fread(h8, 1, 8, f);
        fclose(f);
        t_check(got == 8 && h8[0] % 8 == 0, "header padded to 8 bytes (length %u)", h8[0] | (h8[1] << 8));
        fm_dtype dt;
        int nd;
        int64_t sh[8];
        const char *nm = fm_st_entry(st, 0, &dt, &nd, sh);
        t_check(nm && !strcmp(nm, "layer.0.weight") && dt == FM_DT_F32 && nd == 2 && sh[1] == 3,
                "entries listed in order with dtype and shape");
        int wrong[2] = {3, 2};
        t_check(fm_st_read(st, "layer.0.weight", ra, 2, wrong) == FM_ERR_SHAPE && strstr(fm_last_error(), "[2, 3]") &&
                    strstr(fm_last_error(), "[3, 2]"),
                "read with the wrong shape: %s", fm_last_error());
        t_check(fm_st_read(st, "nope", ra, 2, sa) == FM_ERR_FORMAT && strstr(fm_last_error(), "'nope' is missing"),
                "read of a missing tensor: %s", fm_last_error());
        fm_st_free(st);
    }

    /* Saving never damages an existing file: a failed save leaves it as it was. */
    w = fm_st_writer_new();
    fm_st_writer_add(w, "x", 2, sa, a);
    char missing_dir[700];
    snprintf(missing_dir, sizeof missing_dir, "%s/no/such/dir/x.safetensors", t_tmpdir());
    t_check(fm_st_writer_save(w, missing_dir) == FM_ERR_IO && strstr(fm_last_error(), "no/such/dir"),
            "save into a missing folder fails cleanly: %s", fm_last_error());
    t_check(fm_st_writer_save(w, t_tmpdir()) == FM_ERR_IO, "save over a folder fails: %s", fm_last_error());
    fm_st_writer_free(w);
    st = fm_st_load(path);
    t_check(st != NULL, "the earlier file is intact");
    fm_st_free(st);

    /* The file written by the Python reference script. */
    st = t_fixture("formats.safetensors");
    if (st) {
        float f64[6], want64[6] = {1.0f, -2.0f, 3.25f, 1e-3f, 1e30f, -7.5f};
        int s23[2] = {2, 3}, s10[1] = {10}, s03[2] = {0, 3}, s4[1] = {4};
        t_check(fm_st_read(st, "f64", f64, 2, s23) == FM_OK && !memcmp(f64, want64, sizeof f64), "F64 converts to float");
        float h[10], he[10], bb[10], be[10], e0[1];
        int ok = fm_st_read(st, "f16", h, 1, s10) == FM_OK && fm_st_read(st, "f16.expected", he, 1, s10) == FM_OK;
        t_check(ok && !memcmp(h, he, sizeof h), "F16 converts exactly (zero, -0, max, subnormals, inf)");
        ok = fm_st_read(st, "bf16", bb, 1, s10) == FM_OK && fm_st_read(st, "bf16.expected", be, 1, s10) == FM_OK;
        t_check(ok && !memcmp(bb, be, sizeof bb), "BF16 converts exactly");
        t_check(fm_st_read(st, "empty", e0, 2, s03) == FM_OK, "empty tensor [0, 3] reads");
        t_check(fm_st_read(st, "i64", e0, 1, s4) == FM_ERR_FORMAT && strstr(fm_last_error(), "I64"),
                "I64 is listed but not read as float: %s", fm_last_error());
        const char *note = fm_st_meta(st, "note");
        t_check(note && !strcmp(note, "caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x98\x80 \"quoted\" \\ back"),
                "\\u escapes and surrogate pairs decode to UTF-8");
        fm_st_free(st);
    }

    /* Malformed files. */
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t len;
    unsigned char *g = image(good, "\0\0\0\0\0\0\0\0", 8, 0, &len);
    st = fm_st_parse(g, len, "good");
    t_check(st != NULL, "the unmodified base case loads %s", T_ERRP(st));
    fm_st_free(st);
    st = fm_st_parse(g, 5, "bad.safetensors");
    t_check(!st && strstr(fm_last_error(), "too short"), "rejects a 5-byte file: %s", fm_last_error());
    free(g);
    rejects("header length past the end", good, 8, 1000, "runs past the end");
    rejects("header length of 2^64-1", good, 8, UINT64_MAX, "runs past the end");
    rejects("header not an object", "[1,2]   ", 0, 0, "does not start with '{'");
    rejects("invalid JSON (trailing comma)", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8, 0,
            "invalid JSON");
    rejects("truncated JSON", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2", 0, 0, "invalid JSON");
    rejects("bad escape", "{\"a\\q\":{}}", 0, 0, "bad escape");
    rejects("unknown dtype", "{\"a\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0,
            "unknown dtype 'F128'");
    rejects("shape vs byte count", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0,
            "needs 12 bytes");
    rejects("offsets out of range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 0,
            "run past the data section");
    rejects("offsets reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, 0,
            "end before they begin");
    rejects("overlapping tensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            12, 0, "overlap");
    rejects("a gap between tensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
            12, 0, "gap");
    rejects("bytes left over", good, 16, 0, "cover 8");
    rejects("duplicate tensor names",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
            8, 0, "appears twice");
    rejects("negative shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, 0,
            "non-negative integers");
    rejects("fractional offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8, 0,
            "non-negative integers");
    rejects("missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, 0, "data_offsets");
    rejects("metadata value not a string", "{\"__metadata__\":{\"step\":3}}", 0, 0, "not a string");
    rejects("shape overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
            8, 0, "too large");
    rejects("NUL escape in a name", "{\"a\\u0000b\":{}}", 0, 0, "\\u0000");
    rejects("deep nesting",
            "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
            0, 0, "too deep");

    rejects("invalid UTF-8 in a name", "{\"a\xff\":{}}", 0, 0, "invalid UTF-8");
    rejects("an entry repeating dtype",
            "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, "repeats");
    {
        /* A header of two million numbers: refused by the value cap, not by running out of memory. */
        size_t n = 2000000, o = 7;
        char *big_hdr = malloc(7 + 2 * n + 3);
        memcpy(big_hdr, "{\"a\":[0", 7);
        for (size_t i = 1; i < n; i++, o += 2) memcpy(big_hdr + o, ",0", 2);
        strcpy(big_hdr + o, "]}");
        rejects("a header of two million values", big_hdr, 0, 0, "more than 1048576 values");
        free(big_hdr);
    }
    w = fm_st_writer_new();
    t_check(fm_st_writer_add(w, "s", 0, NULL, NULL) == FM_ERR_ARG && strstr(fm_last_error(), "no data"),
            "a scalar without data is refused at add time: %s", fm_last_error());
    fm_st_writer_free(w);

    st = fm_st_load("/nonexistent/file.safetensors");
    t_check(!st && strstr(fm_last_error(), "/nonexistent/file.safetensors") && strstr(fm_last_error(), "cannot open"),
            "missing file: %s", fm_last_error());
}
