/* vmath.h - vector maths for the elementwise kernels (GCC vector extensions).
 *
 * exp and expm1 by Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, and a
 * Taylor polynomial whose truncation error (< 1e-8 relative) is below float
 * rounding; expm1 evaluates its own polynomial near 0 so small arguments keep
 * full relative precision. Inputs are clamped so nothing overflows. Not a
 * general libm: NaN in gives NaN out, but no errno, no subnormal results.
 */
#ifndef FM_VMATH_H
#define FM_VMATH_H

#include <stdint.h>
#include <string.h>

#define FM_VL 16
typedef float fm_vf __attribute__((vector_size(FM_VL * sizeof(float))));
typedef int32_t fm_vi __attribute__((vector_size(FM_VL * sizeof(int32_t))));
typedef float fm_vfu __attribute__((vector_size(FM_VL * sizeof(float)), aligned(4), may_alias));

static inline fm_vf fm_vload(const float *p) { return *(const fm_vfu *)p; }
static inline void fm_vstore(float *p, fm_vf v) { *(fm_vfu *)p = v; }
static inline fm_vf fm_vsplat(float s) { return (fm_vf){0} + s; }

/* m ? a : b for a comparison mask m (all-ones lanes are true). */
static inline fm_vf fm_vsel(fm_vi m, fm_vf a, fm_vf b)
{
    return (fm_vf)((m & (fm_vi)a) | (~m & (fm_vi)b));
}

#if defined(__AVX512F__) && FM_VL == 16
#include <immintrin.h>
/* a > b ? a : b and a < b ? a : b are exactly what vmaxps and vminps compute
 * (the second operand when either is NaN or both are zero): one instruction
 * instead of a compare and a select, same bits. */
static inline fm_vf fm_vmax(fm_vf a, fm_vf b) { return (fm_vf)_mm512_max_ps((__m512)a, (__m512)b); }
static inline fm_vf fm_vmin(fm_vf a, fm_vf b) { return (fm_vf)_mm512_min_ps((__m512)a, (__m512)b); }
/* Masks as the comparisons give them (a mask register), and one blend per
 * select, where the vector form costs a mask-to-vector step and two xors. */
typedef __mmask16 fm_vm;
static inline fm_vm fm_vgt(fm_vf a, fm_vf b) { return _mm512_cmp_ps_mask((__m512)a, (__m512)b, _CMP_GT_OQ); }
static inline fm_vm fm_vlt(fm_vf a, fm_vf b) { return _mm512_cmp_ps_mask((__m512)a, (__m512)b, _CMP_LT_OQ); }
static inline fm_vm fm_visnan(fm_vf x) { return _mm512_cmp_ps_mask((__m512)x, (__m512)x, _CMP_UNORD_Q); }
static inline fm_vm fm_vzero_i(fm_vi n) { return _mm512_cmpeq_epi32_mask((__m512i)n, _mm512_setzero_si512()); }
static inline fm_vf fm_vselm(fm_vm m, fm_vf a, fm_vf b) { return (fm_vf)_mm512_mask_blend_ps(m, (__m512)b, (__m512)a); }
#else
static inline fm_vf fm_vmax(fm_vf a, fm_vf b) { return fm_vsel(a > b, a, b); }
static inline fm_vf fm_vmin(fm_vf a, fm_vf b) { return fm_vsel(a < b, a, b); }
typedef fm_vi fm_vm;
static inline fm_vm fm_vgt(fm_vf a, fm_vf b) { return a > b; }
static inline fm_vm fm_vlt(fm_vf a, fm_vf b) { return a < b; }
static inline fm_vm fm_visnan(fm_vf x) { return x != x; }
static inline fm_vm fm_vzero_i(fm_vi n) { return n == 0; }
static inline fm_vf fm_vselm(fm_vm m, fm_vf a, fm_vf b) { return fm_vsel(m, a, b); }
#endif

/* Lane-wise sqrt (the compiler emits the vector instruction; needs -fno-math-errno). */
static inline fm_vf fm_vsqrt(fm_vf x)
{
    float t[FM_VL];
    memcpy(t, &x, sizeof t);
    for (int i = 0; i < FM_VL; i++) t[i] = __builtin_sqrtf(t[i]);
    memcpy(&x, t, sizeof t);
    return x;
}

/* Range reduction shared by exp and expm1: x = n ln2 + r. */
static inline void fm__vreduce(fm_vf x, fm_vf *r, fm_vi *n)
{
    fm_vf fn = x * 1.44269504088896341f;
    /* round to nearest: add and subtract 1.5 * 2^23 */
    fn = (fn + 12582912.0f) - 12582912.0f;
    *n = __builtin_convertvector(fn, fm_vi);
    *r = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
}

/* exp(r) - 1 for |r| <= ln2 / 2, Taylor to degree 8. */
static inline fm_vf fm__vexpm1_small(fm_vf r)
{
    fm_vf p = fm_vsplat(1.0f / 40320);
    p = p * r + 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    return (p * r) * r + r;
}

/* p 2^n for n in [-126, 128], by two normal factors applied in turn so no
 * intermediate overflows or underflows early. */
static inline fm_vf fm__vldexp(fm_vf p, fm_vi n)
{
    fm_vi h = n >> 1;
    return (p * (fm_vf)((h + 127) << 23)) * (fm_vf)((n - h + 127) << 23);
}

