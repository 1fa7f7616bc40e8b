/* tests/kafka_support.c — random Kafka messages, deep comparison
 * (tests/kafka_support.h). */
#include <stdio.h>
#include <string.h>

#include "tests/kafka_support.h"

/* ---- fill ---- */

struct fill {
    int16_t version;
    uint64_t *seed;
    struct kw_arena *arena;
};

/* Where random strings and bytes point: printable, so failures read well. */
static const char pool[] =
    "the quick brown fox jumps over the lazy dog; THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG. "
    "0123456789 nagare flows: topics, partitions, segments, batches, records, offsets, groups. "
    "__offsets __share_state member-0123456789abcdef client-1 consumer range roundrobin sticky";
static_assert(sizeof(pool) > 200, "room for the longest random string");

static uint64_t next(struct fill *fl)
{
    /* splitmix64 */
    uint64_t z = (*fl->seed += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static bool chance(struct fill *fl, unsigned one_in) { return next(fl) % one_in == 0; }

/* An integer: often an edge (0, -1, the extremes), else any. */
static int64_t any_int(struct fill *fl, unsigned bits)
{
    int64_t lo = bits == 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
    int64_t hi = bits == 64 ? INT64_MAX : ((int64_t)1 << (bits - 1)) - 1;
    switch (next(fl) % 6) {
    case 0:
        return 0;
    case 1:
        return -1;
    case 2:
        return lo;
    case 3:
        return hi;
    default: {
        uint64_t v = next(fl);
        return bits == 64 ? (int64_t)v : (int64_t)(v % ((uint64_t)1 << bits)) + lo;
    }
    }
}

/* A length: mostly short, sometimes past 127 (two-byte compact lengths). */
static int32_t any_len(struct fill *fl)
{
    return (int32_t)(chance(fl, 5) ? 128 + next(fl) % 73 : next(fl) % 12);
}

static void fill_struct(struct fill *fl, const struct kafka_struct *s, void *p);

static void fill_value(struct fill *fl, uint8_t t, bool null_ok, const struct kafka_struct *sub,
                       void *p)
{
    bool null = null_ok && chance(fl, 4);
    int32_t len = null ? -1 : any_len(fl);
    const char *from = len > 0 ? pool + next(fl) % (sizeof(pool) - 1 - (size_t)len) : NULL;
    switch (t) {
    case KAFKA_T_BOOL:
        *(bool *)p = next(fl) & 1;
        break;
    case KAFKA_T_INT8:
        *(int8_t *)p = (int8_t)any_int(fl, 8);
        break;
    case KAFKA_T_INT16:
        *(int16_t *)p = (int16_t)any_int(fl, 16);
        break;
    case KAFKA_T_INT32:
        *(int32_t *)p = (int32_t)any_int(fl, 32);
        break;
    case KAFKA_T_INT64:
        *(int64_t *)p = any_int(fl, 64);
        break;
    case KAFKA_T_UUID:
        for (size_t i = 0; i < sizeof(struct kw_uuid); i++) {
            ((struct kw_uuid *)p)->bytes[i] = (uint8_t)next(fl);
        }
        break;
    case KAFKA_T_STRING:
        *(struct kw_str *)p = (struct kw_str){.ptr = null ? NULL : from ? from : "", .len = len};
        break;
    case KAFKA_T_BYTES:
        *(struct kw_bytes *)p = (struct kw_bytes){.ptr = (const uint8_t *)from, .len = len};
        break;
    case KAFKA_T_RECORDS:
        *(struct kw_records *)p = (struct kw_records){.ptr = (const uint8_t *)from, .len = len};
        break;
    case KAFKA_T_STRUCT:
        kafka_struct_init(sub, p);
        fill_struct(fl, sub, p);
        break;
    default:
        UNREACHABLE();
    }
}

static void fill_array(struct fill *fl, const struct kafka_field *f, bool null_ok, void *p)
{
    int32_t n = null_ok && chance(fl, 4) ? -1 : (int32_t)(next(fl) % 4);
    size_t size = kafka_elem_size(f->elem, f->sub);
    uint8_t *items = NULL;
    if (n > 0) {
        items = kw_arena_alloc(fl->arena, (size_t)n * size);
        ASSERT(items != NULL);
        for (int32_t i = 0; i < n; i++) {
            fill_value(fl, f->elem, false, f->sub, items + (size_t)i * size);
        }
    }
    *(void **)((char *)p + f->offset) = items;
    *(int32_t *)((char *)p + f->count_offset) = n;
}

static void fill_struct(struct fill *fl, const struct kafka_struct *s, void *p)
{
    for (uint32_t i = 0; i < s->field_count; i++) {
        const struct kafka_field *f = &s->fields[i];
        bool has = fl->version >= f->versions.min && fl->version <= f->versions.max;
        bool null_ok = fl->version >= f->nullable.min && fl->version <= f->nullable.max;
        if (!has || (f->tag >= 0 && chance(fl, 3))) {
            continue; /* its default, from kafka_init() */
        }
        if (f->type == KAFKA_T_ARRAY) {
            fill_array(fl, f, null_ok, p);
        } else {
            fill_value(fl, f->type, null_ok, f->sub, (char *)p + f->offset);
        }
    }
}

void ks_fill(const struct kafka_msg *msg, int16_t version, uint64_t *seed, struct kw_arena *a,
             void *m)
{
    struct fill fl = {.version = version, .seed = seed, .arena = a};
    kafka_init(msg, m);
    fill_struct(&fl, msg->body, m);
}

/* ---- equal ---- */

static bool same_bytes(const void *x, int32_t xlen, const void *y, int32_t ylen)
{
    return xlen == ylen && (xlen <= 0 || memcmp(x, y, (size_t)xlen) == 0);
}

static bool equal_struct(const struct kafka_struct *s, const void *x, const void *y, char *why,
                         size_t why_len);

static bool equal_value(uint8_t t, const struct kafka_struct *sub, const void *x, const void *y,
                        char *why, size_t why_len)
{
    switch (t) {
    case KAFKA_T_STRING: {
        const struct kw_str *a = x, *b = y;
        return same_bytes(a->ptr, a->len, b->ptr, b->len);
    }
    case KAFKA_T_BYTES: {
        const struct kw_bytes *a = x, *b = y;
        return same_bytes(a->ptr, a->len, b->ptr, b->len);
    }
    case KAFKA_T_RECORDS: {
        const struct kw_records *a = x, *b = y;
        return a->external == b->external && same_bytes(a->ptr, a->len, b->ptr, b->len);
    }
    case KAFKA_T_STRUCT:
        return equal_struct(sub, x, y, why, why_len);
    default:
        return memcmp(x, y, kafka_elem_size(t, sub)) == 0;
    }
}

static bool equal_field(const struct kafka_field *f, const void *x, const void *y, char *why,
                        size_t why_len)
{
    if (f->type != KAFKA_T_ARRAY) {
        return equal_value(f->type, f->sub, (const char *)x + f->offset,
                           (const char *)y + f->offset, why, why_len);
    }
    int32_t n = *(const int32_t *)((const char *)x + f->count_offset);
    if (n != *(const int32_t *)((const char *)y + f->count_offset)) {
        return false;
    }
    const char *xi = *(const void *const *)((const char *)x + f->offset);
    const char *yi = *(const void *const *)((const char *)y + f->offset);
    size_t size = kafka_elem_size(f->elem, f->sub);
    for (int32_t i = 0; i < n; i++) {
        if (!equal_value(f->elem, f->sub, xi + (size_t)i * size, yi + (size_t)i * size, why,
                         why_len)) {
            return false;
        }
    }
    return true;
}

static bool equal_struct(const struct kafka_struct *s, const void *x, const void *y, char *why,
                         size_t why_len)
{
    for (uint32_t i = 0; i < s->field_count; i++) {
        if (!equal_field(&s->fields[i], x, y, why, why_len)) {
            if (why != NULL && why[0] == '\0') {
                snprintf(why, why_len, "%s.%s", s->name, s->fields[i].name);
            }
            return false;
        }
    }
    return true;
}

bool ks_equal(const struct kafka_msg *msg, const void *x, const void *y, char *why, size_t why_len)
{
    if (why != NULL && why_len > 0) {
        why[0] = '\0';
    }
    return equal_struct(msg->body, x, y, why, why_len);
}
