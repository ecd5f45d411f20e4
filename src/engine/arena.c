/* arena.c - the bump allocator behind every tape.
 *
 * A step's tensors, gradients and op records are carved from blocks; nothing is
 * freed individually. After a reset the blocks fold into one of the whole size,
 * so a training loop reaches a steady state with no malloc per step.
 * Not a general allocator: no free, no realloc.
 */
#include "internal.h"

#include <stdint.h>

#define FM__ALIGN 64

struct fm__block {
    fm__block *next;   /* older block */
    size_t cap, off;
    unsigned char *mem; /* FM__ALIGN-aligned start inside raw */
    void *raw;
};

static fm__block *block_new(fm__arena *a, size_t cap)
{
    fm__block *b = malloc(sizeof *b);
    if (!b) return NULL;
    b->raw = malloc(cap + FM__ALIGN);
    if (!b->raw) {
        free(b);
        return NULL;
    }
    a->mallocs += 2;
    uintptr_t p = ((uintptr_t)b->raw + FM__ALIGN - 1) & ~(uintptr_t)(FM__ALIGN - 1);
    b->mem = (unsigned char *)p;
    b->cap = cap;
    b->off = 0;
    b->next = NULL;
    return b;
}

static void blocks_free(fm__block *b)
{
    while (b) {
        fm__block *n = b->next;
        free(b->raw);
        free(b);
        b = n;
    }
}

void fm__arena_init(fm__arena *a, size_t cap)
{
    a->head = NULL;
    a->used = a->peak = a->mallocs = 0;
    a->first_cap = cap ? cap : (size_t)1 << 20;
}

void fm__arena_free(fm__arena *a)
{
    blocks_free(a->head);
    a->head = NULL;
}

void fm__arena_reset(fm__arena *a)
{
    if (a->head && (a->head->next || a->peak > a->head->cap)) {
        /* Several blocks were needed (or were, before a rewind): replace them
         * by one that holds them all. */
        size_t total = 0;
        for (fm__block *b = a->head; b; b = b->next) total += b->cap;
        if (total < a->peak) total = a->peak;
        blocks_free(a->head);
        a->head = block_new(a, total + total / 4);
    } else if (a->head) {
        a->head->off = 0;
    }
    a->used = 0;
}

void *fm__arena_alloc(fm__arena *a, size_t bytes) { return fm__arena_alloc_aligned(a, bytes, FM__ALIGN); }

void *fm__arena_alloc_aligned(fm__arena *a, size_t bytes, size_t align)
{
    FM_ASSERT(align && align <= FM__ALIGN && !(align & (align - 1)));
    size_t need = (bytes + align - 1) & ~(align - 1);
    if (need < bytes) return NULL; /* overflow */
    if (a->head) {
        fm__block *h = a->head;
        size_t off = (h->off + align - 1) & ~(align - 1);
        if (off <= h->cap && h->cap - off >= need) {
            a->used += off - h->off + need;
            h->off = off + need;
            if (a->used > a->peak) a->peak = a->used;
            return h->mem + off;
        }
    }
    /* A new block (64-byte aligned start), twice the last one or big enough. */
    size_t cap = a->head ? a->head->cap * 2 : a->first_cap;
    if (cap < need) cap = need;
    fm__block *b = block_new(a, cap);
    if (!b) return NULL;
    b->next = a->head;
    a->head = b;
    b->off = need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return b->mem;
}

fm__arena_mark fm__arena_get_mark(const fm__arena *a)
{
    fm__arena_mark m = {a->head, a->head ? a->head->off : 0, a->used};
    return m;
}

void fm__arena_rewind(fm__arena *a, const fm__arena_mark *m)
{
    while (a->head && a->head != m->block) { /* blocks added since the mark */
        fm__block *b = a->head;
        a->head = b->next;
        b->next = NULL;
        blocks_free(b);
    }
    if (a->head) a->head->off = m->off;
    a->used = m->used;
}
