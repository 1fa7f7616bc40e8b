/*
 * bench/failover.h — nagare-bench failover: how long acks=all writes stop
 * when the leader of their partition is killed (docs/cluster.md).
 *
 * One idempotent acks=all producer (the steady one) writes a
 * one-partition topic at a fixed rate. Each round: produce steadily, kill
 * -9 the partition's leader (its pid read from --pid-dir), and time from
 * the kill to
 *   - the steady producer's acknowledgement of the first record it sent
 *     after the kill. Records are acknowledged in order within a partition
 *     and nothing sent after the kill can have gone to the dead leader, so
 *     that acknowledgement came from the successor: it is the outage a
 *     running producer sees (an upper bound of the successor's first
 *     acknowledged write by at most one produce round trip);
 *   - a new leader named in the metadata (asked every 100 ms);
 *   - the acknowledgement of one record from a fresh producer made once
 *     the metadata named the new leader: when the cluster could take an
 *     acknowledged write again, whatever a running client does.
 * What has not come by --failover-max counts as none (-1). Then the killed
 * broker is started again (--restart-cmd) and the round ends once every
 * replica is back in the in-sync set. Prints each round and the medians
 * and maxima, as a table or one JSON object. The cluster's processes
 * belong to the caller (bench/cluster.sh); this command only kills the
 * leaders it measures and asks for them to be started again. Main thread
 * only.
 */
#ifndef NAGARE_BENCH_FAILOVER_H
#define NAGARE_BENCH_FAILOVER_H

/* argv[0] is "failover". Returns the process exit status: 0; 1 when a
 * round could not be run, a record failed, or the steady producer got no
 * acknowledgement within --failover-max of a kill; 2 for a usage error. */
int bench_failover_main(int argc, char **argv);

#endif
