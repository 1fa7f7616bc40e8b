/*
 * Tests that net/proto.def and the codec agree where the compiler cannot
 * see it: every api's versions as ApiVersions tells them, and a round trip
 * through the typed decoder and encoder of every message at every version,
 * on bodies net/proto_gen.py builds from the def alone (net/proto_recode.h).
 * A message added to the def is tested here without a line written.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "net/proto_recode.h"

static uint8_t frame[1 << 16];
static uint8_t out[1 << 16];

#define CORRELATION_ID 0x01020304u
#define CLIENT_ID "cid"

static const struct proto_def_api *def_api(uint16_t key)
{
    for (size_t i = 0; i < proto_def_api_count; i++) {
        if (proto_def_apis[i].key == key) {
            return &proto_def_apis[i];
        }
    }
    return NULL;
}

Test(proto_def, api_versions_lists_every_api_of_the_def_at_its_versions)
{
    struct proto_api_versions_resp resp;
    proto_api_versions_fill(&resp, PROTO_FRAME_BYTES_DEFAULT);
    cr_assert_eq(resp.api_count, proto_def_api_count);
    for (uint32_t i = 0; i < resp.api_count; i++) {
        const struct proto_api_range *r = &resp.apis[i];
        const struct proto_def_api *a = def_api(r->api_key);
        cr_assert_not_null(a, "ApiVersions lists key %u, not in net/proto.def", r->api_key);
        cr_assert_eq(r->version_min, 0, "%s", a->name);
        cr_assert_eq(r->version_max, a->version_max, "%s: %u, the def says %u", a->name,
                     r->version_max, a->version_max);
    }
}

Test(proto_def, each_key_is_known_exactly_when_the_def_has_it)
{
    for (uint32_t key = 0; key <= UINT16_MAX; key++) {
        const struct proto_def_api *a = def_api((uint16_t)key);
        cr_assert_eq(proto_api_known((uint16_t)key), a != NULL, "key %u", key);
        if (a == NULL) {
            cr_assert_eq(proto_api_check((uint16_t)key, 0), -NG_EUNKNOWN_API);
            continue;
        }
        cr_assert_str_eq(proto_api_name(a->key), a->name);
        cr_assert_eq(proto_api_version_max(a->key), a->version_max, "%s", a->name);
        for (uint32_t v = 0; v <= a->version_max; v++) {
            cr_assert_eq(proto_api_check(a->key, (uint16_t)v), 0, "%s v%u", a->name, v);
        }
        cr_assert_eq(proto_api_check(a->key, (uint16_t)(a->version_max + 1)), -NG_EBADVERSION,
                     "%s v%u", a->name, a->version_max + 1);
    }
}

/* The whole frame of sample s: prefix, header, body. */
static size_t sample_frame(const struct proto_def_sample *s)
{
    struct wr w = wr_make(frame, sizeof(frame));
    wr_be32(&w, 0);
    if (s->response) {
        wr_be32(&w, CORRELATION_ID);
        wr_be16(&w, 0);
    } else {
        wr_be16(&w, s->api_key);
        wr_be16(&w, s->version);
        wr_be32(&w, CORRELATION_ID);
        wr_be16(&w, (uint16_t)strlen(CLIENT_ID));
        wr_bytes(&w, CLIENT_ID, strlen(CLIENT_ID));
    }
    wr_bytes(&w, s->body, s->body_bytes);
    cr_assert_eq(w.err, 0);
    put_be32(frame, (uint32_t)(w.pos - PROTO_FRAME_PREFIX_BYTES));
    return w.pos;
}

/* Decodes the first body_bytes of the body after the sample's header
 * (which ends at header_end in frame) and encodes it again into out;
 * returns the decode's error. */
static int recode(const struct proto_def_sample *s, size_t header_end, size_t body_bytes,
                  struct wr *w, int *enc_rc)
{
    struct rd r = rd_make(frame + PROTO_FRAME_PREFIX_BYTES,
                          header_end + body_bytes - PROTO_FRAME_PREFIX_BYTES);
    struct proto_str client_id = PROTO_STR_NULL;
    if (s->response) {
        struct proto_resp_header h;
        cr_assert_eq(proto_resp_header_decode(&r, &h), 0);
        cr_assert_eq(h.err, 0);
    } else {
        struct proto_req_header h;
        cr_assert_eq(proto_req_header_decode(&r, &h), 0);
        cr_assert_eq(h.api_key, s->api_key);
        client_id = h.client_id;
    }
    *w = wr_make(out, sizeof(out));
    return proto_recode(s->api_key, s->version, s->response, CORRELATION_ID, client_id, &r, w,
                        enc_rc);
}

