/* rng.c - xoshiro256** random numbers, streams, uniform and normal draws.
 *
 * The generator and its jump polynomial are Blackman and Vigna's; seeding
 * expands a 64-bit seed with splitmix64, and stream k is the seeded state
 * jumped k times (2^128 draws each), so streams of one seed cannot overlap.
 * fm_rng_normal uses Box-Muller in double; fm_rng_normal_fill computes 16
 * pairs at a time in float vectors (|z| up to 6.6). Not cryptographic.
 */
#include "internal.h"
#include "engine/vmath.h"

#include <math.h>
#include <string.h>

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t fm_rng_next(fm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint32_t fm__rng_below(fm_rng *r, uint32_t n) { return (uint32_t)(((fm_rng_next(r) >> 32) * (uint64_t)n) >> 32); }

void fm_rng_jump(fm_rng *r)
{
    static const uint64_t JUMP[4] = {0x180ec6d33cfd0abaULL, 0xd5a61266f0c9392cULL,
                                     0xa9582618e03fc9aaULL, 0x39abdc4529b1661cULL};
    uint64_t acc[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 64; b++) {
            if (JUMP[i] & (1ULL << b))
                for (int k = 0; k < 4; k++) acc[k] ^= r->s[k];
            fm_rng_next(r);
        }
    memcpy(r->s, acc, sizeof acc);
}

void fm_rng_seed(fm_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    for (uint64_t k = 0; k < stream; k++) fm_rng_jump(r);
}

double fm_rng_uniform(fm_rng *r) { return (double)(fm_rng_next(r) >> 11) * 0x1.0p-53; }

/* One Box-Muller pair from two draws; u1 in (0, 1] so the log is finite. */
static inline void normal_pair(fm_rng *r, double *z0, double *z1)
{
    double u1 = (double)((fm_rng_next(r) >> 11) + 1) * 0x1.0p-53;
    double u2 = (double)(fm_rng_next(r) >> 11) * 0x1.0p-53;
    double rad = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
    *z0 = rad * cos(th);
    *z1 = rad * sin(th);
}

double fm_rng_normal(fm_rng *r)
{
    double a, b;
    normal_pair(r, &a, &b);
    return a;
}

void fm_rng_uniform_fill(fm_rng *r, float *out, size_t n, float lo, float hi)
{
    float w = hi - lo;
    for (size_t i = 0; i < n; i++) {
        float u = (float)(fm_rng_next(r) >> 40) * 0x1.0p-24f; /* exact in float */
        out[i] = lo + w * u;
    }
}

/* 16 Box-Muller pairs in float vectors: u1 from 32 bits (so |z| reaches 6.6),
 * u2 from 24; z0 fills the first 16 outputs, z1 the next 16. */
static void normal32(fm_rng *r, float *o)
{
    float u1[16], u2[16];
    for (int i = 0; i < 16; i++) {
        uint64_t x = fm_rng_next(r);
        u1[i] = (float)((x >> 32) + 1) * 0x1.0p-32f; /* (0, 1] */
        u2[i] = (float)(x & 0xFFFFFF) * 0x1.0p-24f;   /* [0, 1) */
    }
    fm_vf rad = fm_vsqrt(fm_vsplat(-2.0f) * fm_vlog(fm_vload(u1))), sn, cs;
    fm_vsincos2pi(fm_vload(u2), &sn, &cs);
    fm_vstore(o, rad * cs);
    fm_vstore(o + 16, rad * sn);
}

void fm_rng_normal_fill(fm_rng *r, float *out, size_t n, float mean, float std)
{
    size_t i = 0;
    float tmp[32];
    for (; i + 32 <= n; i += 32) {
        normal32(r, out + i);
        for (int k = 0; k < 32; k++) out[i + k] = mean + std * out[i + k];
    }
    if (i < n) {
        normal32(r, tmp);
        for (size_t k = 0; i + k < n; k++) out[i + k] = mean + std * tmp[k];
    }
}

void fm_rng_to_hex(const fm_rng *r, char *buf)
{
    for (int i = 0; i < 4; i++) snprintf(buf + 16 * i, 17, "%016llx", (unsigned long long)r->s[i]);
}

fm_status fm_rng_from_hex(fm_rng *r, const char *hex)
{
    if (!hex || strlen(hex) != 64)
        return fm__fail(FM_ERR_FORMAT, "random state '%s' is not 64 hex digits", hex ? hex : "");
    fm_rng t;
    for (int i = 0; i < 4; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 16; j++) {
            char c = hex[16 * i + j];
            int d = c >= '0' && c <= '9' ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d < 0) return fm__fail(FM_ERR_FORMAT, "random state has a non-hex digit '%c'", c);
            v = (v << 4) | (uint64_t)d;
        }
        t.s[i] = v;
    }
    if (!(t.s[0] | t.s[1] | t.s[2] | t.s[3]))
        return fm__fail(FM_ERR_FORMAT, "random state is all zero, which xoshiro cannot leave");
    *r = t;
    return FM_OK;
}
