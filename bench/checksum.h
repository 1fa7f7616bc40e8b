/*
 * bench/checksum.h — `nagare-bench checksum`: the batch checksum, CRC-32C
 * (batch_checksum), against XXH3-64 (format 1's, and what index entries and
 * metadata still use) on buffers of batch sizes, one core, no I/O: the cost
 * the checksum adds per byte appended, served or recovered.
 */
#ifndef NAGARE_BENCH_CHECKSUM_H
#define NAGARE_BENCH_CHECKSUM_H

/* argv[0] is the subcommand's name; options: --bytes N (buffer size, default
 * 65536), --mib M (MiB hashed per function, default 4096). Prints one line
 * per function: GB/s. Returns 0, or 2 on bad usage. */
int bench_checksum_main(int argc, char **argv);

#endif
