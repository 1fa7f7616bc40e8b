#!/usr/bin/python3
"""tests/kafka_sasl_clients.py CLIENT [--tls] — a real Kafka client logs in with
SASL SCRAM to a real nagared that requires it (broker/sasl_serve.h); with
--tls, over TLS (security.protocol=SASL_SSL, the broker's certificate
verified against the test CA that $TLS_CERTS, tests/tls_certs.sh, makes).
CLIENT is one of:

    kcat          kcat (librdkafka: SaslHandshake v1, then SaslAuthenticate)
    confluent     confluent-kafka-python (librdkafka)
    kafka-python  kafka-python 2.0 (SaslHandshake v0, then the exchange in bare frames)

With each of SCRAM-SHA-256 and SCRAM-SHA-512 the client produces records
and reads them back; a wrong password must fail to log in, and so must a
client that does not log in at all. The user is made offline first
(nagared --add-user). The broker runs on ephemeral ports in a temporary
directory ($NAGARED: the binary). Exit 77 (skipped) when the client is not
installed; ./dev.sh installs them.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_clients import Broker, fail  # noqa: E402

SKIP = 77
# SASL_PLAINTEXT, or SASL_SSL with --tls (main() sets them)
PROTOCOL = "sasl_plaintext"
CA = None
USER = "kafka-user"
PASSWORD = "s3cret-for-kafka"
MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]
RECORDS = 10
# Only a broken broker or client comes near these.
CLIENT_TIMEOUT_S = 60


def start_broker(root, tls):
    """kafka_clients.Broker requiring logins, its user added first; with
    tls, its Kafka listener speaks TLS with fresh test certificates."""
    global PROTOCOL, CA
    data = os.path.join(root, "data")
    env = dict(os.environ, NAGARE_PASSWORD=PASSWORD)
    subprocess.run([os.environ["NAGARED"], "--add-user", USER, data], env=env, check=True,
                   capture_output=True)
    extra = ["--set", "authentication=required", "--set", "login_failures_max=1000"]
    if tls:
        certs = os.path.join(root, "certs")
        os.mkdir(certs)
        subprocess.run(["sh", os.environ["TLS_CERTS"], certs], check=True, capture_output=True)
        PROTOCOL, CA = "sasl_ssl", os.path.join(certs, "ca.pem")
        extra += ["--set", "kafka_listen_tls=true",
                  "--set", "tls_cert_file=" + os.path.join(certs, "server.pem"),
                  "--set", "tls_key_file=" + os.path.join(certs, "server.key")]
    return Broker(root, extra)


def tls_kcat_args():
    return ["-X", "ssl.ca.location=" + CA] if CA is not None else []


def values(mech):
    return [("%s-%d" % (mech, i)).encode() for i in range(RECORDS)]


# ---- kcat ----

def kcat_args(b, mech, password):
    return ["kcat", "-b", b.kafka, "-X", "security.protocol=" + PROTOCOL,
            "-X", "sasl.mechanisms=" + mech, "-X", "sasl.username=" + USER,
            "-X", "sasl.password=" + password] + tls_kcat_args()


def run_kcat(b):
    if shutil.which("kcat") is None:
        print("SKIP: kcat is not installed (Debian package kcat)")
        sys.exit(SKIP)
    for mech in MECHANISMS:
        topic = "kcat-" + mech.lower()
        lines = b"\n".join(values(mech)) + b"\n"
        r = subprocess.run(kcat_args(b, mech, PASSWORD) + ["-P", "-t", topic, "-p", "0"],
                           input=lines, capture_output=True, timeout=CLIENT_TIMEOUT_S)
        if r.returncode != 0:
            fail("kcat -P with %s: %s" % (mech, r.stderr.decode()))
        r = subprocess.run(kcat_args(b, mech, PASSWORD) +
                           ["-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q"],
                           capture_output=True, timeout=CLIENT_TIMEOUT_S)
        if r.returncode != 0 or r.stdout.split(b"\n")[:-1] != values(mech):
            fail("kcat -C with %s: exit %d, %r: %s" % (mech, r.returncode, r.stdout,
                                                       r.stderr.decode()))
    r = subprocess.run(kcat_args(b, MECHANISMS[0], "wrong") + ["-L", "-m", "10"],
                       capture_output=True, timeout=CLIENT_TIMEOUT_S)
    if r.returncode == 0 or b"uthentication" not in r.stderr:
        fail("kcat with a wrong password: exit %d: %s" % (r.returncode, r.stderr.decode()))
    no_login = ["-X", "security.protocol=ssl"] + tls_kcat_args() if CA is not None else []
    r = subprocess.run(["kcat", "-b", b.kafka, "-L", "-m", "5"] + no_login, capture_output=True,
                       timeout=CLIENT_TIMEOUT_S)
    if r.returncode == 0:
        fail("kcat without a login listed metadata:\n" + r.stdout.decode())


# ---- confluent-kafka-python ----

def confluent_conf(b, mech, password):
    conf = {"bootstrap.servers": b.kafka, "security.protocol": PROTOCOL,
            "sasl.mechanisms": mech, "sasl.username": USER, "sasl.password": password}
    if CA is not None:
        conf["ssl.ca.location"] = CA
    return conf


def run_confluent(b):
    try:
        import confluent_kafka as ck
    except ImportError:
        print("SKIP: confluent-kafka-python is not installed (python3-confluent-kafka)")
        sys.exit(SKIP)
    for mech in MECHANISMS:
        topic = "confluent-" + mech.lower()
        p = ck.Producer(confluent_conf(b, mech, PASSWORD))
        for v in values(mech):
            p.produce(topic, value=v, partition=0)
        if p.flush(CLIENT_TIMEOUT_S) != 0:
            fail("confluent producer with %s: records not delivered" % mech)
        conf = confluent_conf(b, mech, PASSWORD)
        conf.update({"group.id": "g-" + topic, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
        c = ck.Consumer(conf)
        c.assign([ck.TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(got) < RECORDS and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and m.error() is None:
                got.append(m.value())
        c.close()
        if got != values(mech):
            fail("confluent consumer with %s read %r" % (mech, got))
    errors = []
    conf = confluent_conf(b, MECHANISMS[1], "wrong")
    conf["error_cb"] = errors.append
    p = ck.Producer(conf)
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while not any(e.code() == ck.KafkaError._AUTHENTICATION for e in errors):
        if time.monotonic() > deadline:
            fail("confluent with a wrong password: no authentication error in %r" % errors)
        p.poll(0.5)


# ---- kafka-python ----

def run_kafka_python(b):
    try:
        import kafka
        import kafka.errors
    except ImportError:
        print("SKIP: kafka-python is not installed (python3-kafka)")
        sys.exit(SKIP)

    def conf(mech, password):
        return {"bootstrap_servers": b.kafka, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": mech, "sasl_plain_username": USER,
                "sasl_plain_password": password}
    for mech in MECHANISMS:
        topic = "kafka-python-" + mech.lower()
        p = kafka.KafkaProducer(**conf(mech, PASSWORD))
        for v in values(mech):
            p.send(topic, value=v, partition=0).get(timeout=CLIENT_TIMEOUT_S)
        p.close()
        c = kafka.KafkaConsumer(auto_offset_reset="earliest",
                                consumer_timeout_ms=CLIENT_TIMEOUT_S * 1000, **conf(mech, PASSWORD))
        c.assign([kafka.TopicPartition(topic, 0)])
        got = []
        for m in c:
            got.append(m.value)
            if len(got) == RECORDS:
                break
        c.close()
        if got != values(mech):
            fail("kafka-python consumer with %s read %r" % (mech, got))
    try:
        p = kafka.KafkaProducer(**conf(MECHANISMS[0], "wrong"))
        p.close()
        fail("kafka-python with a wrong password connected")
    except (kafka.errors.KafkaError, Exception) as e:  # refused at its first connection
        if "uthentication" not in repr(e) and "NoBrokersAvailable" not in repr(e):
            fail("kafka-python with a wrong password: %r" % e)


CLIENTS = {"kcat": run_kcat, "confluent": run_confluent, "kafka-python": run_kafka_python}


def main():
    tls = sys.argv[2:] == ["--tls"]
    if len(sys.argv) not in (2, 3) or sys.argv[1] not in CLIENTS or (len(sys.argv) == 3 and not tls):
        fail("usage: kafka_sasl_clients.py %s [--tls]" % "|".join(CLIENTS))
    if tls and sys.argv[1] == "kafka-python":
        fail("kafka-python over TLS is not among these runs")
    root = tempfile.mkdtemp(prefix="nagare-sasl-")
    b = start_broker(root, tls)
    try:
        CLIENTS[sys.argv[1]](b)
        print("%s: SCRAM logins%s, produce and consume, refusals: ok" %
              (sys.argv[1], " over TLS" if tls else ""))
    except SystemExit as e:
        if e.code not in (0, SKIP):
            print(open(b.log_path).read()[-3000:], file=sys.stderr)
        raise
    finally:
        b.stop()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
