/* json.h - the small JSON reader and string writer used by safetensors headers.
 *
 * A tree of nodes allocated from an arena; objects and arrays keep their
 * children as a linked list in document order. Not a general JSON library:
 * numbers keep their text (so 64-bit offsets stay exact) and the depth is capped.
 */
#ifndef FM_JSON_H
#define FM_JSON_H

#include "internal.h"

typedef enum { FM__J_NULL, FM__J_BOOL, FM__J_NUM, FM__J_STR, FM__J_ARR, FM__J_OBJ } fm__jkind;

typedef struct fm__json fm__json;
struct fm__json {
    fm__jkind kind;
    const char *key;    /* member name when the parent is an object */
    const char *str;    /* string value (NUL-terminated, valid UTF-8), or a number's
                           text in the source (len bytes, not terminated) */
    size_t len;
    int boolean;
    fm__json *child;    /* first element or member */
    fm__json *next;     /* next sibling */
    int count;          /* number of children */
};

/* Parse text[0..len) as one JSON value with only whitespace after it.
 * NULL on error, with the byte offset and reason in err. The tree holds at most
 * FM__JSON_MAX_NODES values, so a hostile document cannot take unbounded memory;
 * number nodes point into text, which must outlive the tree. */
#define FM__JSON_MAX_NODES (1 << 20)
fm__json *fm__json_parse(const char *text, size_t len, fm__arena *a, char *err, size_t errlen);

/* A number node as a non-negative integer that fits in uint64; 0 on failure. */
int fm__json_uint(const fm__json *j, uint64_t *out);

/* Append s as a JSON string literal (quotes and escapes) to buf at *pos,
 * never writing past cap; *pos advances by the full length even if truncated. */
void fm__json_put_string(char *buf, size_t cap, size_t *pos, const char *s);

#endif
