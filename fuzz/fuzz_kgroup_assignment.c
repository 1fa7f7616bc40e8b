/*
 * libFuzzer target for a Kafka consumer's assignment (broker/kgroup.h's
 * kgroup_assignment_each): arbitrary bytes as the group leader's
 * ConsumerProtocolAssignment. Every topic handed out must lie inside the
 * input, the partitions handed out can never outnumber the bytes that
 * carry them, and the answer is 0 or one of the documented errors.
 */
#include <stdint.h>
#include <stdlib.h>

#include "base/err.h"
#include "broker/kgroup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    const uint8_t *data;
    size_t size;
    size_t partitions;
};

static void on_assigned(void *arg, const char *topic, size_t len, int32_t partition)
{
    (void)partition;
    struct seen *s = arg;
    const uint8_t *t = (const uint8_t *)topic;
    ASSERT(len == 0 ||
           (t >= s->data && len <= s->size && t - s->data <= (ptrdiff_t)(s->size - len)));
    s->partitions++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > UINT32_MAX) {
        return 0;
    }
    struct seen s = {.data = data, .size = size};
    int rc = kgroup_assignment_each(data, (uint32_t)size, on_assigned, &s);
    ASSERT(rc == 0 || rc == -NG_ETRUNCATED || rc == -NG_EBADLEN || rc == -NG_EBADCOUNT);
    ASSERT(s.partitions <= size / 4); /* each one is 4 bytes of input */
    return 0;
}
