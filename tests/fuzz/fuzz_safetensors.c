/* fuzz_safetensors.c - the safetensors parser on arbitrary bytes: every entry
 * it accepts is read back as float32. */
#include "flowmatch.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    fm_st *st = fm_st_parse(data, n, "fuzz");
    for (int i = 0; st && i < fm_st_count(st); i++) {
        fm_dtype dt;
        int nd;
        int64_t sh[FM_ST_MAX_DIMS];
        const char *name = fm_st_entry(st, i, &dt, &nd, sh);
        int s4[4];
        size_t count = 1;
        int ok = nd <= 4;
        for (int d = 0; ok && d < nd; d++) ok = sh[d] < (1 << 20), s4[d] = (int)sh[d], count *= (size_t)sh[d];
        if (ok && count < (1u << 22)) {
            float *buf = malloc((count ? count : 1) * sizeof(float));
            if (buf) fm_st_read(st, name, buf, nd, s4);
            free(buf);
        }
    }
    for (int i = 0; st && i < fm_st_meta_count(st); i++) {
        const char *v;
        fm_st_meta_at(st, i, &v);
    }
    fm_st_free(st);
    return 0;
}
