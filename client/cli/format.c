/* Printing a consumed record: --format templates and JSON (format.h). */
#include "client/cli/format.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "base/assert.h"

/* ---- the writer ---- */

static void out_bytes(struct fmt_out *o, const void *p, size_t n)
{
    if (o->err != 0 || n == 0) {
        return;
    }
    errno = 0;
    if (fwrite(p, 1, n, o->f) != n) {
        o->err = errno != 0 ? -errno : -EIO;
    }
}

static void out_byte(struct fmt_out *o, char c) { out_bytes(o, &c, 1); }

static void out_str(struct fmt_out *o, const char *s) { out_bytes(o, s, strlen(s)); }

static void out_i64(struct fmt_out *o, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, v);
    ASSERT(n > 0 && (size_t)n < sizeof(buf));
    out_bytes(o, buf, (size_t)n);
}

/* ---- compiling a template ---- */

static int fmt_add_literal(struct fmt *f, char c)
{
    if (f->literal_len >= FMT_LITERAL_BYTES_MAX) {
        return -NAGARE_ETOOBIG;
    }
    struct fmt_piece *last = f->piece_count > 0 ? &f->pieces[f->piece_count - 1] : NULL;
    if (last == NULL || last->kind != FMT_LITERAL) {
        if (f->piece_count >= FMT_PIECES_MAX) {
            return -NAGARE_ETOOBIG;
        }
        last = &f->pieces[f->piece_count++];
        *last = (struct fmt_piece){.kind = FMT_LITERAL, .literal_pos = (uint32_t)f->literal_len};
    }
    f->literal[f->literal_len++] = c;
    last->literal_len++;
    return 0;
}

static int fmt_add(struct fmt *f, enum fmt_kind kind)
{
    if (f->piece_count >= FMT_PIECES_MAX) {
        return -NAGARE_ETOOBIG;
    }
    f->pieces[f->piece_count++] = (struct fmt_piece){.kind = kind};
    return 0;
}

/* The placeholder after '%', or -1. */
static int placeholder_kind(char c)
{
    switch (c) {
    case 't':
        return FMT_TOPIC;
    case 'p':
        return FMT_PARTITION;
    case 'o':
        return FMT_OFFSET;
    case 'T':
        return FMT_TIMESTAMP;
    case 'k':
        return FMT_KEY;
    case 'v':
        return FMT_VALUE;
    case 'h':
        return FMT_HEADERS;
    default:
        return -1;
    }
}

/* The byte an escape after '\' stands for, or -1. */
static int escape_byte(char c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case '\\':
        return '\\';
    default:
        return -1;
    }
}

/* Compiles the two-character sequence at s (s[0] is '%' or '\'). */
static int fmt_compile_pair(struct fmt *f, const char *s, char *why, size_t why_bytes)
{
    if (s[1] == '\0') {
        snprintf(why, why_bytes, "it ends with a lone '%c'", s[0]);
        return -NAGARE_EBADARG;
    }
    if (s[0] == '%' && s[1] == '%') {
        return fmt_add_literal(f, '%');
    }
    int v = s[0] == '%' ? placeholder_kind(s[1]) : escape_byte(s[1]);
    if (v < 0) {
        snprintf(why, why_bytes, "unknown %s '%c%c'", s[0] == '%' ? "placeholder" : "escape", s[0],
                 s[1]);
        return -NAGARE_EBADARG;
    }
    return s[0] == '%' ? fmt_add(f, (enum fmt_kind)v) : fmt_add_literal(f, (char)v);
}

int fmt_compile(struct fmt *f, const char *spec, char *why, size_t why_bytes)
{
    ASSERT(why != NULL && why_bytes > 0);
    memset(f, 0, sizeof(*f));
    why[0] = '\0';
    for (const char *s = spec; *s != '\0'; s++) {
        int rc;
        if (*s == '%' || *s == '\\') {
            rc = fmt_compile_pair(f, s, why, why_bytes);
            s++;
        } else {
            rc = fmt_add_literal(f, *s);
        }
        if (rc == -NAGARE_ETOOBIG) {
            snprintf(why, why_bytes, "longer than %d bytes or %d pieces", FMT_LITERAL_BYTES_MAX,
                     FMT_PIECES_MAX);
        }
        if (rc < 0) {
            return -NAGARE_EBADARG;
        }
    }
    return 0;
}

/* ---- printing through a template ---- */

static void print_nullable(struct fmt_out *o, const void *p, ssize_t len)
{
    if (len > 0) {
        out_bytes(o, p, (size_t)len);
    }
}

static void print_headers(struct fmt_out *o, const struct nagare_message *m)
{
    for (size_t i = 0; i < m->header_count; i++) {
        struct nagare_header h;
        nagare_message_header(m, i, &h);
        if (i > 0) {
            out_byte(o, ',');
        }
        out_bytes(o, h.key, h.key_len);
        if (h.value_len >= 0) {
            out_byte(o, '=');
            print_nullable(o, h.value, h.value_len);
        }
    }
}