static const char *sample_name(const struct proto_def_sample *s)
{
    static char name[96];
    snprintf(name, sizeof(name), "%s v%u %s (%s)", proto_api_name(s->api_key), s->version,
             s->response ? "response" : "request", s->full ? "full" : "empty");
    return name;
}

Test(proto_def, every_message_of_the_def_decodes_and_encodes_to_the_same_bytes)
{
    for (size_t i = 0; i < proto_def_sample_count; i++) {
        const struct proto_def_sample *s = &proto_def_samples[i];
        size_t n = sample_frame(s);
        struct wr w;
        int enc_rc = -1;
        int rc = recode(s, n - s->body_bytes, s->body_bytes, &w, &enc_rc);
        cr_assert_eq(rc, 0, "%s: decode: %s", sample_name(s), err_str(rc));
        cr_assert_eq(enc_rc, 0, "%s: encode: %s", sample_name(s), err_str(enc_rc));
        cr_assert_eq(w.pos, n, "%s: %zu bytes, not %zu", sample_name(s), w.pos, n);
        cr_assert_eq(memcmp(out, frame, n), 0, "%s: other bytes", sample_name(s));
    }
}

Test(proto_def, every_message_of_the_def_is_refused_cut_short_or_with_a_byte_more)
{
    for (size_t i = 0; i < proto_def_sample_count; i++) {
        const struct proto_def_sample *s = &proto_def_samples[i];
        size_t n = sample_frame(s);
        struct wr w;
        int enc_rc;
        for (size_t cut = 0; cut < s->body_bytes; cut++) {
            int rc = recode(s, n - s->body_bytes, cut, &w, &enc_rc);
            cr_assert(rc < 0 && rc != -NG_EUNKNOWN_API, "%s cut at %zu: %d", sample_name(s), cut,
                      rc);
        }
        frame[n] = 0;
        int rc = recode(s, n - s->body_bytes, s->body_bytes + 1, &w, &enc_rc);
        cr_assert_eq(rc, -NG_EBADLEN, "%s and a byte: %d", sample_name(s), rc);
    }
}

/* What proto_req_names() called back with first, and how often with a
 * group. */
struct names_seen {
    int calls;
    int groups;
    enum proto_name_kind first_kind;
    struct proto_str first;
};

static int see_name(void *arg, enum proto_name_kind kind, struct proto_str name)
{
    struct names_seen *seen = arg;
    if (seen->calls++ == 0) {
        seen->first_kind = kind;
        seen->first = name;
    }
    seen->groups += kind == PROTO_NAME_GROUP;
    return 0;
}

Test(proto_def, a_request_names_first_what_the_def_says_it_acts_on)
{
    for (size_t i = 0; i < proto_def_sample_count; i++) {
        const struct proto_def_sample *s = &proto_def_samples[i];
        if (s->response || !s->full) {
            continue;
        }
        const struct proto_def_api *a = def_api(s->api_key);
        struct names_seen seen = {0};
        struct rd body = rd_make(s->body, s->body_bytes);
        cr_assert_eq(proto_req_names(&body, s->api_key, s->version, see_name, &seen), 0, "%s",
                     sample_name(s));
        if (a->names == 0) {
            cr_assert_eq(seen.groups, 0, "%s names no group", sample_name(s));
            continue;
        }
        /* The body's first field, a string: its i16 length, its bytes. */
        struct rd r = rd_make(s->body, s->body_bytes);
        uint16_t len = rd_be16(&r);
        const uint8_t *text = rd_take(&r, len);
        cr_assert_gt(seen.calls, 0, "%s", sample_name(s));
        cr_assert_eq(seen.first_kind, a->names, "%s", sample_name(s));
        cr_assert(seen.first.len == len && memcmp(seen.first.ptr, text, len) == 0, "%s",
                  sample_name(s));
        cr_assert_eq(seen.groups, a->names == PROTO_NAME_GROUP ? 1 : 0, "%s", sample_name(s));
    }
}
