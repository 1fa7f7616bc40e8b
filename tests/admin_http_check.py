#!/usr/bin/env python3
"""tests/admin_http_check.py — the HTTP admin listener of a real nagared
(broker/admin_http.h): /healthz, /readyz, and /metrics parsed with the
Prometheus client library's own parser (Debian's python3-prometheus-client),
checking that the counters move with the traffic this test sends through
the nagare tool (nagare's protocol) and kcat (Kafka's).

  NAGARED=build/broker/nagared NAGARE=build/client/cli/nagare \
  /usr/bin/python3 tests/admin_http_check.py

Prints "ok - ..." per check; exits 1 at the first failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_clients import Broker, fail  # noqa: E402

RUN_TIMEOUT_S = 60
CHECKS = 0


def ok(what):
    global CHECKS
    CHECKS += 1
    print("ok - " + what)


def http(broker, path, method="GET"):
    """(status, body) of an HTTP request to the admin listener."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (broker.admin, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=RUN_TIMEOUT_S) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type", "")


def scrape(broker):
    """{(name, frozenset(labels)): value} of every sample, parsed by
    prometheus_client (which rejects what the format does not allow)."""
    status, body, ctype = http(broker, "/metrics")
    if status != 200:
        fail("/metrics answered %d: %s" % (status, body))
    if not ctype.startswith("text/plain; version=0.0.4"):
        fail("/metrics content type: " + ctype)
    samples = {}
    families = {}
    for fam in text_string_to_metric_families(body):
        families[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def value(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    if key not in samples:
        fail("no sample %s%s" % (name, labels))
    return samples[key]


def nagare(broker, *args, stdin=None):
    r = subprocess.run([os.environ["NAGARE"], "--broker", "127.0.0.1:%d" % broker.port] + list(args),
                       input=stdin, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if r.returncode != 0:
        fail("nagare %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def main():
    root = tempfile.mkdtemp(prefix="nagare-admin-http-")
    b = Broker(root)
    try:
        for path, want in (("/healthz", "ok\n"), ("/readyz", "ready\n")):
            status, body, _ = http(b, path)
            if status != 200 or body != want:
                fail("%s answered %d %r" % (path, status, body))
        ok("/healthz and /readyz answer 200 on a broker that serves")
        if http(b, "/nowhere")[0] != 404 or http(b, "/metrics", method="POST")[0] != 405:
            fail("an unknown path is not 404, or POST not 405")
        ok("an unknown path is 404, a POST is 405")

        before, families = scrape(b)
        for name, kind in (("nagare_requests_total", "counter"),
                           ("nagare_request_duration_seconds", "histogram"),
                           ("nagare_sync_duration_seconds", "histogram"),
                           ("nagare_partition_high_watermark", "gauge"),
                           ("nagare_group_lag_records", "gauge")):
            # the parser names counter families without their _total
            got = families.get(name) or families.get(name[:-len("_total")])
            if got != kind:
                fail("family %s is %s, not %s" % (name, got, kind))
        ok("/metrics parses as Prometheus text, %d families of the right types" % len(families))

        lines = "".join("record %d\n" % i for i in range(500))
        nagare(b, "topic", "create", "m", "--partitions", "2")
        nagare(b, "produce", "m", "--partition", "0", "--acks", "all", stdin=lines)
        nagare(b, "consume", "m", "--group", "g")
        consumed, _ = scrape(b)
        nagare(b, "produce", "m", "--partition", "0", "--acks", "all",
               stdin="".join("later %d\n" % i for i in range(200)))
        kcat = shutil.which("kcat")
        if kcat is None:
            fail("kcat is not installed (./dev.sh installs it)")
        subprocess.run([kcat, "-b", b.kafka, "-L"], capture_output=True,
                       check=True, timeout=RUN_TIMEOUT_S)
        after, _ = scrape(b)

        part = dict(topic="m", partition="0")
        for name, want in (("nagare_partition_records_in_total", 700),
                           ("nagare_partition_log_end_offset", 700),
                           ("nagare_partition_high_watermark", 700),
                           ("nagare_partition_log_start_offset", 0),
                           ("nagare_partition_segments", 1)):
            got = value(after, name, **part)
            if got != want:
                fail("%s of m/0 is %s, not %s" % (name, got, want))
        if value(after, "nagare_partition_records_in_total", topic="m", partition="1") != 0:
            fail("m/1 counts records it never got")
        size = value(after, "nagare_partition_size_bytes", **part)
        if value(after, "nagare_partition_bytes_in_total", **part) != size or size <= 0:
            fail("bytes in (%s) are not the log's size (%s)"
                 % (value(after, "nagare_partition_bytes_in_total", **part), size))
        out = value(after, "nagare_partition_bytes_out_total", **part)
        if not 0 < out <= size:
            fail("bytes out of m/0: %s (the log holds %s, the group read the first 500)" % (out, size))
        ok("m/0 counts its 700 records in, their bytes in and out, offsets and size")

        # Records out: the group read offsets 0-499 of m/0 once (its last
        # fetch, at the end, waits: answered later, when the next records
        # come, whether its consumer is still there or not); then kcat, a
        # Kafka consumer, reads all 700.
        if value(consumed, "nagare_partition_records_out_total", **part) != 500:
            fail("records out of m/0: %s, not the 500 the group read"
                 % value(consumed, "nagare_partition_records_out_total", **part))
        rout = value(after, "nagare_partition_records_out_total", **part)
        subprocess.run([kcat, "-b", b.kafka, "-C", "-t", "m", "-p", "0",
                        "-o", "beginning", "-e", "-q"], capture_output=True, check=True,
                       timeout=RUN_TIMEOUT_S)
        kafka_after, _ = scrape(b)
        rout2 = value(kafka_after, "nagare_partition_records_out_total", **part)
        if rout2 != rout + 700:
            fail("records out of m/0 after kcat read it whole: %s, not %s" % (rout2, rout + 700))
        ok("records out of m/0 count what the group and a Kafka consumer read")

        if value(after, "nagare_group_committed_offset", group="g", **part) != 500:
            fail("group g's committed offset: %s" % value(after, "nagare_group_committed_offset",
                                                          group="g", **part))
        if value(after, "nagare_group_lag_records", group="g", **part) != 200:
            fail("group g's lag: %s" % value(after, "nagare_group_lag_records", group="g", **part))
        if value(after, "nagare_group_lag_seconds", group="g", **part) < 0:
            fail("a negative lag in seconds")
        ok("group g: committed 500, 200 records behind")

        # The age of g's lag is read from the log once and remembered while
        # its committed offset stays (METRICS_LAG_MEMO_MS, 30 s: a memo
        # running out between these back-to-back scrapes allows one read);
        # a commit that moves it makes the next scrape read it again, once.
        reads = value(after, "nagare_group_lag_reads_total")
        for _ in range(3):
            again, _ = scrape(b)
        if value(again, "nagare_group_lag_reads_total") - reads > 1:
            fail("three scrapes read the lag's age %s times, not from memory"
                 % (value(again, "nagare_group_lag_reads_total") - reads))
        nagare(b, "consume", "m", "--group", "g", "--count", "50")
        moved_on, _ = scrape(b)
        if value(moved_on, "nagare_group_lag_records", group="g", **part) != 150:
            fail("group g's lag after 50 more: %s"
                 % value(moved_on, "nagare_group_lag_records", group="g", **part))
        if value(moved_on, "nagare_group_lag_reads_total") - value(again, "nagare_group_lag_reads_total") != 1:
            fail("the moved offset's age was read %s times, not once"
                 % (value(moved_on, "nagare_group_lag_reads_total")
                    - value(again, "nagare_group_lag_reads_total")))
        ok("the age of group lag is read once per committed offset, then rendered from memory")

        def moved(name, least, **labels):
            d = value(after, name, **labels) - before.get((name, frozenset(labels.items())), 0)
            if d < least:
                fail("%s%s moved by %s, not at least %s" % (name, labels, d, least))

        moved("nagare_requests_total", 2, protocol="nagare", api="Produce")
        moved("nagare_requests_total", 1, protocol="nagare", api="Fetch")
        moved("nagare_requests_total", 1, protocol="nagare", api="OffsetCommit")
        moved("nagare_requests_total", 1, protocol="kafka", api="Metadata")
        for proto, api in (("nagare", "Produce"), ("kafka", "Metadata")):
            labels = dict(protocol=proto, api=api)
            n = value(after, "nagare_requests_total", **labels)
            count = value(after, "nagare_request_duration_seconds_count", **labels)
            inf = value(after, "nagare_request_duration_seconds_bucket", le="+Inf", **labels)
            if not n == count == inf:
                fail("%s %s: %s requests, histogram count %s, +Inf bucket %s" % (proto, api, n, count, inf))
        ok("requests are counted by protocol and api, each in its latency histogram")

        status, body, ctype = http(b, "/api/records?topic=m&partition=0&offset=698&limit=5")
        r = json.loads(body)
        if status != 200 or ctype != "application/json" or \
                [(x["offset"], x["value"], x["value_encoding"]) for x in r["records"]] != \
                [(698, "later 198", "text"), (699, "later 199", "text")] or r["next_offset"] != 700:
            fail("/api/records from 698: %d %s" % (status, body[:500]))
        future = int(time.time() * 1000) + 3600 * 1000
        r = json.loads(http(b, "/api/records?topic=m&time=%d" % future)[1])
        if r["records"] != [] or r["next_offset"] != r["high_watermark"]:
            fail("/api/records after the last timestamp: %s" % r)
        for path, want in (("/api/records?topic=m&offset=abc", 400), ("/api/records", 400),
                           ("/api/records?topic=m&offset=1&time=1", 400),
                           ("/api/records?topic=nope", 404), ("/api/nope", 404)):
            status, body, _ = http(b, path)
            if status != want or "error" not in json.loads(body):
                fail("%s answered %d %s, not %d with an error" % (path, status, body, want))
        topics = json.loads(http(b, "/api/topics")[1])["topics"]
        if [(t["name"], len(t["partitions"]), t["partitions"][0]["high_watermark"]) for t in topics] != \
                [("m", 2, 700)]:
            fail("/api/topics: %s" % topics)
        ok("/api/records reads by offset and by time and refuses bad queries; /api/topics")

        # a Kafka consumer group member (kcat's balanced consumer) is listed
        # while it is in the group
        member = subprocess.Popen([kcat, "-b", b.kafka, "-G", "kg", "m"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while True:
                groups = json.loads(http(b, "/api/groups")[1])["groups"]
                members = [m for g in groups if g["group"] == "kg" for m in g["members"]]
                if members:
                    break
                if time.monotonic() > deadline or member.poll() is not None:
                    fail("kcat's group member never showed in /api/groups: %s" % groups)
                time.sleep(0.1)
        finally:
            member.kill()
            member.wait()
        if members[0]["protocol"] != "kafka" or members[0]["client_id"] != "rdkafka":
            fail("the Kafka member: %s" % members[0])
        ok("/api/groups lists a Kafka group's member, with its client id")

        nagare(b, "consume", "m", "--share", "w")
        shared, _ = scrape(b)
        if shared[("nagare_share_deliveries_total", frozenset())] < 700:
            fail("share group w took m's 700 records; deliveries: %s"
                 % shared[("nagare_share_deliveries_total", frozenset())])
        if value(shared, "nagare_share_records", group="w", topic="m", partition="0",
                 state="acquired") != 0:
            fail("records still locked after the share consumer accepted them all")
        ok("a share group's deliveries are counted, nothing left in flight")

        moved("nagare_syncs_total", 2, file="log")
        moved("nagare_sync_duration_seconds_count", 2, file="log")
        moved("nagare_connections_accepted_total", 5)
        ok("acks=all produces are fdatasync'd and timed; connections are counted")
    finally:
        b.stop()
        shutil.rmtree(root, ignore_errors=True)
    json_logs()
    print("1..%d" % CHECKS)


def json_logs():
    """log_format = json: every line the broker writes, start to stop, is
    one JSON object with its time, level and message."""
    root = tempfile.mkdtemp(prefix="nagare-json-log-")
    b = Broker(root, ["--set", "log_format=json"])
    nagare(b, "topic", "create", "json-logs", "--partitions", "1")
    b.stop()
    lines = open(b.log_path).read().splitlines()
    shutil.rmtree(root, ignore_errors=True)
    if len(lines) < 3:
        fail("the JSON log has %d lines" % len(lines))
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError as e:
            fail("a log line is not JSON (%s): %r" % (e, line))
        if sorted(obj) != ["level", "msg", "time"] or not obj["time"].endswith("Z"):
            fail("a log line lacks time, level or msg: %r" % line)
    if not any(json.loads(l)["msg"].startswith("nagared listening on") for l in lines):
        fail("no listening line in the JSON log")
    ok("log_format = json: all %d lines of the broker's log are JSON objects" % len(lines))


if __name__ == "__main__":
    main()
