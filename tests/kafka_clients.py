#!/usr/bin/python3
"""tests/kafka_clients.py CLIENT — a real Kafka client against a real nagared
on its Kafka listener (broker/kafka_serve.h). CLIENT is one of:

    kcat          kcat (Debian's kcat, on librdkafka)
    confluent     confluent-kafka-python (python3-confluent-kafka, librdkafka)
    kafka-python  kafka-python (python3-kafka)
    kafkajs       KafkaJS (npm, tests/kafkajs_client.mjs on node)

Each produces keyed records with headers, acks=all and idempotence where the
client has it, once per compression codec it offers, then reads them back
from the beginning, from an offset and by time, and compares every key,
value, header and timestamp; Metadata must list the topic. The Python
clients and KafkaJS also create a topic with a config, describe its configs
and delete it through their admin clients. The broker runs
on ephemeral ports in a temporary directory ($NAGARED: the binary;
$KAFKAJS_MODULES: the node_modules directory holding KafkaJS). Exit 77
(skipped) when the client is not installed; ./dev.sh installs them.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORDS_PER_CODEC = 20
BASE_TS_MS = 1700000000000
# Only a broken broker or client comes near these.
START_TIMEOUT_S = 60
CLIENT_TIMEOUT_S = 60


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


class Broker:
    """nagared on 127.0.0.1:0 for every listener: .port is its nagare
    listener's port, .kafka its Kafka listener as HOST:PORT, .admin its
    HTTP admin listener's port. extra: more arguments (--set KEY=VALUE...).
    stop() fails the test when nagared does not exit 0 on SIGTERM."""

    def __init__(self, root, extra=()):
        self.log_path = os.path.join(root, "nagared.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [os.environ["NAGARED"], "--listen", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0",
             "--admin-listen", "127.0.0.1:0", "--data-dir", os.path.join(root, "data")] + list(extra),
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with open(self.log_path) as f:
                text = f.read()
            # the listening line comes last: every listener is up then
            m = re.search(r"nagared listening on 127\.0\.0\.1:(\d+)", text)
            if m:
                self.port = int(m.group(1))
                self.kafka = re.search(r"Kafka clients served on (\S+)", text).group(1)
                self.admin = int(re.search(
                    r"HTTP admin \(metrics, health\) served on 127\.0\.0\.1:(\d+)", text).group(1))
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                fail("nagared did not start:\n" + open(self.log_path).read())
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        rc = self.proc.wait(timeout=START_TIMEOUT_S)
        self.log.close()
        if rc != 0:
            fail("nagared exited %d after SIGTERM:\n%s" % (rc, open(self.log_path).read()[-2000:]))


def expected(codec):
    """(key, value, headers, timestamp) of the records sent with codec:
    values long and repetitive enough that every codec compresses them, a
    record without headers, one with an empty header value."""
    out = []
    for i in range(RECORDS_PER_CODEC):
        key = ("k-%s-%d" % (codec, i)).encode()
        value = (("v-%s-%d " % (codec, i)) * (1 + i * 7)).encode()
        headers = [] if i % 5 == 0 else [("h1", ("x%d" % i).encode()), ("h2", b"")]
        out.append((key, value, headers, BASE_TS_MS + CODECS.index(codec) * 1000 + i))
    return out


def all_expected(codecs=CODECS):
    return [r for c in codecs for r in expected(c)]


def compare(what, got, want, check_ts=True):
    if len(got) != len(want):
        fail("%s: %d records read, %d expected" % (what, len(got), len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        gk, gv, gh, gt = g
        wk, wv, wh, wt = w
        if (gk, gv, list(gh)) != (wk, wv, list(wh)):
            fail("%s: record %d is %r, expected %r" % (what, i, g[:3], w[:3]))
        if check_ts and gt != wt:
            fail("%s: record %d has timestamp %d, expected %d" % (what, i, gt, wt))


def first_at_or_after(ts, codecs=CODECS):
    recs = all_expected(codecs)
    return next(i for i, r in enumerate(recs) if r[3] >= ts)


# ---- kcat ----

def kcat_run(args, stdin=None):
    r = subprocess.run(["kcat"] + args, input=stdin, capture_output=True,
                       timeout=CLIENT_TIMEOUT_S)
    if r.returncode != 0:
        fail("kcat %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.decode()))
    return r.stdout


def kcat_consume(b, topic, offset):
    """Reads partition 0 from offset to its end: records as (key, value,
    headers, timestamp, offset). The value goes behind its length (%R), so
    that every byte of it is compared; keys and headers are plain text."""
    out = kcat_run(["-b", b.kafka, "-C", "-t", topic, "-p", "0", "-o", offset, "-e", "-q",
                    "-f", "%k\\x01%R%s%h\\x02%T\\x02%o\\x02"])
    recs = []
    pos = 0
    while pos < len(out):
        end = out.index(b"\x01", pos)
        key = out[pos:end]
        vlen = int.from_bytes(out[end + 1:end + 5], "big")
        value = out[end + 5:end + 5 + vlen]
        pos = end + 5 + vlen
        h, t, o, rest = out[pos:].split(b"\x02", 3)
        pos = len(out) - len(rest)
        headers = []
        for kv in filter(None, h.decode().split(",")):
            name, _, val = kv.partition("=")
            headers.append((name, val.encode()))
        recs.append((key, value, headers, int(t), int(o)))
    return recs


def run_kcat(b, topic):
    if shutil.which("kcat") is None:
        print("SKIP: kcat is not installed (Debian package kcat)")
        sys.exit(SKIP)
    # kcat -P sets no timestamps: they are the producer's clock, checked to
    # lie within the run. One record per run, because -H gives every record
    # of a run the same headers.
    before = int(time.time() * 1000)
    for codec in CODECS:
        for key, value, headers, _ in expected(codec):
            args = ["-b", b.kafka, "-P", "-t", topic, "-p", "0", "-k", key.decode(),
                    "-X", "compression.codec=" + codec, "-X", "enable.idempotence=true",
                    "-X", "acks=all", "-D", "\x01"]
            for name, val in headers:
                args += ["-H", "%s=%s" % (name, val.decode())]
            kcat_run(args, stdin=value + b"\x01")
    after = int(time.time() * 1000)
    meta = kcat_run(["-b", b.kafka, "-L", "-t", topic]).decode()
    if 'topic "%s" with 1 partitions' % topic not in meta or "broker 0 at " + b.kafka not in meta:
        fail("kcat -L:\n" + meta)
    want = all_expected()
    got = kcat_consume(b, topic, "beginning")
    compare("kcat from the beginning", [r[:4] for r in got], want, check_ts=False)
    if [r[4] for r in got] != list(range(len(want))):
        fail("kcat: offsets %r" % [r[4] for r in got])
    for r in got:
        if not before <= r[3] <= after:
            fail("kcat: timestamp %d outside the run [%d, %d]" % (r[3], before, after))
    got5 = kcat_consume(b, topic, "5")
    compare("kcat from offset 5", [r[:4] for r in got5], want[5:], check_ts=False)
    ts = got[37][3]
    first = next(i for i, r in enumerate(got) if r[3] >= ts)
    got_t = kcat_consume(b, topic, "s@%d" % ts)
    compare("kcat by time", [r[:4] for r in got_t], want[first:], check_ts=False)
    if [r[3] for r in got_t] != [r[3] for r in got[first:]]:
        fail("kcat by time: timestamps differ from the first read")


# ---- confluent-kafka ----

def run_confluent(b, topic):
    try:
        import confluent_kafka as ck
    except ImportError:
        print("SKIP: confluent_kafka is not installed (Debian package python3-confluent-kafka)")
        sys.exit(SKIP)
    for codec in CODECS:
        p = ck.Producer({"bootstrap.servers": b.kafka, "enable.idempotence": True, "acks": "all",
                         "compression.type": codec})
        errors = []
        for key, value, headers, ts in expected(codec):
            p.produce(topic, key=key, value=value, headers=headers, timestamp=ts, partition=0,
                      on_delivery=lambda err, msg: errors.append(err) if err else None)
        if p.flush(CLIENT_TIMEOUT_S) != 0 or errors:
            fail("confluent %s: not delivered: %r" % (codec, errors))
    md = ck.Producer({"bootstrap.servers": b.kafka}).list_topics(topic, timeout=30)
    if topic not in md.topics or len(md.topics[topic].partitions) != 1:
        fail("confluent metadata: %r" % md.topics)
    want = all_expected()

    def consume(start, group=None):
        conf = {"bootstrap.servers": b.kafka, "group.id": group or "none",
                "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        c = ck.Consumer(conf)
        if group:
            c.subscribe([topic])
        else:
            c.assign([ck.TopicPartition(topic, 0, start)])
        got = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(got) < len(want) - start and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                fail("confluent consume: %s" % m.error())
            got.append((m.key(), m.value(), m.headers() or [], m.timestamp()[1]))
        c.close()
        return got

    compare("confluent from the beginning (a group)", consume(0, "g-confluent"), want)
    compare("confluent from offset 7", consume(7), want[7:])
    c = ck.Consumer({"bootstrap.servers": b.kafka, "group.id": "none"})
    ts = want[45][3]
    found = c.offsets_for_times([ck.TopicPartition(topic, 0, ts)], timeout=30)
    c.close()
    if found[0].offset != first_at_or_after(ts):
        fail("confluent offsets_for_times(%d): %d" % (ts, found[0].offset))
    confluent_admin(ck, b)


def confluent_admin(ck, b):
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
    admin = AdminClient({"bootstrap.servers": b.kafka})
    name = "t-confluent-admin"
    for f in admin.create_topics([NewTopic(name, 3, 1, config={"retention.ms": "3600000"})],
                                 operation_timeout=30).values():
        f.result(timeout=CLIENT_TIMEOUT_S)
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([res])[res].result(timeout=CLIENT_TIMEOUT_S)
    if configs["retention.ms"].value != "3600000" or configs["cleanup.policy"].value != "delete":
        fail("confluent describe_configs: %r" % {k: c.value for k, c in configs.items()})
    md = admin.list_topics(name, timeout=30)
    if len(md.topics[name].partitions) != 3:
        fail("confluent: the created topic has %d partitions" % len(md.topics[name].partitions))
    for f in admin.delete_topics([name], operation_timeout=30).values():
        f.result(timeout=CLIENT_TIMEOUT_S)
    if name in admin.list_topics(timeout=30).topics:
        fail("confluent: the deleted topic is still listed")


# ---- kafka-python ----

def run_kafka_python(b, topic):
    try:
        import kafka
    except ImportError:
        print("SKIP: kafka-python is not installed (Debian package python3-kafka)")
        sys.exit(SKIP)
    for codec in CODECS:
        p = kafka.KafkaProducer(bootstrap_servers=b.kafka, acks="all",
                                compression_type=None if codec == "none" else codec)
        futures = [p.send(topic, key=k, value=v, headers=h, timestamp_ms=ts, partition=0)
                   for k, v, h, ts in expected(codec)]
        p.flush(CLIENT_TIMEOUT_S)
        for f in futures:
            f.get(timeout=CLIENT_TIMEOUT_S)
        p.close()
    want = all_expected()
    tp = kafka.TopicPartition(topic, 0)

    def records(c, n):
        got = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(got) < n and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=1000).values():
                got += [(m.key, m.value, m.headers, m.timestamp) for m in msgs]
        return got

    c = kafka.KafkaConsumer(topic, bootstrap_servers=b.kafka, group_id="g-kafka-python",
                            auto_offset_reset="earliest", enable_auto_commit=False)
    compare("kafka-python from the beginning (a group)", records(c, len(want)), want)
    c.close()
    c = kafka.KafkaConsumer(bootstrap_servers=b.kafka, enable_auto_commit=False)
    if topic not in c.topics():
        fail("kafka-python metadata: %r" % c.topics())
    c.assign([tp])
    c.seek(tp, 11)
    compare("kafka-python from offset 11", records(c, len(want) - 11), want[11:])
    ts = want[66][3]
    found = c.offsets_for_times({tp: ts})[tp]
    if found.offset != first_at_or_after(ts) or found.timestamp != want[found.offset][3]:
        fail("kafka-python offsets_for_times(%d): %r" % (ts, found))
    if c.beginning_offsets([tp])[tp] != 0 or c.end_offsets([tp])[tp] != len(want):
        fail("kafka-python beginning/end offsets")
    c.close()
    kafka_python_admin(kafka, b)


def kafka_python_admin(kafka, b):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=b.kafka)
    name = "t-kafka-python-admin"
    admin.create_topics([NewTopic(name, 2, 1, topic_configs={"segment.bytes": "1048576"})])
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    entries = {e[0]: e[1] for e in described[0].resources[0][4]}
    if entries.get("segment.bytes") != "1048576" or "retention.ms" not in entries:
        fail("kafka-python describe_configs: %r" % entries)
    if name not in admin.list_topics():
        fail("kafka-python: the created topic is not listed")
    admin.delete_topics([name])
    if name in admin.list_topics():
        fail("kafka-python: the deleted topic is still listed")
    admin.close()


# ---- KafkaJS ----

KAFKAJS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafkajs_client.mjs")


def kafkajs_missing():
    """Why KafkaJS cannot run here (node or KafkaJS missing), or None."""
    if shutil.which("node") is None:
        return "node is not installed (./dev.sh installs Debian's nodejs)"
    modules = os.environ.get("KAFKAJS_MODULES", "")
    if not os.path.isfile(os.path.join(modules, "kafkajs", "package.json")):
        return ("KafkaJS is not installed in $KAFKAJS_MODULES (%r); ./dev.sh installs it"
                " (npm ci in tests/kafkajs)" % modules)
    return None


def kafkajs_check():
    """Exits 77 (skipped), saying why, when node or KafkaJS is missing."""
    why = kafkajs_missing()
    if why:
        print("SKIP: " + why)
        sys.exit(SKIP)


def kafkajs_run(cmd, brokers, *args, records=None):
    """Runs kafkajs_client.mjs CMD against brokers (HOST:PORT[,...]) with
    records (dicts, as that program reads them) on its stdin; returns the
    JSON lines it printed."""
    stdin = "".join(json.dumps(r) + "\n" for r in records or [])
    r = subprocess.run(["node", KAFKAJS, cmd, "--brokers", brokers] + list(args), input=stdin,
                       capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
    if r.returncode != 0:
        fail("kafkajs_client.mjs %s %s: exit %d: %s" % (cmd, " ".join(args), r.returncode,
                                                         r.stderr))
    return [json.loads(line) for line in r.stdout.splitlines()]


def kafkajs_records(out):
    """kafkajs_client.mjs's records as (key, value, headers, timestamp)."""
    unhex = lambda h: None if h is None else bytes.fromhex(h)  # noqa: E731
    return [(unhex(r["key"]), unhex(r["value"]), [(n, unhex(v)) for n, v in r["headers"]],
             r["ts"]) for r in out]


