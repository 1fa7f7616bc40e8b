/*
 * client/msg.h — the record handed to the application (struct
 * nagare_message) as both consumers build it: decoded from a batch of the
 * broker's answer, its headers in an array next to it, which
 * nagare_message_header() reads. Not public.
 *
 * Invariants. struct cmsg starts with the public struct, so a pointer to
 * one is a pointer to the other; every nagare_message the library hands
 * out is a cmsg's. Its pointers point into the batch (or the decompression
 * buffer) it was read from, valid until that is reused. Threads: the
 * owning handle's.
 */
#ifndef NAGARE_CLIENT_MSG_H
#define NAGARE_CLIENT_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "client/nagare.h"
#include "storage/batch.h"

/* Decompression buffer: first size; doubles up to BATCH_BYTES_LIMIT. */
#define MSG_ZBUF_BYTES_INITIAL (1u << 20)

struct cmsg {
    struct nagare_message pub; /* first: nagare_message_header() casts back */
    struct nagare_header *hdrs;
    uint32_t hdr_cap;
};

/* Fills m from rec (its headers decoded into m->hdrs, grown as needed);
 * delivery_count 0. Returns 0, -ENOMEM, or the header decoder's error. */
MUST_USE int cmsg_fill(struct cmsg *m, const char *topic, int32_t partition,
                       struct batch_record *rec);
void cmsg_fini(struct cmsg *m);

/* Opens a batch for reading (batch_reader_open()), doubling the
 * decompression buffer *zbuf (of *zbuf_cap bytes) while a batch needs more,
 * up to BATCH_BYTES_LIMIT. Returns batch_reader_open()'s result or -ENOMEM. */
MUST_USE int msg_batch_open(struct batch_reader *br, const uint8_t *at, size_t len,
                            struct batch_zctx *z, uint8_t **zbuf, size_t *zbuf_cap);

#endif
