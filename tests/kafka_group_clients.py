#!/usr/bin/python3
"""tests/kafka_group_clients.py CLIENT — a consumer group of real Kafka
clients against a real nagared (broker/kafka_groups.c). CLIENT is one of:

    confluent     confluent-kafka-python (python3-confluent-kafka, librdkafka)
    kafka-python  kafka-python (python3-kafka)
    kafkajs       KafkaJS (npm, tests/kafkajs_client.mjs on node)

Two members of one group split a topic's four partitions between them and
read every record exactly once, committing what they read; one leaves and
the other takes its partitions over from its commits; after a broker
restart a new member resumes from the committed offsets and reads only what
came after. The broker runs on ephemeral ports in a temporary directory
($NAGARED: the binary). Exit 77 (skipped) when the client is not
installed; ./dev.sh installs them.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import queue
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_clients import (KAFKAJS, SKIP, Broker, fail, kafkajs_check,  # noqa: E402
                           kafkajs_run)

TOPIC = "grouped"
GROUP = "readers"
PARTITIONS = 4
PER_PARTITION = 25
# Only a broken broker or client comes near it: a rebalance waits for
# every member, and the first one 3 s more (group.initial.rebalance.delay).
WAIT_S = 90


def deadline():
    return time.monotonic() + WAIT_S


def value(p, i):
    return ("p%d-%d" % (p, i)).encode()


class Confluent:
    def __init__(self, kafka):
        import confluent_kafka as ck
        self.ck = ck
        self.kafka = kafka

    def create_topic(self):
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.kafka})
        fs = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        fs[TOPIC].result(timeout=WAIT_S)

    def produce(self, p, first, n):
        prod = self.ck.Producer({"bootstrap.servers": self.kafka, "acks": "all",
                                 "enable.idempotence": True})
        for i in range(first, first + n):
            prod.produce(TOPIC, value=value(p, i), partition=p)
        if prod.flush(WAIT_S) != 0:
            fail("confluent: records not delivered")

    def member(self, name):
        c = self.ck.Consumer({"bootstrap.servers": self.kafka, "group.id": GROUP,
                              "client.id": name, "enable.auto.commit": False,
                              "auto.offset.reset": "earliest", "session.timeout.ms": 10000})
        c.subscribe([TOPIC])
        return c

    def poll(self, c):
        m = c.poll(0.2)
        if m is None:
            return None
        if m.error():
            fail("confluent poll: %s" % m.error())
        return (m.partition(), m.offset(), m.value())

    def assigned(self, c):
        return sorted(tp.partition for tp in c.assignment())

    def commit(self, c):
        c.commit(asynchronous=False)

    def close(self, c):
        c.close()


class KafkaPythonMember(threading.Thread):
    """A kafka-python consumer on a thread of its own: its poll() blocks
    while the group rebalances (until every member has joined again), so
    two members polled from one thread would wait on each other. The
    consumer is used only on this thread; the test talks to it through
    queues."""

    def __init__(self, kp, kafka, name):
        super().__init__(daemon=True)
        self.kp, self.kafka, self.name_ = kp, kafka, name
        self.cmds = queue.Queue()
        self.records = queue.Queue()
        self.assigned = []
        self.error = None
        self.start()

    def run(self):
        try:
            c = self.kp.KafkaConsumer(bootstrap_servers=self.kafka, group_id=GROUP,
                                      client_id=self.name_, enable_auto_commit=False,
                                      auto_offset_reset="earliest", session_timeout_ms=10000)
            c.subscribe([TOPIC])
            while True:
                try:
                    cmd, done = self.cmds.get_nowait()
                except queue.Empty:
                    cmd = None
                if cmd == "close":
                    c.close()
                    done.set()
                    return
                if cmd == "commit":
                    c.commit()
                    done.set()
                for recs in c.poll(timeout_ms=100).values():
                    for r in recs:
                        self.records.put((r.partition, r.offset, r.value))
                self.assigned = sorted(tp.partition for tp in c.assignment())
        except Exception as e:  # reported by the test's next call
            self.error = e

    def call(self, cmd):
        done = threading.Event()
        self.cmds.put((cmd, done))
        if not done.wait(WAIT_S):
            fail("kafka-python member %s: %s did not finish (%s)" % (self.name_, cmd, self.error))


class KafkaPython:
    def __init__(self, kafka):
        import kafka as kp
        self.kp = kp
        self.kafka = kafka

    def create_topic(self):
        from kafka.admin import KafkaAdminClient, NewTopic
        admin = KafkaAdminClient(bootstrap_servers=self.kafka)
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        admin.close()

    def produce(self, p, first, n):
        prod = self.kp.KafkaProducer(bootstrap_servers=self.kafka, acks="all")
        for i in range(first, first + n):
            prod.send(TOPIC, value=value(p, i), partition=p)
        prod.flush(WAIT_S)
        prod.close()

    def member(self, name):
        return KafkaPythonMember(self.kp, self.kafka, name)

    def poll(self, m):
        if m.error is not None:
            fail("kafka-python member %s: %s" % (m.name_, m.error))
        try:
            return m.records.get(timeout=0.01)
        except queue.Empty:
            return None

    def assigned(self, m):
        return list(m.assigned)

    def commit(self, m):
        m.call("commit")

    def close(self, m):
        m.call("close")
        m.join(WAIT_S)


class KafkaJSMember(threading.Thread):
    """A KafkaJS member: kafkajs_client.mjs member, a node process whose
    JSON lines (its assignment at each join, each record it reads, its
    answers to commit and close) a thread of its own reads."""

    def __init__(self, kafka, name):
        super().__init__(daemon=True)
        self.name_ = name
        self.proc = subprocess.Popen(
            ["node", KAFKAJS, "member", "--brokers", kafka, "--topic", TOPIC, "--group", GROUP,
             "--name", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        atexit.register(self.kill)  # when the test fails before closing it
        self.records = queue.Queue()
        self.answers = queue.Queue()
        self.assigned = []
        self.error = None
        self.start()

    def run(self):
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "assigned" in msg:
                self.assigned = msg["assigned"]
            elif "committed" in msg or "closed" in msg:
                self.answers.put(msg)
            else:
                self.records.put((msg["partition"], msg["offset"], bytes.fromhex(msg["value"])))
        rc = self.proc.wait()
        if rc != 0:
            self.error = "exit %d (its stderr is above)" % rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def call(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        try:
            return self.answers.get(timeout=WAIT_S)
        except queue.Empty:
            fail("kafkajs member %s: %s did not finish (%s)" % (self.name_, cmd, self.error))


class KafkaJS:
    def __init__(self, kafka):
        kafkajs_check()
        self.kafka = kafka

    def create_topic(self):
        kafkajs_run("create", self.kafka, "--topic", TOPIC, "--partitions", str(PARTITIONS))

    def produce(self, p, first, n):
        recs = [{"partition": p, "key": None, "value": value(p, i).hex(), "headers": []}
                for i in range(first, first + n)]
        kafkajs_run("produce", self.kafka, "--topic", TOPIC, "--codec", "none", records=recs)

    def member(self, name):
        return KafkaJSMember(self.kafka, name)

    def poll(self, m):
        if m.error is not None:
            fail("kafkajs member %s: %s" % (m.name_, m.error))
        try:
            return m.records.get(timeout=0.01)
        except queue.Empty:
            return None

    def assigned(self, m):
        return list(m.assigned)

    def commit(self, m):
        m.call("commit")

    def close(self, m):
        m.call("close")
        m.join(WAIT_S)


def client_for(name, kafka):
    try:
        clients = {"confluent": Confluent, "kafka-python": KafkaPython, "kafkajs": KafkaJS}
        return clients[name](kafka)
    except ImportError as e:
        print("SKIP: %s not installed (%s); ./dev.sh installs it" % (name, e))
        sys.exit(SKIP)


def read_until(cl, members, want):
    """Polls every member until the records read are want (a set of
    (partition, offset, value)), each once; returns who read what."""
    got = {id(c): [] for c in members}
    seen = set()
    end = deadline()
    while seen != want:
        if time.monotonic() > end:
            fail("read %d of %d records; missing %s" % (len(seen), len(want),
                                                      sorted(want - seen)[:5]))
        for c in members:
            r = cl.poll(c)
            if r is None:
                continue
            if r in seen or r not in want:
                fail("record %s read twice, or never sent" % (r,))
            seen.add(r)
            got[id(c)].append(r)
    return got


def settle(cl, members, split):
    """Polls until the members' assignments are split (lists of
    partitions, one per member)."""
    end = deadline()
    while [cl.assigned(c) for c in members] != split:
        if time.monotonic() > end:
            fail("assignments %s, wanted %s" % ([cl.assigned(c) for c in members], split))
        for c in members:
            r = cl.poll(c)
            if r is not None:
                fail("a record %s before the assignment settled" % (r,))


def records(parts, first, n):
    return {(p, i, value(p, i)) for p in parts for i in range(first, first + n)}


def main():
    if len(sys.argv) != 2:
        fail("usage: kafka_group_clients.py confluent|kafka-python|kafkajs")
    root = tempfile.mkdtemp(prefix="nagare-kgroups-")
    b = Broker(root)
    failed = True  # the directory is kept for a look at what failed
    try:
        cl = client_for(sys.argv[1], b.kafka)
        cl.create_topic()
        # Both join while the topic is empty (a member reading before the
        # other joined would read again what moves to the other: Kafka's
        # at-least-once); the range assignor splits the four partitions.
        a = cl.member("a")
        bm = cl.member("b")
        end = deadline()
        while True:
            split = [cl.assigned(a), cl.assigned(bm)]
            if split[0] and split[1] and sorted(split[0] + split[1]) == list(range(PARTITIONS)):
                break
            if time.monotonic() > end:
                fail("the partitions were never split between the members: %s" % split)
            for c in (a, bm):
                if cl.poll(c) is not None:
                    fail("a record from an empty topic")
        for p in range(PARTITIONS):
            cl.produce(p, 0, PER_PARTITION)
        got = read_until(cl, [a, bm], records(range(PARTITIONS), 0, PER_PARTITION))
        for c, mine in ((a, split[0]), (bm, split[1])):
            if any(p not in mine for p, _, _ in got[id(c)]):
                fail("a member read a partition it was not given (%s)" % split)
            cl.commit(c)
        print("two members split the partitions %s and read every record once" % split)

        # B leaves: A takes its partitions over from B's commits.
        cl.close(bm)
        settle(cl, [a], [list(range(PARTITIONS))])
        for p in range(PARTITIONS):
            cl.produce(p, PER_PARTITION, 2)
        read_until(cl, [a], records(range(PARTITIONS), PER_PARTITION, 2))
        cl.commit(a)
        cl.close(a)
        print("after one left, the other took its partitions over from the commits")

        # The commits outlive a restart of the broker.
        b.stop()
        b = Broker(root)
        cl = client_for(sys.argv[1], b.kafka)
        for p in range(PARTITIONS):
            cl.produce(p, PER_PARTITION + 2, 1)
        c = cl.member("c")
        read_until(cl, [c], records(range(PARTITIONS), PER_PARTITION + 2, 1))
        cl.close(c)
        print("after a restart a new member resumed from the committed offsets")
        failed = False
    except SystemExit as e:
        failed = e.code != SKIP
        raise
    finally:
        b.stop()
        if not failed:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