def run_kafkajs(b, topic):
    kafkajs_check()
    offered = kafkajs_run("codecs", b.kafka)[0]
    codecs = [c for c in CODECS if c in offered]
    if codecs[:2] != ["none", "gzip"]:
        fail("KafkaJS offers the codecs %r" % offered)
    for codec in codecs:
        recs = [{"partition": 0, "key": k.hex(), "value": v.hex(), "ts": ts,
                 "headers": [(n, val.hex()) for n, val in h]} for k, v, h, ts in expected(codec)]
        kafkajs_run("produce", b.kafka, "--topic", topic, "--codec", codec, records=recs)
    if topic not in kafkajs_run("topics", b.kafka)[0]:
        fail("kafkajs: metadata does not list %s" % topic)
    want = all_expected(codecs)
    group = ["--topic", topic, "--group", "g-kafkajs"]
    got = kafkajs_run("consume", b.kafka, "--commit", *group)
    compare("kafkajs from the beginning (a group that commits)", kafkajs_records(got), want)
    if [r["offset"] for r in got] != list(range(len(want))) or \
            any(r["producer_id"] < 0 for r in got):
        fail("kafkajs: offsets or producer ids (idempotence) %r" %
             [(r["offset"], r["producer_id"]) for r in got])
    compare("kafkajs from offset 13",
            kafkajs_records(kafkajs_run("consume", b.kafka, "--topic", topic, "--offset", "13")),
            want[13:])
    ts = want[50][3]
    offsets = kafkajs_run("offsets", b.kafka, "--topic", topic, "--time", str(ts))[0]
    first = first_at_or_after(ts, codecs)
    if offsets != {"earliest": [0], "latest": [len(want)], "at": [first]}:
        fail("kafkajs offsets (by time %d: %d): %r" % (ts, first, offsets))
    compare("kafkajs by time",
            kafkajs_records(kafkajs_run("consume", b.kafka, "--topic", topic, "--offset",
                                        str(first))), want[first:])
    # The group that read everything has nothing left; reset to the
    # earliest (KafkaJS commits -2 for that, as Kafka takes it), it reads
    # everything again.
    compare("kafkajs from the group's commits",
            kafkajs_records(kafkajs_run("consume", b.kafka, *group)), [])
    kafkajs_run("reset", b.kafka, *group)
    compare("kafkajs from the group's offsets reset to the earliest",
            kafkajs_records(kafkajs_run("consume", b.kafka, *group)), want)
    print("kafkajs: codecs %s" % " ".join(codecs))
    kafkajs_admin(b)


