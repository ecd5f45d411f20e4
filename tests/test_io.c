/* test_io.c - .npy and CSV: NumPy-written files of several dtypes and orders,
 * round trips, and malformed input rejected with its line number.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *fx(const char *name)
{
    static char path[1024];
    const char *dir = getenv("FM_FIXTURES");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/fixtures", name);
    return path;
}


static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* The CSV text must be rejected with a message containing want. */
static void csv_rejects(const char *what, const char *text, const char *want)
{
    write_text(t_path("bad.csv"), text);
    fm_table t;
    fm_status s = fm_csv_read(t_path("bad.csv"), &t);
    t_check(s == FM_ERR_FORMAT && strstr(fm_last_error(), want), "CSV rejects %s: %s", what,
            s ? fm_last_error() : "(accepted!)");
    if (!s) fm_table_free(&t);
}

void test_io(void)
{
    /* NumPy-written arrays */
    float *want = NULL;
    int nd;
    int64_t sh[4];
    fm_status es = fm_npy_read(fx("npy/expected.npy"), &want, &nd, sh);
    if (t_check(es == FM_OK && nd == 2 && sh[0] == 3 && sh[1] == 4, "npy: float32 C-order reads %s", T_ERR(es))) {
        static const char *files[] = {"npy/f64_c.npy", "npy/f32_fortran.npy", "npy/f32_big.npy", "npy/f16.npy"};
        for (int i = 0; i < 4; i++) {
            float *got = NULL;
            fm_status s = fm_npy_read(fx(files[i]), &got, &nd, sh);
            int ok = s == FM_OK && nd == 2 && sh[0] == 3 && sh[1] == 4;
            char label[64];
            snprintf(label, sizeof label, "npy: %s", files[i]);
            if (ok) t_close(label, got, want, 12, 0);
            else t_check(0, "%s: %s", label, fm_last_error());
            free(got);
        }
    }
    free(want);
    float *iv = NULL;
    fm_status s = fm_npy_read(fx("npy/i32_1d.npy"), &iv, &nd, sh);
    t_check(s == FM_OK && nd == 1 && sh[0] == 4 && iv[0] == -3 && iv[3] == 1048576, "npy: int32 1-D converts");
    free(iv);
    s = fm_npy_read(fx("npy/u8_3d.npy"), &iv, &nd, sh);
    t_check(s == FM_OK && nd == 3 && sh[2] == 4 && iv[23] == 23, "npy: uint8 rank 3");
    free(iv);

    /* round trip of our own writer */
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)sin(i) * 1e3f;
    int64_t s3[3] = {2, 3, 4};
    float *back = NULL;
    s = fm_npy_write(t_path("rt.npy"), x, 3, s3);
    s = s ? s : fm_npy_read(t_path("rt.npy"), &back, &nd, sh);
    t_check(s == FM_OK && nd == 3 && sh[0] == 2 && sh[1] == 3 && sh[2] == 4 && !memcmp(back, x, sizeof x),
            "npy: rank-3 round trip is bit-exact");
    free(back);
    FILE *f = fopen(t_path("rt.npy"), "rb");
    unsigned char hdr[10];
    size_t got = fread(hdr, 1, 10, f);
    fclose(f);
    t_check(got == 10 && (10 + (hdr[8] | hdr[9] << 8)) % 64 == 0, "npy: data starts on a 64-byte boundary");
    int64_t s1[1] = {5};
    s = fm_npy_write(t_path("rt1.npy"), x, 1, s1);
    s = s ? s : fm_npy_read(t_path("rt1.npy"), &back, &nd, sh);
    t_check(s == FM_OK && nd == 1 && sh[0] == 5, "npy: rank-1 shape written as (5,)");
    free(back);

    /* malformed .npy */
    write_text(t_path("bad.npy"), "hello world, not numpy");
    t_check(fm_npy_read(t_path("bad.npy"), &back, &nd, sh) == FM_ERR_FORMAT && strstr(fm_last_error(), "magic"),
            "npy: wrong magic rejected: %s", fm_last_error());
    f = fopen(t_path("trunc.npy"), "wb");
    static const char th[] = "\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (10, 2), }";
    fwrite(th, 1, sizeof th - 1, f);
    for (int i = 0; i < 70 - (int)(sizeof th - 11); i++) fputc(' ', f);
    fwrite(x, 4, 5, f);
    fclose(f);
    t_check(fm_npy_read(t_path("trunc.npy"), &back, &nd, sh) == FM_ERR_FORMAT && strstr(fm_last_error(), "need 80 bytes"),
            "npy: truncated data rejected: %s", fm_last_error());

    /* CSV */
    write_text(t_path("h.csv"), "# comment\r\nx, y,z\r\n1,2,3\r\n\r\n4.5, -6e-1 ,7\r\n");
    fm_table t;
    s = fm_csv_read(t_path("h.csv"), &t);
    t_check(s == FM_OK && t.rows == 2 && t.cols == 3 && t.names && !strcmp(t.names[1], "y") && t.data[4] == -0.6f,
            "CSV: header, comments, CRLF, blank lines, spaces (%s)", T_ERR(s));
    if (!s) fm_table_free(&t);
    write_text(t_path("n.csv"), "1,2\n3,4\n");
    s = fm_csv_read(t_path("n.csv"), &t);
    t_check(s == FM_OK && t.rows == 2 && !t.names && t.data[3] == 4.0f, "CSV: no header");
    if (!s) fm_table_free(&t);
    csv_rejects("a ragged row", "a,b\n1,2\n3,4,5\n", "bad.csv:3: row has 3 fields, expected 2");
    csv_rejects("a non-numeric cell", "1,2\n3,abc\n", "bad.csv:2: field 2 'abc' is not a finite number");
    csv_rejects("an empty cell", "1,2\n3,\n", "bad.csv:2: field 2");
    csv_rejects("NaN", "1,2\nnan,1\n", "is not a finite number");
    csv_rejects("an empty file", "", "no data rows (the file is empty)");
    csv_rejects("a first row with an empty cell", "1,,2\n3,4,5\n", "bad.csv:1: field 2");
    csv_rejects("a first row with nan", "nan,1\n3,4\n", "bad.csv:1: field 1 'nan'");
    csv_rejects("hexadecimal", "1,2\n0x10,4\n", "bad.csv:2: field 1 '0x10'");
    csv_rejects("a header only", "a,b\n", "no data rows");
    const char *names[2] = {"u", "v"};
    float w[6] = {1.5f, -2, 3.25e-7f, 4, 1e30f, 0};
    s = fm_csv_write(t_path("w.csv"), w, 3, 2, names);
    s = s ? s : fm_csv_read(t_path("w.csv"), &t);
    t_check(s == FM_OK && t.rows == 3 && !memcmp(t.data, w, sizeof w) && !strcmp(t.names[0], "u"),
            "CSV: round trip is bit-exact (%%.9g)");
    if (!s) fm_table_free(&t);
    s = fm_points_read(t_path("w.txt"), &t);
    t_check(s == FM_ERR_ARG && strstr(fm_last_error(), ".npy or .csv"), "points: unknown extension refused: %s",
            fm_last_error());
}
