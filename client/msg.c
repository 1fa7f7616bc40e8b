/* client/msg.c — records as the application sees them (client/msg.h). */
#include "client/msg.h"

#include <errno.h>
#include <stdlib.h>

static int cmsg_headers(struct cmsg *m, struct batch_record *rec)
{
    if (rec->header_count > m->hdr_cap) {
        struct nagare_header *h = realloc(m->hdrs, rec->header_count * sizeof(*h));
        if (h == NULL) {
            return -ENOMEM;
        }
        m->hdrs = h;
        m->hdr_cap = rec->header_count;
    }
    for (uint32_t i = 0; i < rec->header_count; i++) {
        struct batch_kv kv;
        int rc = batch_record_next_header(rec, &kv);
        if (rc != 1) {
            return rc < 0 ? rc : -NG_ECORRUPT;
        }
        m->hdrs[i] = (struct nagare_header){.key = (const char *)kv.key,
                                            .key_len = (size_t)kv.key_len,
                                            .value = kv.value,
                                            .value_len = kv.value_len};
    }
    return 0;
}

int cmsg_fill(struct cmsg *m, const char *topic, int32_t partition, struct batch_record *rec)
{
    int rc = cmsg_headers(m, rec);
    if (rc != 0) {
        return rc;
    }
    m->pub = (struct nagare_message){.topic = topic,
                                     .partition = partition,
                                     .offset = rec->offset,
                                     .timestamp_ms = rec->timestamp_ms,
                                     .key = rec->key,
                                     .key_len = rec->key_len,
                                     .value = rec->value,
                                     .value_len = rec->value_len,
                                     .header_count = rec->header_count};
    return 0;
}

void cmsg_fini(struct cmsg *m)
{
    free(m->hdrs);
    m->hdrs = NULL;
    m->hdr_cap = 0;
}

int msg_batch_open(struct batch_reader *br, const uint8_t *at, size_t len, struct batch_zctx *z,
                   uint8_t **zbuf, size_t *zbuf_cap)
{
    for (;;) {
        int rc = batch_reader_open(br, at, len, BATCH_BYTES_LIMIT, z, *zbuf, *zbuf_cap);
        if (rc != -NG_ETOOBIG || *zbuf_cap >= BATCH_BYTES_LIMIT) {
            return rc;
        }
        uint8_t *grown = realloc(*zbuf, *zbuf_cap * 2);
        if (grown == NULL) {
            return -ENOMEM;
        }
        *zbuf = grown;
        *zbuf_cap *= 2;
    }
}

void nagare_message_header(const struct nagare_message *m, size_t i, struct nagare_header *out)
{
    ASSERT(m != NULL && out != NULL && i < m->header_count);
    const struct cmsg *cm = (const struct cmsg *)m;
    *out = cm->hdrs[i];
}
