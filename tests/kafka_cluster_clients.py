#!/usr/bin/python3
"""tests/kafka_cluster_clients.py CLIENT BOOTSTRAP TOPIC — a real Kafka client
against a cluster of nagared brokers, driven by tests/test_kafka_cluster.c
over stdin and stdout (the cluster, its faults and the judgement of
Metadata are the C test's). CLIENT is one of:

    kcat          kcat (Debian's kcat, on librdkafka), idempotent
    confluent     confluent-kafka-python (python3-confluent-kafka), idempotent
    kafka-python  kafka-python (python3-kafka): no idempotence in 2.0, so
                  at least once, in order (one request in flight)
    kafkajs       KafkaJS (npm, tests/kafkajs_client.mjs on node;
                  $KAFKAJS_MODULES holds it), idempotent

`kafka_cluster_clients.py CLIENT --check` exits 0 when CLIENT is installed,
77 (skipped) saying what is missing otherwise.

BOOTSTRAP is every broker's Kafka address, ','-separated; TOPIC has
PARTITIONS partitions. The lines, one per step, no step timed:

  out  broker ID HOST PORT       each broker the client's Metadata lists
  out  partition P LEADER        each partition of TOPIC and its leader
  out  metadata                  (the list is complete)
  out  produced N                N records of a numbered stream handed to
                                 the client (record i: key "i", value
                                 "v-i-" and dots; confluent,
                                 kafka-python and kafkajs put it on partition
                                 i % PARTITIONS and have waited for every
                                 acknowledgement; kcat's keys choose the
                                 partition and the test watches the high
                                 watermarks), acks=all; then more go on
                                 (confluent, kafka-python, kafkajs: rounds of
                                 STREAM_CHUNK, each acknowledged, until
                                 the test answers; kcat: PER_ROUND more)
  in   go                        the test stopped a leader (what was in
                                 flight there goes on elsewhere): the
                                 next round
  in   consume BOOTSTRAP2        no more: the client must have reported
                                 success for every record; then it reads
                                 TOPIC through BOOTSTRAP2 (surviving brokers)
  out  ok ...                    every record read exactly once (at least
                                 once for kafka-python), in order per
                                 partition; the exit status is 0
A failure exits 1 saying why on stderr.
"""
import ctypes
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_clients import KAFKAJS, kafkajs_missing, kafkajs_run  # noqa: E402

SKIP = 77
PARTITIONS = 3
PER_ROUND = 200
STREAM_CHUNK = 10
STREAM_MAX = 2000
# Only a broken broker or client comes near it: a kill's failover waits
# out the broker's lease (6 s) and the in-sync set's shrink.
TIMEOUT_S = 120


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def say(line):
    print(line, flush=True)


def hear():
    line = sys.stdin.readline()
    if not line:
        fail("the test went away")
    return line.split()


def die_with_parent():
    """For a child of this script (kcat): killed when the script is, as the
    test has the script killed when it ends (PR_SET_PDEATHSIG, SIGKILL)."""
    ctypes.CDLL(None).prctl(1, 9)


def key(i):
    return str(i).encode()


# kcat reads its input 128 bytes at a time, waiting for all 128 (fread), and
# hands a record over only once it has read that far: lines of exactly 128
# bytes ("key:value\n") keep it in step with what it was given.
KCAT_LINE_BYTES = 128


def value(i):
    return ("v-%d-" % i).ljust(KCAT_LINE_BYTES - len(key(i)) - 2, ".").encode()


# ---- kcat ----

