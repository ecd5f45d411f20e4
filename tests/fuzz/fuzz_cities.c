/* fuzz_cities.c - the world cities' protobuf reader (cities:DIR) on arbitrary bytes. */
#include "flowmatch.h"
#include "fuzz.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    fm_table t;
    for (int split = -1; split <= 1; split++)
        if (fm__cities_parse(data, n, "fuzz", split, &t) == FM_OK) fm_table_free(&t);
    return 0;
}
