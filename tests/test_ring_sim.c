/* Contract tests for base/ring_sim.h: what a simulated power cut keeps and
 * what it takes away, on real files in a temporary directory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/ring.h"
#include "base/ring_sim.h"

static char root[256];
static char stash[300];
static struct ring ring;
static int dirfd_;

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/nagare-sim-XXXXXX", tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(root));
    snprintf(stash, sizeof(stash), "%s/stash", root);
    cr_assert_eq(ring_init(&ring, 8), 0);
    dirfd_ = open(root, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(dirfd_, 0);
    ring_fault_clear();
    cr_assert_eq(ring_sim_enable(stash), 0);
}

static void teardown(void)
{
    ring_sim_disable();
    ring_fault_clear();
    close(dirfd_);
    ring_fini(&ring);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(ring_sim, .init = setup, .fini = teardown);

/* Opens (creating, announced) name in root. */
static int create(const char *name)
{
    ring_note_dirent(dirfd_, name, RING_DIRENT_CREATE);
    int fd = openat(dirfd_, name, O_RDWR | O_CREAT | O_EXCL, 0644);
    cr_assert_geq(fd, 0, "%s: %s", name, strerror(errno));
    return fd;
}

static void write_at(int fd, uint8_t fill, size_t len, uint64_t off)
{
    uint8_t buf[8192];
    cr_assert_leq(len, sizeof(buf));
    memset(buf, fill, len);
    cr_assert_eq(ring_write_all(&ring, RING_LOG_WRITE, fd, buf, len, off), 0);
}

static off_t size_of(const char *name)
{
    struct stat st;
    return fstatat(dirfd_, name, &st, 0) == 0 ? st.st_size : -1;
}

static uint8_t byte_at(const char *name, off_t at)
{
    int fd = openat(dirfd_, name, O_RDONLY);
    cr_assert_geq(fd, 0);
    uint8_t b = 0;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    close(fd);
    return b;
}

static void cut(enum ring_sim_cut how, uint64_t seed)
{
    int rc = ring_sim_power_cut(how, seed);
    cr_assert_eq(rc, 0, "cut: %s", err_str(rc));
}

Test(ring_sim, a_synced_write_stays_and_a_later_one_is_dropped)
{
    int fd = create("f");
    cr_assert_eq(ring_fsync(&ring, RING_DIR_SYNC, dirfd_, false), 0);
    write_at(fd, 'a', 1000, 0);
    cr_assert_eq(ring_fsync(&ring, RING_LOG_SYNC, fd, true), 0);
    write_at(fd, 'b', 1000, 1000);
    write_at(fd, 'c', 10, 0); /* over synced bytes */
    close(fd);
    cut(RING_SIM_DROP, 1);
    cr_assert_eq(size_of("f"), 1000);
    cr_assert_eq(byte_at("f", 0), 'a');
    cr_assert_eq(byte_at("f", 999), 'a');
}

Test(ring_sim, a_failed_fsync_poisons_what_it_covered_for_good)
{
    int fd = create("f");
    cr_assert_eq(ring_fsync(&ring, RING_DIR_SYNC, dirfd_, false), 0);
    write_at(fd, 'a', 100, 0);
    ring_fault_arm(RING_LOG_SYNC, 1, -EIO, false);
    cr_assert_eq(ring_fsync(&ring, RING_LOG_SYNC, fd, true), -EIO);
    cr_assert_eq(ring_fsync(&ring, RING_LOG_SYNC, fd, true), 0, "a retry succeeds...");
    close(fd);
    cut(RING_SIM_DROP, 1);
    cr_assert_eq(size_of("f"), 0, "...and still makes nothing durable");
}

Test(ring_sim, a_torn_write_keeps_whole_sectors_only)
{
    int fd = create("f");
    cr_assert_eq(ring_fsync(&ring, RING_DIR_SYNC, dirfd_, false), 0);
    write_at(fd, 'a', 4096, 0);
    cr_assert_eq(ring_fsync(&ring, RING_LOG_SYNC, fd, true), 0);
    write_at(fd, 'b', 4096, 0);
    close(fd);
    cut(RING_SIM_TEAR, 12345);
    cr_assert_eq(size_of("f"), 4096);
    for (off_t s = 0; s < 4096; s += 512) {
        uint8_t first = byte_at("f", s);
        cr_assert(first == 'a' || first == 'b');
        cr_assert_eq(byte_at("f", s + 511), first, "sector at %ld is split", (long)s);
    }
}

Test(ring_sim, a_new_file_needs_its_directory_synced)
{
    int fd = create("kept");
    cr_assert_eq(ring_fsync(&ring, RING_DIR_SYNC, dirfd_, false), 0);
    close(fd);
    fd = create("gone");
    write_at(fd, 'a', 100, 0);
    cr_assert_eq(ring_fsync(&ring, RING_LOG_SYNC, fd, true), 0); /* its data, not its name */
    close(fd);
    cut(RING_SIM_DROP, 1);
    cr_assert_eq(size_of("gone"), -1);
    cr_assert_eq(size_of("kept"), 0);
}

Test(ring_sim, an_unlink_and_a_rename_are_undone_until_synced)
{
    int fd = create("a");
    write_at(fd, 'x', 100, 0);
    cr_assert_eq(ring_fsync(&ring, RING_LOG_SYNC, fd, true), 0);
    cr_assert_eq(ring_fsync(&ring, RING_DIR_SYNC, dirfd_, false), 0);
    close(fd);
    ring_note_rename(dirfd_, "a", dirfd_, "b");
    cr_assert_eq(renameat(dirfd_, "a", dirfd_, "b"), 0);
    ring_note_dirent(dirfd_, "b", RING_DIRENT_UNLINK);
    cr_assert_eq(unlinkat(dirfd_, "b", 0), 0);
    cut(RING_SIM_DROP, 1);
    cr_assert_eq(size_of("a"), 100, "back under its old name, whole");
    cr_assert_eq(byte_at("a", 99), 'x');
    cr_assert_eq(size_of("b"), -1);
}

Test(ring_sim, after_the_crash_every_file_completion_fails)
{
    int fd = create("f");
    ring_sim_crash_at(2);
    write_at(fd, 'a', 100, 0);
    cr_assert(!ring_sim_crashed());
    uint8_t b = 0;
    cr_assert_eq(ring_write_all(&ring, RING_LOG_WRITE, fd, &b, 1, 100), -EIO);
    cr_assert(ring_sim_crashed());
    cr_assert_eq(ring_fsync(&ring, RING_LOG_SYNC, fd, true), -EIO);
    close(fd);
    cut(RING_SIM_DROP, 1);
    cr_assert(!ring_sim_crashed());
    cr_assert_eq(size_of("f"), -1, "neither the data nor the name was ever synced");
}

Test(ring_sim, with_fsync_off_nothing_becomes_durable)
{
    int fd = create("f");
    cr_assert_eq(ring_fsync(&ring, RING_DIR_SYNC, dirfd_, false), 0);
    ring_sim_set_nosync(1u << RING_LOG_SYNC);
    write_at(fd, 'a', 100, 0);
    cr_assert_eq(ring_fsync(&ring, RING_LOG_SYNC, fd, true), 0);
    close(fd);
    cut(RING_SIM_DROP, 1);
    cr_assert_eq(size_of("f"), 0);
}