static void print_piece(struct fmt_out *o, const struct fmt *f, const struct fmt_piece *pc,
                        const struct nagare_message *m)
{
    switch (pc->kind) {
    case FMT_LITERAL:
        out_bytes(o, f->literal + pc->literal_pos, pc->literal_len);
        return;
    case FMT_TOPIC:
        out_str(o, m->topic);
        return;
    case FMT_PARTITION:
        out_i64(o, m->partition);
        return;
    case FMT_OFFSET:
        out_i64(o, m->offset);
        return;
    case FMT_TIMESTAMP:
        out_i64(o, m->timestamp_ms);
        return;
    case FMT_KEY:
        print_nullable(o, m->key, m->key_len);
        return;
    case FMT_VALUE:
        print_nullable(o, m->value, m->value_len);
        return;
    case FMT_HEADERS:
        print_headers(o, m);
        return;
    }
    UNREACHABLE();
}

void fmt_print(struct fmt_out *o, const struct fmt *f, const struct nagare_message *m)
{
    for (size_t i = 0; i < f->piece_count && o->err == 0; i++) {
        print_piece(o, f, &f->pieces[i], m);
    }
}

/* ---- JSON (RFC 8259) ---- */

/* Length of the valid UTF-8 sequence at p (n > 0 bytes left), or 0 for an
 * invalid one: overlong forms, surrogates and code points past U+10FFFF are
 * invalid (RFC 3629). */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t b = p[0];
    size_t len;
    uint32_t cp;
    uint32_t min;
    if (b < 0x80) {
        return 1;
    }
    if (b >= 0xc2 && b <= 0xdf) {
        len = 2;
        cp = b & 0x1fu;
        min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
        len = 3;
        cp = b & 0x0fu;
        min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        cp = b & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    bool bad = cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff);
    return bad ? 0 : len;
}

/* Bytes at p that go out as they are, or 0 when p[0] needs an escape. */
static size_t json_plain_len(const uint8_t *p, size_t n)
{
    if (p[0] == '"' || p[0] == '\\' || p[0] < 0x20 || p[0] == 0x7f) {
        return 0;
    }
    return utf8_len(p, n);
}

static void json_escape(struct fmt_out *o, uint8_t b)
{
    static const char hex[] = "0123456789abcdef";
    switch (b) {
    case '"':
        out_str(o, "\\\"");
        return;
    case '\\':
        out_str(o, "\\\\");
        return;
    case '\n':
        out_str(o, "\\n");
        return;
    case '\r':
        out_str(o, "\\r");
        return;
    case '\t':
        out_str(o, "\\t");
        return;
    default:
        break;
    }
    char u[6] = {'\\', 'u', '0', '0', hex[b >> 4], hex[b & 0xf]};
    out_bytes(o, u, sizeof(u));
}

void fmt_json_string(struct fmt_out *o, const void *v, size_t n)
{
    const uint8_t *p = v;
    size_t run = 0;
    size_t i = 0;
    out_byte(o, '"');
    while (i < n) {
        size_t len = json_plain_len(p + i, n - i);
        if (len > 0) {
            i += len;
            continue;
        }
        out_bytes(o, p + run, i - run);
        json_escape(o, p[i]);
        run = ++i;
    }
    out_bytes(o, p + run, n - run);
    out_byte(o, '"');
}

static void json_nullable(struct fmt_out *o, const void *p, ssize_t len)
{
    if (len < 0) {
        out_str(o, "null");
    } else {
        fmt_json_string(o, p, (size_t)len);
    }
}

static void json_headers(struct fmt_out *o, const struct nagare_message *m)
{
    out_byte(o, '[');
    for (size_t i = 0; i < m->header_count; i++) {
        struct nagare_header h;
        nagare_message_header(m, i, &h);
        out_str(o, i > 0 ? ",{\"key\":" : "{\"key\":");
        fmt_json_string(o, h.key, h.key_len);
        out_str(o, ",\"value\":");
        json_nullable(o, h.value, h.value_len);
        out_byte(o, '}');
    }
    out_byte(o, ']');
}

void fmt_print_json(struct fmt_out *o, const struct nagare_message *m)
{
    out_str(o, "{\"topic\":");
    fmt_json_string(o, m->topic, strlen(m->topic));
    out_str(o, ",\"partition\":");
    out_i64(o, m->partition);
    out_str(o, ",\"offset\":");
    out_i64(o, m->offset);
    out_str(o, ",\"timestamp_ms\":");
    out_i64(o, m->timestamp_ms);
    out_str(o, ",\"key\":");
    json_nullable(o, m->key, m->key_len);
    out_str(o, ",\"value\":");
    json_nullable(o, m->value, m->value_len);
    out_str(o, ",\"headers\":");
    json_headers(o, m);
    out_str(o, "}\n");
}
