/* fuzz_json.c - the JSON reader of safetensors headers on arbitrary text. */
#include "io/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    fm__arena a;
    char err[160];
    fm__arena_init(&a, 1 << 12);
    fm__json *j = fm__json_parse((const char *)data, n, &a, err, sizeof err);
    for (fm__json *c = j ? j->child : NULL; c; c = c->next) {
        uint64_t v;
        if (c->kind == FM__J_NUM) fm__json_uint(c, &v);
    }
    fm__arena_free(&a);
    return 0;
}
