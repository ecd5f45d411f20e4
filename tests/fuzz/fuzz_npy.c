/* fuzz_npy.c - the .npy reader on arbitrary bytes. */
#include "flowmatch.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    float *d = NULL;
    int nd;
    int64_t sh[4];
    if (fm_npy_read(fuzz_file(data, n, ".npy"), &d, &nd, sh) == FM_OK) free(d);
    return 0;
}
