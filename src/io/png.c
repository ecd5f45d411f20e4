/* png.c - image grids as PNG files, through libpng.
 *
 * A grid tiles n images (c channels, h x w, NCHW floats) in rows of `cols`,
 * each surrounded by a border of FM_PNG_PAD black pixels (torchvision's
 * make_grid look). A value v maps to the byte round(255 (v - lo) / (hi - lo)),
 * clamped to 0..255; NaN is drawn black. One channel gives a grayscale PNG,
 * three an RGB one. libpng's simplified API encodes into memory and the bytes
 * go to disk through the atomic writer, so a failed write leaves any existing
 * file as it was.
 */
#include "internal.h"

#include <math.h>
#include <png.h>
#include <string.h>

static uint8_t to_byte(float v, float lo, float hi)
{
    if (!(v == v)) return 0;
    double u = ((double)v - lo) / ((double)hi - lo) * 255.0;
    if (u <= 0) return 0;
    if (u >= 255) return 255;
    return (uint8_t)floor(u + 0.5);
}

fm_status fm_png_grid_size(int n, int h, int w, int cols, int *width, int *height)
{
    if (n < 1 || h < 1 || w < 1 || cols < 1)
        return fm__fail(FM_ERR_ARG, "png grid: %d images of %d x %d in %d columns", n, h, w, cols);
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    int64_t W = (int64_t)cols * (w + FM_PNG_PAD) + FM_PNG_PAD, H = (int64_t)rows * (h + FM_PNG_PAD) + FM_PNG_PAD;
    if (W > 65535 || H > 65535) return fm__fail(FM_ERR_ARG, "png grid: %lld x %lld pixels is too large", (long long)W, (long long)H);
    *width = (int)W;
    *height = (int)H;
    return FM_OK;
}

fm_status fm_png_write_grid(const char *path, const float *x, int n, int c, int h, int w, int cols, float lo, float hi)
{
    if (c != 1 && c != 3) return fm__fail(FM_ERR_ARG, "%s: a PNG grid takes 1 or 3 channels, not %d", path, c);
    if (!(hi > lo)) return fm__fail(FM_ERR_ARG, "%s: the value range [%g, %g] is empty", path, lo, hi);
    int W, H;
    fm_status s = fm_png_grid_size(n, h, w, cols, &W, &H);
    if (s) return s;
    if (cols > n) cols = n;
    uint8_t *pix = calloc((size_t)W * H * c, 1);
    if (!pix) return fm__fail(FM_ERR_NOMEM, "out of memory for a %d x %d image", W, H);
    for (int k = 0; k < n; k++) {
        int x0 = FM_PNG_PAD + (k % cols) * (w + FM_PNG_PAD), y0 = FM_PNG_PAD + (k / cols) * (h + FM_PNG_PAD);
        const float *img = x + (size_t)k * c * h * w;
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                    pix[((size_t)(y0 + i) * W + x0 + j) * c + ch] = to_byte(img[((size_t)ch * h + i) * w + j], lo, hi);
    }
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)W;
    im.height = (png_uint_32)H;
    im.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    /* encode once into a buffer of libpng's worst-case size */
    png_alloc_size_t len = PNG_IMAGE_PNG_SIZE_MAX(im);
    void *buf = malloc(len);
    if (!buf || !png_image_write_to_memory(&im, buf, &len, 0, pix, 0, NULL)) {
        s = buf ? fm__fail(FM_ERR_IO, "%s: libpng could not encode the image: %s", path, im.message)
                : fm__fail(FM_ERR_NOMEM, "%s: out of memory encoding a %d x %d image", path, W, H);
        free(buf);
        free(pix);
        png_image_free(&im);
        return s;
    }
    free(pix);
    fm__afile af;
    s = fm__afile_open(&af, path);
    if (!s) {
        fm__afile_write(&af, buf, len);
        s = fm__afile_commit(&af);
    }
    free(buf);
    return s;
}