class Kcat:
    exactly_once = True
    own_partitions = False
    acks_reported = False  # delivery reports only at its end

    @staticmethod
    def check():
        if shutil.which("kcat") is None:
            return "kcat is not installed (Debian package kcat)"
        return None

    def __init__(self, bootstrap, topic):
        self.bootstrap, self.topic = bootstrap, topic

    @staticmethod
    def run(bootstrap, args):
        r = subprocess.run(["kcat", "-b", bootstrap] + args, capture_output=True,
                           timeout=TIMEOUT_S)
        if r.returncode != 0:
            fail("kcat %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.decode()))
        return r.stdout

    def metadata(self):
        # kcat -L: the same library as the producer's, in a process of its own
        md = json.loads(self.run(self.bootstrap, ["-L", "-J", "-t", self.topic]))
        brokers = []
        for b in md["brokers"]:
            host, _, port = b["name"].rpartition(":")
            brokers.append((b["id"], host, int(port)))
        t = md["topics"][0]
        if "error" in t:
            fail("kcat metadata of %s: %s" % (self.topic, t["error"]))
        return brokers, [(p["partition"], p["leader"]) for p in t["partitions"]]

    def start(self):
        # One producer for the whole stream: it learns of the leader change
        # itself. Every delivery report is a line on stderr (-v -v); kcat
        # serves them as it reads its input and once at its end, so the
        # test watches the high watermarks instead.
        self.proc = subprocess.Popen(
            ["kcat", "-b", self.bootstrap, "-P", "-t", self.topic, "-K", ":", "-v", "-v",
             "-X", "enable.idempotence=true", "-X", "acks=all"],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=die_with_parent)
        self.err = []
        self.reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr))
        self.reader.start()

    def send(self, first, n):
        lines = [key(i) + b":" + value(i) + b"\n" for i in range(first, first + n)]
        assert all(len(line) == KCAT_LINE_BYTES for line in lines)
        self.proc.stdin.write(b"".join(lines))
        self.proc.stdin.flush()

    def settle(self):
        pass  # kcat says nothing until its end: the test watches the log

    def finish(self, total):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=TIMEOUT_S)
        self.reader.join()
        delivered = sum(1 for line in self.err if line.startswith(b"% Message delivered"))
        if rc != 0 or delivered != total:
            fail("kcat -P: exit %d, %d of %d delivered:\n%s" %
                 (rc, delivered, total, b"".join(self.err[-20:]).decode()))

    def consume(self, bootstrap):
        out = self.run(bootstrap, ["-C", "-t", self.topic, "-o", "beginning", "-e", "-q",
                                   "-f", "%p %o %k %s\n"])
        recs = []
        for line in out.split(b"\n"):
            if line:
                p, o, k, v = line.split(b" ")
                recs.append((int(p), int(o), k, v))
        return recs


# ---- confluent-kafka ----