static inline fm_vf fm_vexp(fm_vf x)
{
    fm_vf xc = fm_vmin(fm_vmax(x, fm_vsplat(-87.33654f)), fm_vsplat(88.72283f));
    fm_vf r;
    fm_vi n;
    fm__vreduce(xc, &r, &n);
    fm_vf e = fm__vldexp(fm__vexpm1_small(r) + 1.0f, n);
    e = fm_vselm(fm_vlt(x, fm_vsplat(-87.33654f)), fm_vsplat(0.0f), e);
    e = fm_vselm(fm_vgt(x, fm_vsplat(88.72283f)), fm_vsplat(__builtin_inff()), e);
    return fm_vselm(fm_visnan(x), x, e);
}

/* expm1 from one polynomial: with x = n ln2 + r, expm1(x) = expm1(r) when
 * n = 0 (full relative precision near 0) and 2^n (expm1(r) + 1) - 1 otherwise
 * (no cancellation: the result is then at least 0.4 or at most -0.29). */
static inline fm_vf fm_vexpm1(fm_vf x)
{
    fm_vf xc = fm_vmin(fm_vmax(x, fm_vsplat(-88.0f)), fm_vsplat(88.72283f));
    fm_vf r;
    fm_vi n;
    fm__vreduce(xc, &r, &n);
    fm_vf p = fm__vexpm1_small(r);
    fm_vf e = fm_vselm(fm_vzero_i(n), p, fm__vldexp(p + 1.0f, n) - 1.0f);
    e = fm_vselm(fm_vgt(x, fm_vsplat(88.72283f)), fm_vsplat(__builtin_inff()), e);
    return fm_vselm(fm_visnan(x), x, e);
}

/* expm1 for x <= 0 (ELU, SELU): n lies in [-127, 0], so one exponent factor
 * suffices and nothing overflows; NaN passes through. */
static inline fm_vf fm_vexpm1_neg(fm_vf x)
{
    fm_vf xc = fm_vmax(fm_vmin(x, fm_vsplat(0.0f)), fm_vsplat(-87.0f));
    fm_vf r;
    fm_vi n;
    fm__vreduce(xc, &r, &n);
    fm_vf p = fm__vexpm1_small(r);
    fm_vf e = fm_vselm(fm_vzero_i(n), p, (p + 1.0f) * (fm_vf)((n + 127) << 23) - 1.0f);
    return fm_vselm(fm_visnan(x), x, e);
}

/* log(x) for positive normal x: x = m 2^e with m in [sqrt(1/2), sqrt 2),
 * log(m) = f - f^2/2 + f^3 P(f) for f = m - 1 (a minimax polynomial, the
 * classic single-precision one), plus e ln 2 in two parts. */
static inline fm_vf fm_vlog(fm_vf x)
{
    fm_vi bits = (fm_vi)x;
    fm_vi e = ((bits >> 23) & 0xFF) - 126;
    fm_vf m = (fm_vf)((bits & 0x007FFFFF) | 0x3F000000); /* [0.5, 1) */
    fm_vi small = m < 0.70710678f;
    e = e - (small & 1);
    m = fm_vsel(small, m + m, m) - 1.0f;
    fm_vf z = m * m;
    fm_vf p = fm_vsplat(7.0376836292e-2f);
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    fm_vf fe = __builtin_convertvector(e, fm_vf);
    fm_vf y = p * m * z + fe * -2.12194440e-4f - 0.5f * z;
    return m + y + fe * 0.693359375f;
}

/* sin and cos of 2 pi u for u in [0, 1): the quadrant is taken from u itself
 * (exact in float), the rest is a Taylor polynomial on [-pi/4, pi/4] whose
 * truncation error is far below float rounding. */
static inline void fm_vsincos2pi(fm_vf u, fm_vf *sn, fm_vf *cs)
{
    fm_vf q = ((u * 4.0f) + 12582912.0f) - 12582912.0f; /* round(4u) */
    fm_vi qi = __builtin_convertvector(q, fm_vi) & 3;
    fm_vf a = (u - q * 0.25f) * 6.28318530717958648f;
    fm_vf z = a * a;
    fm_vf s = fm_vsplat(2.7557319224e-6f); /* 1/9! */
    s = s * z - 1.9841269841e-4f;
    s = s * z + 8.3333333333e-3f;
    s = s * z - 1.6666666667e-1f;
    s = s * z * a + a;
    fm_vf c = fm_vsplat(-2.7557319224e-7f); /* -1/10! */
    c = c * z + 2.4801587302e-5f;
    c = c * z - 1.3888888889e-3f;
    c = c * z + 4.1666666667e-2f;
    c = c * z - 0.5f;
    c = c * z + 1.0f;
    /* rotate by the quadrant: q = 1 (c, -s), 2 (-s, -c), 3 (-c, s) */
    fm_vi odd = (qi & 1) != 0, neg_s = (qi == 2) | (qi == 3), neg_c = (qi == 1) | (qi == 2);
    fm_vf s2 = fm_vsel(odd, c, s), c2 = fm_vsel(odd, s, c);
    *sn = fm_vsel(neg_s, -s2, s2);
    *cs = fm_vsel(neg_c, -c2, c2);
}

#endif
