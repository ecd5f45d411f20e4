/* test_data.c - datasets: scikit-learn's moons and circles exactly, every
 * generator's shape and range, spec parsing, CSV tables.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_row(const void *a, const void *b)
{
    const float *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

void test_data(void)
{
    fm_st *st = t_fixture("datasets.safetensors");
    fm_rng r;
    static const char *sets[2] = {"moons", "circles"};
    for (int k = 0; st && k < 2; k++)
        for (int n = 7; n <= 10; n += 3) {
            char name[32], spec[64];
            snprintf(name, sizeof name, "%s%d", sets[k], n);
            snprintf(spec, sizeof spec, "%s:noise=0,scale=1%s", sets[k], k ? ",factor=0.5" : "");
            float *ref = t_read(st, name, NULL), got[20];
            fm_dataset *ds = fm_dataset_open(spec);
            fm_rng_seed(&r, 3, FM_STREAM_DATA);
            if (!ref || !ds || fm_dataset_sample(ds, &r, got, n) != FM_OK) {
                t_check(0, "%s: %s", name, fm_last_error());
            } else {
                /* ours are shuffled like scikit-learn's default; compare as sets */
                qsort(got, (size_t)n, 2 * sizeof(float), cmp_row);
                qsort(ref, (size_t)n, 2 * sizeof(float), cmp_row);
                char label[64];
                snprintf(label, sizeof label, "%s(%d) equals scikit-learn", sets[k], n);
                t_close(label, got, ref, 2 * (size_t)n, 1e-6);
            }
            free(ref);
            fm_dataset_free(ds);
        }
    fm_st_free(st);

    /* every generator: dimension, finite values, plausible extent, determinism */
    char info[256];
    for (int i = 0; i < fm_dataset_count(); i++) {
        const char *name = fm_dataset_info(i, info, sizeof info);
        if (!strcmp(name, "csv") || !strcmp(name, "mnist") || !strcmp(name, "cities") || !strcmp(name, "words"))
            continue; /* files, tested in io, image, manifold and discrete */
        fm_dataset *ds = fm_dataset_open(name);
        if (!t_check(ds != NULL, "%s opens %s", name, T_ERRP(ds))) continue;
        int d = fm_dataset_dim(ds), n = 5000;
        float *a = malloc((size_t)n * d * sizeof(float)), *b = malloc((size_t)n * d * sizeof(float));
        fm_rng_seed(&r, 9, FM_STREAM_DATA);
        fm_dataset_sample(ds, &r, a, n);
        fm_rng_seed(&r, 9, FM_STREAM_DATA);
        fm_dataset_sample(ds, &r, b, n);
        double m = 0, mean0 = 0;
        int finite = 1;
        for (int j = 0; j < n * d; j++) {
            finite &= isfinite(a[j]) != 0;
            m = fmax(m, fabs(a[j]));
        }
        for (int j = 0; j < n; j++) mean0 += a[(size_t)j * d] / n;
        double lim = fm_dataset_vocab(ds) ? fm_dataset_vocab(ds) : strcmp(name, "torus-mix") ? 6 : 2 * M_PI; /* tokens, angles */
        t_check(finite && m > 0.5 && m < lim && !memcmp(a, b, (size_t)n * d * sizeof(float)),
                "%-13s dim %d, max |x| %.2f, same seed same points", fm_dataset_spec(ds), d, m);
        free(a);
        free(b);
        fm_dataset_free(ds);
    }

    /* moons' noise is Gaussian with the requested std: residuals from noise-free points */
    fm_dataset *clean = fm_dataset_open("moons:noise=0"), *noisy = fm_dataset_open("moons:noise=0.2");
    float c[2000], z[2000];
    fm_rng_seed(&r, 4, FM_STREAM_DATA);
    fm_dataset_sample(clean, &r, c, 1000);
    fm_rng_seed(&r, 4, FM_STREAM_DATA);
    fm_dataset_sample(noisy, &r, z, 1000); /* same shuffle, then noise */
    double ss = 0;
    for (int j = 0; j < 2000; j++) ss += (double)(z[j] - c[j]) * (z[j] - c[j]);
    double sd = sqrt(ss / 2000);
    t_check(fabs(sd - 0.2) < 0.015, "moons noise=0.2: residual std %.4f", sd);
    fm_dataset_free(clean);
    fm_dataset_free(noisy);

    /* specs */
    fm_dataset *ds = fm_dataset_open("circles:factor=0.3,scale=2");
    t_check(ds && !strcmp(fm_dataset_spec(ds), "circles:noise=0.05,scale=2,factor=0.3"), "canonical spec: %s",
            ds ? fm_dataset_spec(ds) : fm_last_error());
    fm_dataset_free(ds);
    ds = fm_dataset_open("circles:factor=0.9999999,noise=0.123456789");
    fm_dataset *again = ds ? fm_dataset_open(fm_dataset_spec(ds)) : NULL;
    t_check(again && !strcmp(fm_dataset_spec(again), fm_dataset_spec(ds)), "specs survive a round trip exactly: %s",
            ds ? fm_dataset_spec(ds) : fm_last_error());
    fm_dataset_free(again);
    fm_dataset_free(ds);
    ds = fm_dataset_open("gaussian:dim=5");
    t_check(ds && fm_dataset_dim(ds) == 5, "gaussian:dim=5 has 5 dimensions");
    fm_dataset_free(ds);
    static const struct {
        const char *spec, *want;
    } bad[] = {
        {"banana", "unknown dataset 'banana'"},
        {"moons:noise=abc", "not key=number"},
        {"moons:noise=-1", "unknown or invalid parameter"},
        {"moons:factor=0.5", "unknown or invalid parameter 'factor=0.5'"},
        {"circles:factor=2", "factor=2 is out of range"},
        {"gaussian:dim=0", "out of range"},
        {"csv:/nonexistent.csv", "cannot open"},
        {"moons:", "nothing after ':'"},
        {"moons:noise=0.1,", "is not key=number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ds = fm_dataset_open(bad[i].spec);
        t_check(!ds && strstr(fm_last_error(), bad[i].want), "spec '%s' refused: %s", bad[i].spec, fm_last_error());
        fm_dataset_free(ds);
    }

    /* zero points is not an error */
    ds = fm_dataset_open("moons");
    t_check(ds && fm_dataset_sample(ds, &r, NULL, 0) == FM_OK, "drawing 0 points from a fresh dataset %s",
            ds ? "" : fm_last_error());
    fm_dataset_free(ds);

    /* a CSV table: draws come from its rows */
    char path[700], spec[720];
    snprintf(path, sizeof path, "%s/table.csv", t_tmpdir());
    FILE *f = fopen(path, "w");
    fprintf(f, "a,b,c\n1,10,100\n2,20,200\n3,30,300\n");
    fclose(f);
    snprintf(spec, sizeof spec, "csv:%s", path);
    ds = fm_dataset_open(spec);
    int rows_ok = ds && fm_dataset_dim(ds) == 3 && fm_dataset_rows(ds) == 3;
    float x[300];
    fm_rng_seed(&r, 1, FM_STREAM_DATA);
    if (rows_ok) fm_dataset_sample(ds, &r, x, 100);
    int seen[4] = {0};
    for (int i = 0; rows_ok && i < 100; i++) {
        int k = (int)x[3 * i];
        rows_ok &= k >= 1 && k <= 3 && x[3 * i + 1] == 10.0f * k && x[3 * i + 2] == 100.0f * k;
        if (k >= 1 && k <= 3) seen[k] = 1;
    }
    t_check(rows_ok && seen[1] && seen[2] && seen[3], "CSV dataset draws whole rows, all of them");
    fm_dataset_free(ds);
}
