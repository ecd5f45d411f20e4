/* test_rng.c - xoshiro256** against an independent implementation, streams,
 * and the distribution of uniform and normal draws.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compare n outputs of r with the comma-separated decimals of meta key. */
static void against(const fm_st *st, const char *key, fm_rng *r, int n)
{
    const char *v = fm_st_meta(st, key);
    if (!t_check(v != NULL, "rng fixture has %s", key)) return;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char *end;
        unsigned long long want = strtoull(v, &end, 10);
        uint64_t got = fm_rng_next(r);
        if (got != want) bad++;
        v = *end ? end + 1 : end;
    }
    t_check(bad == 0, "xoshiro256** %s: %d of %d outputs differ", key, bad, n);
}

void test_rng(void)
{
    fm_st *st = t_fixture("rng.safetensors");
    if (st) {
        fm_rng r = {{1, 2, 3, 4}};
        against(st, "state1234", &r, 8);
        fm_rng_seed(&r, 42, 0);
        against(st, "seed42", &r, 4);
        fm_rng_seed(&r, 42, 2);
        against(st, "seed42_stream2", &r, 4);
        fm_st_free(st);
    }

    /* Uniform: range and first two moments over 1e6 draws (fixed seed, so no flakes). */
    size_t n = 1000000;
    float *u = malloc(n * sizeof(float));
    fm_rng r;
    fm_rng_seed(&r, 7, FM_STREAM_DATA);
    fm_rng_uniform_fill(&r, u, n, 0.0f, 1.0f);
    double s = 0, s2 = 0, lo = 1, hi = 0;
    for (size_t i = 0; i < n; i++) {
        s += u[i];
        s2 += (double)u[i] * u[i];
        if (u[i] < lo) lo = u[i];
        if (u[i] > hi) hi = u[i];
    }
    double mean = s / n, var = s2 / n - mean * mean;
    t_check(lo >= 0.0 && hi < 1.0, "uniform in [0, 1): min %.2e max %.8f", lo, hi);
    t_check(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / n), "uniform mean %.6f (|err| %.1e, 5 sigma %.1e)", mean,
            fabs(mean - 0.5), 5 * sqrt(1.0 / 12 / n));
    t_check(fabs(var - 1.0 / 12) < 1e-3, "uniform variance %.6f vs 1/12 (err %.1e)", var, fabs(var - 1.0 / 12));

    /* Normal: moments and the Kolmogorov-Smirnov distance to Phi. */
    fm_rng_seed(&r, 7, FM_STREAM_NOISE);
    fm_rng_normal_fill(&r, u, n, 0.0f, 1.0f);
    double m1 = 0, m2 = 0, m4 = 0;
    for (size_t i = 0; i < n; i++) {
        double x = u[i];
        m1 += x;
        m2 += x * x;
        m4 += x * x * x * x;
    }
    m1 /= n;
    m2 /= n;
    m4 /= n;
    t_check(fabs(m1) < 5 / sqrt((double)n), "normal mean %.2e (5 sigma %.1e)", m1, 5 / sqrt((double)n));
    t_check(fabs(m2 - 1) < 5 * sqrt(2.0 / n), "normal variance %.5f (err %.1e)", m2, fabs(m2 - 1));
    t_check(fabs(m4 - 3) < 5 * sqrt(96.0 / n), "normal fourth moment %.4f vs 3 (err %.1e)", m4, fabs(m4 - 3));
    /* KS on a 20000-draw prefix, sorted by counting into fine bins. */
    int m = 20000, bins = 4000;
    int *cnt = calloc((size_t)bins, sizeof(int));
    for (int i = 0; i < m; i++) {
        int b = (int)((u[i] + 6.0) / 12.0 * bins);
        if (b >= 0 && b < bins) cnt[b]++;
    }
    double ks = 0, cum = 0;
    for (int b = 0; b < bins; b++) {
        cum += cnt[b];
        double x = -6.0 + 12.0 * (b + 1) / bins;
        double d = fabs(cum / m - 0.5 * erfc(-x / sqrt(2.0)));
        if (d > ks) ks = d;
    }
    free(cnt);
    t_check(ks < 1.63 / sqrt((double)m), "normal KS distance %.4f (1%% critical %.4f)", ks, 1.63 / sqrt((double)m));
    free(u);

    /* Streams of one seed differ, the same seed and stream repeat. */
    fm_rng a, b, c;
    fm_rng_seed(&a, 5, 1);
    fm_rng_seed(&b, 5, 2);
    fm_rng_seed(&c, 5, 1);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = fm_rng_next(&a), y = fm_rng_next(&b), z = fm_rng_next(&c);
        same_ab += x == y;
        same_ac += x == z;
    }
    t_check(same_ab == 0 && same_ac == 1000, "streams: 1 vs 2 share %d of 1000 draws, 1 vs 1 share %d", same_ab,
            same_ac);

    /* Hex state round trip, and its errors. */
    char hex[65];
    fm_rng_seed(&a, 99, 3);
    fm_rng_to_hex(&a, hex);
    fm_rng_from_hex(&b, hex);
    t_check(memcmp(&a, &b, sizeof a) == 0 && strlen(hex) == 64, "state hex round trip (%s)", hex);
    t_check(fm_rng_from_hex(&b, "12ab") == FM_ERR_FORMAT && strstr(fm_last_error(), "64 hex"),
            "short hex state rejected: %s", fm_last_error());
    memset(hex, '0', 64);
    t_check(fm_rng_from_hex(&b, hex) == FM_ERR_FORMAT && strstr(fm_last_error(), "all zero"),
            "all-zero state rejected: %s", fm_last_error());
}
