/* json.c - a strict recursive-descent JSON reader (RFC 8259) and a string
 * escaper, enough for safetensors headers.
 *
 * Rejects what the grammar rejects: trailing commas, bare control characters,
 * bad escapes, lone surrogates, leading zeros, text after the value. It also
 * refuses \u0000, since names and values become C strings.
 */
#include "io/json.h"

#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t n, i;
    fm__arena *a;
    char *err;
    size_t errlen;
    int failed;
    long nodes;
    size_t slen; /* length of the last decoded string */
} parser;

static void *perr(parser *p, const char *what)
{
    if (!p->failed) {
        snprintf(p->err, p->errlen, "invalid JSON at byte %zu: %s", p->i, what);
        p->failed = 1;
    }
    return NULL;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!k || n < k) return 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return k;
}

static void skip_ws(parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

static fm__json *node(parser *p, fm__jkind k)
{
    if (++p->nodes > FM__JSON_MAX_NODES) return perr(p, "more than 1048576 values");
    fm__json *j = fm__arena_alloc_aligned(p->a, sizeof *j, 8);
    if (!j) return perr(p, "out of memory");
    memset(j, 0, sizeof *j);
    j->kind = k;
    return j;
}

static int hex4(parser *p, unsigned *out)
{
    if (p->n - p->i < 4) return 0;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i + k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + (unsigned)d;
    }
    p->i += 4;
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At an opening quote: decode the string into arena memory. */
static const char *parse_string(parser *p)
{
    p->i++; /* opening quote */
    size_t start = p->i;
    /* The decoded text is never longer than the source. */
    size_t end = start;
    while (end < p->n && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->n) return perr(p, "unterminated string");
    char *out = fm__arena_alloc_aligned(p->a, end - start + 1, 1);
    if (!out) return perr(p, "out of memory");
    size_t o = 0;
    while (p->s[p->i] != '"') {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c < 0x20) return perr(p, "control character in string");
        if (c >= 0x80) {
            size_t k = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
            if (!k) return perr(p, "invalid UTF-8 in string");
            memcpy(out + o, p->s + p->i, k);
            o += k;
            p->i += k;
            continue;
        }
        if (c != '\\') {
            out[o++] = (char)c;
            p->i++;
            continue;
        }
        p->i++;
        char e = p->s[p->i++];
        switch (e) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!hex4(p, &cp)) return perr(p, "bad \\u escape");
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                    return perr(p, "lone high surrogate");
                p->i += 2;
                if (!hex4(p, &lo) || lo < 0xDC00 || lo >= 0xE000) return perr(p, "bad low surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                return perr(p, "lone low surrogate");
            }
            if (cp == 0) return perr(p, "\\u0000 is not allowed");
            o += put_utf8(out + o, cp);
            break;
        }
        default: p->i--; return perr(p, "bad escape");
        }
    }
    p->i++; /* closing quote */
    out[o] = '\0';
    p->slen = o;
    return out;
}


static fm__json *parse_value(parser *p, int depth);

static fm__json *parse_number(parser *p)
{
    size_t st = p->i;
    if (p->s[p->i] == '-') p->i++;
    if (p->i >= p->n || !is_digit(p->s[p->i])) return perr(p, "bad number");
    if (p->s[p->i] == '0') {
        p->i++;
        if (p->i < p->n && is_digit(p->s[p->i])) return perr(p, "leading zero in number");
    } else
        while (p->i < p->n && is_digit(p->s[p->i])) p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || !is_digit(p->s[p->i])) return perr(p, "bad fraction");
        while (p->i < p->n && is_digit(p->s[p->i])) p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || !is_digit(p->s[p->i])) return perr(p, "bad exponent");
        while (p->i < p->n && is_digit(p->s[p->i])) p->i++;
    }
    fm__json *j = node(p, FM__J_NUM);
    if (!j) return NULL;
    j->str = p->s + st;
    j->len = p->i - st;
    return j;
}

static int literal(parser *p, const char *w)
{
    size_t k = strlen(w);
    if (p->n - p->i < k || memcmp(p->s + p->i, w, k) != 0) return 0;
    p->i += k;
    return 1;
}

static fm__json *parse_container(parser *p, int depth, int obj)
{
    fm__json *j = node(p, obj ? FM__J_OBJ : FM__J_ARR);
    if (!j) return NULL;
    p->i++; /* [ or { */
    char close = obj ? '}' : ']';
    fm__json **tail = &j->child;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        return j;
    }
    for (;;) {
        const char *key = NULL;
        if (obj) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') return perr(p, "expected a member name");
            key = parse_string(p);
            if (!key) return NULL;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return perr(p, "expected ':'");
            p->i++;
        }
        fm__json *v = parse_value(p, depth + 1);
        if (!v) return NULL;
        v->key = key;
        *tail = v;
        tail = &v->next;
        j->count++;
        skip_ws(p);
        if (p->i >= p->n) return perr(p, obj ? "unterminated object" : "unterminated array");
        if (p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->s[p->i] == close) {
            p->i++;
            return j;
        }
        return perr(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static fm__json *parse_value(parser *p, int depth)
{
    if (depth > MAX_DEPTH) return perr(p, "nesting too deep");
    skip_ws(p);
    if (p->i >= p->n) return perr(p, "unexpected end of text");
    char c = p->s[p->i];
    if (c == '{' || c == '[') return parse_container(p, depth, c == '{');
    if (c == '"') {
        fm__json *j = node(p, FM__J_STR);
        if (!j) return NULL;
        j->str = parse_string(p);
        j->len = p->slen;
        return j->str ? j : NULL;
    }
    if (c == '-' || is_digit(c)) return parse_number(p);
    int truth = literal(p, "true");
    if (truth || literal(p, "false")) {
        fm__json *j = node(p, FM__J_BOOL);
        if (j) j->boolean = truth;
        return j;
    }
    if (literal(p, "null")) return node(p, FM__J_NULL);
    return perr(p, "unexpected character");
}

fm__json *fm__json_parse(const char *text, size_t len, fm__arena *a, char *err, size_t errlen)
{
    parser p = {text, len, 0, a, err, errlen, 0, 0, 0};
    err[0] = '\0';
    fm__json *j = parse_value(&p, 0);
    if (!j) return NULL;
    skip_ws(&p);
    if (p.i != p.n) return perr(&p, "text after the value");
    return j;
}

int fm__json_uint(const fm__json *j, uint64_t *out)
{
    if (!j || j->kind != FM__J_NUM) return 0;
    uint64_t v = 0;
    if (!j->len) return 0;
    for (size_t i = 0; i < j->len; i++) {
        char ch = j->str[i];
        if (!is_digit(ch)) return 0; /* sign, fraction or exponent */
        unsigned d = (unsigned)(ch - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static void put(char *buf, size_t cap, size_t *pos, char c)
{
    if (*pos + 1 < cap) buf[*pos] = c;
    (*pos)++;
}

void fm__json_put_string(char *buf, size_t cap, size_t *pos, const char *s)
{
    put(buf, cap, pos, '"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            put(buf, cap, pos, '\\');
            put(buf, cap, pos, (char)*c);
        } else if (*c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *c);
            for (char *q = e; *q; q++) put(buf, cap, pos, *q);
        } else {
            put(buf, cap, pos, (char)*c);
        }
    }
    put(buf, cap, pos, '"');
    if (*pos < cap) buf[*pos] = '\0';
    else if (cap) buf[cap - 1] = '\0';
}