class Confluent:
    exactly_once = True
    own_partitions = True
    acks_reported = True

    @staticmethod
    def check():
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            return "confluent_kafka is not installed (Debian package python3-confluent-kafka)"
        return None

    def __init__(self, bootstrap, topic):
        import confluent_kafka
        self.ck = confluent_kafka
        self.bootstrap, self.topic = bootstrap, topic

    def start(self):
        self.p = self.ck.Producer({"bootstrap.servers": self.bootstrap, "acks": "all",
                                   "enable.idempotence": True})
        self.errors = []

    def metadata(self):
        md = self.p.list_topics(self.topic, timeout=TIMEOUT_S)
        brokers = [(b.id, b.host, b.port) for b in md.brokers.values()]
        t = md.topics[self.topic]
        if t.error is not None:
            fail("confluent metadata of %s: %s" % (self.topic, t.error))
        return brokers, [(p.id, p.leader) for p in t.partitions.values()]

    def send(self, first, n):
        def delivered(err, msg):
            if err is not None:
                self.errors.append((msg.key(), err))
        for i in range(first, first + n):
            self.p.produce(self.topic, key=key(i), value=value(i), partition=i % PARTITIONS,
                           on_delivery=delivered)
        self.p.poll(0)

    def settle(self):
        if self.p.flush(TIMEOUT_S) != 0 or self.errors:
            fail("confluent: not delivered: %r" % self.errors[:10])

    def finish(self, total):
        self.settle()

    def consume(self, bootstrap):
        c = self.ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                              "enable.auto.commit": False})
        tps = [self.ck.TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        ends = {p.partition: c.get_watermark_offsets(p, timeout=TIMEOUT_S)[1] for p in tps}
        c.assign([self.ck.TopicPartition(self.topic, p, self.ck.OFFSET_BEGINNING)
                  for p in range(PARTITIONS)])
        recs, at = [], {p: 0 for p in ends}
        deadline = time.monotonic() + TIMEOUT_S
        while any(at[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                fail("confluent consume: at %r of %r" % (at, ends))
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                fail("confluent consume: %s" % m.error())
            recs.append((m.partition(), m.offset(), m.key(), m.value()))
            at[m.partition()] = m.offset() + 1
        c.close()
        return recs


# ---- kafka-python ----

class KafkaPython:
    exactly_once = False  # kafka-python 2.0 has no idempotent producer
    own_partitions = True
    acks_reported = True

    @staticmethod
    def check():
        try:
            import kafka  # noqa: F401
        except ImportError:
            return "kafka-python is not installed (Debian package python3-kafka)"
        return None

    def __init__(self, bootstrap, topic):
        import kafka
        self.kafka = kafka
        self.bootstrap, self.topic = bootstrap.split(","), topic

    def metadata(self):
        admin = self.kafka.KafkaAdminClient(bootstrap_servers=self.bootstrap)
        brokers = [(b["node_id"], b["host"], b["port"])
                   for b in admin.describe_cluster()["brokers"]]
        t = admin.describe_topics([self.topic])[0]
        admin.close()
        if t["error_code"] != 0:
            fail("kafka-python metadata of %s: error %d" % (self.topic, t["error_code"]))
        return brokers, [(p["partition"], p["leader"]) for p in t["partitions"]]

    def start(self):
        # Its retries are 0 by default; one request in flight keeps the
        # order across retries.
        self.p = self.kafka.KafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                          retries=1000000, retry_backoff_ms=100,
                                          max_in_flight_requests_per_connection=1)
        self.futures = []

    def send(self, first, n):
        self.futures += [self.p.send(self.topic, key=key(i), value=value(i),
                                     partition=i % PARTITIONS) for i in range(first, first + n)]

    def settle(self):
        self.p.flush(TIMEOUT_S)
        for f in self.futures:
            f.get(timeout=TIMEOUT_S)  # raises what the producer reported
        self.futures = []

    def finish(self, total):
        self.settle()
        self.p.close(TIMEOUT_S)

    def consume(self, bootstrap):
        c = self.kafka.KafkaConsumer(bootstrap_servers=bootstrap.split(","),
                                     enable_auto_commit=False)
        tps = [self.kafka.TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        recs = []
        deadline = time.monotonic() + TIMEOUT_S
        while any(c.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                fail("kafka-python consume: short of %r" % ends)
            for msgs in c.poll(timeout_ms=1000).values():
                recs += [(m.partition, m.offset, m.key, m.value) for m in msgs]
        c.close()
        return recs


# ---- KafkaJS ----

class KafkaJS:
    exactly_once = True
    own_partitions = True
    acks_reported = True

    @staticmethod
    def check():
        return kafkajs_missing()

    def __init__(self, bootstrap, topic):
        self.bootstrap, self.topic = bootstrap, topic

    def start(self):
        # One producer for the whole stream (kafkajs_client.mjs produce
        # --rounds): each round a line of its own answers; a thread reads
        # them, so that a silent producer fails after TIMEOUT_S.
        self.proc = subprocess.Popen(
            ["node", KAFKAJS, "produce", "--rounds", "--brokers", self.bootstrap, "--topic",
             self.topic, "--codec", "none"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent)
        self.answers = queue.Queue()
        self.unanswered = 0

        def read():
            for line in self.proc.stdout:
                self.answers.put(json.loads(line))
            self.answers.put(None)
        threading.Thread(target=read, daemon=True).start()

    def metadata(self):
        # KafkaJS's admin client: its producer does not show its Metadata
        md = kafkajs_run("metadata", self.bootstrap, "--topic", self.topic)[0]
        return ([tuple(b) for b in md["brokers"]], [tuple(p) for p in md["partitions"]])

    def send(self, first, n):
        recs = [json.dumps({"partition": i % PARTITIONS, "key": key(i).hex(),
                            "value": value(i).hex()}) for i in range(first, first + n)]
        self.proc.stdin.write("\n".join(recs) + "\n\n")
        self.proc.stdin.flush()
        self.unanswered += 1

    def settle(self):
        while self.unanswered > 0:
            try:
                got = self.answers.get(timeout=TIMEOUT_S)
            except queue.Empty:
                fail("kafkajs: a round not acknowledged within %d s" % TIMEOUT_S)
            if got is None:
                fail("kafkajs produce ended: exit %s (its stderr is above)" % self.proc.wait())
            if "produced" not in got:
                fail("kafkajs said %r" % got)
            self.unanswered -= 1

    def finish(self, total):
        self.settle()
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=TIMEOUT_S)
        if rc != 0:
            fail("kafkajs produce: exit %d (its stderr is above)" % rc)

    def consume(self, bootstrap):
        return [(r["partition"], r["offset"], bytes.fromhex(r["key"]), bytes.fromhex(r["value"]))
                for r in kafkajs_run("consume", bootstrap, "--topic", self.topic)]


CLIENTS = {"kcat": Kcat, "confluent": Confluent, "kafka-python": KafkaPython, "kafkajs": KafkaJS}


def judge(cls, recs, total):
    """Every record 0..total-1 read, once (at least once without
    idempotence), on one partition (its own: i % PARTITIONS, where the
    client chose it), in order per partition."""
    seen = {}
    for p, o, k, v in recs:
        i = int(k)
        if not 0 <= i < total or v != value(i):
            fail("partition %d offset %d: a record never sent: %r %r" % (p, o, k, v))
        if cls.own_partitions and p != i % PARTITIONS:
            fail("record %d read from partition %d" % (i, p))
        if seen.setdefault(i, p) != p:
            fail("record %d on partitions %d and %d" % (i, seen[i], p))
    missing = [i for i in range(total) if i not in seen]
    if missing:
        fail("%d acknowledged records not read, the first %r" % (len(missing), missing[:10]))
    dups = len(recs) - total
    if cls.exactly_once and dups:
        fail("%d records read twice by an idempotent producer" % dups)
    for part in range(PARTITIONS):
        last, read = -1, set()
        for p, o, k, v in sorted(r for r in recs if r[0] == part):
            i = int(k)
            if i in read:  # a copy (kafka-python's retry): its first place counts
                continue
            if i < last:
                fail("partition %d: record %d at offset %d after record %d" % (part, i, o, last))
            read.add(i)
            last = i
    return dups


def stream(client, total):
    """Produces STREAM_CHUNK records at a time, each chunk acknowledged
    before the next, until the test says its next word (at most
    STREAM_MAX records); returns the new total and the word."""
    stop = threading.Event()
    state = {"total": total, "error": None}

    def run():
        try:
            while not stop.is_set() and state["total"] - total < STREAM_MAX:
                client.send(state["total"], STREAM_CHUNK)
                state["total"] += STREAM_CHUNK
                client.settle()
        except BaseException as e:  # fail() and the clients' errors alike
            state["error"] = e
    t = threading.Thread(target=run)
    t.start()
    cmd = hear()
    stop.set()
    t.join()
    if state["error"] is not None:
        fail("while the leader changed: %r" % state["error"])
    return state["total"], cmd


def main():
    if len(sys.argv) == 3 and sys.argv[2] == "--check" and sys.argv[1] in CLIENTS:
        why = CLIENTS[sys.argv[1]].check()
        if why:
            say("SKIP: " + why)
            sys.exit(SKIP)
        sys.exit(0)
    if len(sys.argv) != 4 or sys.argv[1] not in CLIENTS:
        fail("usage: kafka_cluster_clients.py %s BOOTSTRAP TOPIC | CLIENT --check"
             % "|".join(CLIENTS))
    cls = CLIENTS[sys.argv[1]]
    why = cls.check()
    if why:
        say("SKIP: " + why)
        sys.exit(SKIP)
    client = cls(sys.argv[2], sys.argv[3])
    client.start()
    brokers, leaders = client.metadata()
    for b in sorted(brokers):
        say("broker %d %s %d" % b)
    for p in sorted(leaders):
        say("partition %d %d" % p)
    say("metadata")
    total = 0
    while True:
        client.send(total, PER_ROUND)
        total += PER_ROUND
        client.settle()
        say("produced %d" % total)
        # More in flight while the test stops a leader: a stream of small
        # acknowledged rounds where the client reports acks, else one more
        # round handed over.
        if cls.acks_reported:
            total, cmd = stream(client, total)
        else:
            client.send(total, PER_ROUND)
            total += PER_ROUND
            cmd = hear()
        if cmd[0] == "consume" and len(cmd) == 2:
            break
        if cmd != ["go"]:
            fail("the test said %r" % cmd)
    client.finish(total)
    dups = judge(cls, client.consume(cmd[1]), total)
    say("ok: %d records, %d read twice" % (total, dups))


if __name__ == "__main__":
    main()