def kafkajs_admin(b):
    name = "t-kafkajs-admin"
    created = kafkajs_run("create", b.kafka, "--topic", name, "--partitions", "3",
                          "--config", "retention.ms=3600000")[0]
    if created != {"created": name, "partitions": 3}:
        fail("kafkajs create: %r" % created)
    configs = kafkajs_run("describe", b.kafka, "--topic", name)[0]
    if configs.get("retention.ms") != "3600000" or configs.get("cleanup.policy") != "delete":
        fail("kafkajs describeConfigs: %r" % configs)
    kafkajs_run("delete", b.kafka, "--topic", name)
    if name in kafkajs_run("topics", b.kafka)[0]:
        fail("kafkajs: the deleted topic is still listed")


CLIENTS = {"kcat": run_kcat, "confluent": run_confluent, "kafka-python": run_kafka_python,
           "kafkajs": run_kafkajs}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CLIENTS:
        fail("usage: kafka_clients.py " + "|".join(CLIENTS))
    root = tempfile.mkdtemp(prefix="nagare-kafka-clients-")
    b = Broker(root)
    failed = True  # the directory is kept for a look at what failed
    try:
        CLIENTS[sys.argv[1]](b, "t-" + sys.argv[1])
        failed = False
    except SystemExit as e:
        failed = e.code != SKIP
        if failed:
            print(open(b.log_path).read()[-4000:], file=sys.stderr)
        raise
    finally:
        b.stop()
        if not failed:
            shutil.rmtree(root)
    print("ok: %s" % sys.argv[1])


if __name__ == "__main__":
    main()
