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

static inline fm_vf fm_vmax(fm_vf a, fm_vf b) { return fm_vsel(a > b, a, b); }
static inline fm_vf fm_vmin(fm_vf a, fm_vf b) { return fm_vsel(a < b, a, b); }

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
    e = fm_vsel(x < -87.33654f, fm_vsplat(0.0f), e);
    e = fm_vsel(x > 88.72283f, fm_vsplat(__builtin_inff()), e);
    return fm_vsel(x != x, x, e);
}

static inline fm_vf fm_vexpm1(fm_vf x)
{
    fm_vf xc = fm_vmin(fm_vmax(x, fm_vsplat(-88.0f)), fm_vsplat(88.72283f));
    fm_vf r;
    fm_vi n;
    fm__vreduce(xc, &r, &n);
    fm_vf big = fm__vldexp(fm__vexpm1_small(r) + 1.0f, n) - 1.0f;
    fm_vf small = fm__vexpm1_small(xc);
    fm_vi near0 = (xc < 0.34657359f) & (xc > -0.34657359f);
    fm_vf e = fm_vsel(near0, small, big);
    e = fm_vsel(x < -88.0f, fm_vsplat(-1.0f), e);
    e = fm_vsel(x > 88.72283f, fm_vsplat(__builtin_inff()), e);
    return fm_vsel(x != x, x, e);
}

#endif
