#include "broker/compaction.h"

#include <inttypes.h>

#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"

void compaction_init(struct compaction *c, const char *what, uint64_t segment_bytes)
{
    *c = (struct compaction){.what = what, .segment_bytes = segment_bytes};
}

bool compaction_wanted(const struct compaction *c, const struct part *log)
{
    return !c->running && part_failed(log) == 0 &&
           part_bytes(log) >= 2 * c->segment_bytes + 2 * c->bytes;
}

void compaction_begin(struct compaction *c, const struct part *log)
{
    ASSERT(!c->running);
    c->running = true;
    c->offset = part_offset_next(log);
    c->bytes_before = part_bytes(log);
}

void compaction_placed(struct compaction *c, const struct part *log)
{
    ASSERT(c->running);
    c->bytes = part_bytes(log) - c->bytes_before;
}

void compaction_end(struct compaction *c, struct part *log, int rc)
{
    ASSERT(c->running);
    c->running = false;
    uint32_t deleted = 0;
    rc = rc == 0 ? part_delete_before(log, c->offset, &deleted) : rc;
    if (rc != 0) {
        log_warn("%s: compaction stopped: %s (the log keeps its segments)", c->what, err_str(rc));
        return;
    }
    c->completed++;
    log_info("%s: compacted: snapshot of %" PRIu64 " bytes at offset %" PRId64 ", %" PRIu32
             " segment(s) deleted",
             c->what, c->bytes, c->offset, deleted);
}
