#include "broker/producer_ids.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/bytes.h"
#include "base/err.h"
#include "base/ring.h"

#define IDS_FILE "producer-ids"
#define IDS_TMP "producer-ids.tmp"
#define IDS_BYTES 16 /* i64 first unreserved id, u64 XXH3-64 of those 8 bytes */

int producer_ids_open(struct producer_ids *ids, const char *data_dir)
{
    *ids = (struct producer_ids){.dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (ids->dirfd < 0) {
        return -errno;
    }
    int fd = openat(ids->dirfd, IDS_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    uint8_t buf[IDS_BYTES + 1];
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    int rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc == 0 && (n != IDS_BYTES || get_be64(buf + 8) != XXH3_64bits(buf, 8) ||
                    (int64_t)get_be64(buf) < 0)) {
        rc = -NG_ECORRUPT;
    }
    if (rc == 0) {
        ids->next = ids->limit = (int64_t)get_be64(buf);
    }
    return rc;
}

void producer_ids_close(struct producer_ids *ids)
{
    if (ids->dirfd >= 0) {
        close(ids->dirfd);
    }
    ids->dirfd = -1;
}

/* Writes limit durably: temp file, fsync, rename, fsync the directory. */
static int reserve(struct producer_ids *ids, int64_t limit)
{
    uint8_t buf[IDS_BYTES];
    put_be64(buf, (uint64_t)limit);
    put_be64(buf + 8, XXH3_64bits(buf, 8));
    struct ring r;
    int rc = ring_init(&r, 4);
    if (rc != 0) {
        return rc;
    }
    rc = ring_replace_file(&r, ids->dirfd, IDS_TMP, IDS_FILE, buf, sizeof(buf));
    ring_fini(&r);
    return rc;
}

int producer_ids_take(struct producer_ids *ids, int64_t *id_out)
{
    if (ids->next == ids->limit) {
        int rc = reserve(ids, ids->limit + PRODUCER_IDS_BLOCK);
        if (rc != 0) {
            return rc;
        }
        ids->limit += PRODUCER_IDS_BLOCK;
    }
    *id_out = ids->next++;
    return 0;
}
