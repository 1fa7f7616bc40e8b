#!/usr/bin/python3
"""tests/kafka_acl_clients.py — ACLs through a Kafka client's admin API
against a real nagared (docs/security.md, "Authorization").

kafka-python's KafkaAdminClient (python3-kafka; confluent-kafka-python 1.7,
Debian 12's, has no ACL calls) creates, describes and deletes ACLs through
CreateAcls, DescribeAcls and DeleteAcls while the authorizer is off; the
broker restarted with it on keeps them, and the client (User:ANONYMOUS:
nothing authenticates here) may then produce to orders* but not to
payroll, may not read payroll nor delete it, and payroll still exists
afterwards. $NAGARED: the binary. Exit 77 (skipped) when kafka-python is
not installed.
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_clients import CLIENT_TIMEOUT_S, SKIP, Broker, fail  # noqa: E402

ME = "User:ANONYMOUS"


def error_name(e):
    return type(e).__name__


def expect_refusal(what, fn):
    """fn() must raise Kafka's TopicAuthorizationFailedError."""
    try:
        fn()
    except Exception as e:  # kafka-python raises its error classes
        if "TopicAuthorizationFailed" not in error_name(e):
            fail("%s: %s, not TopicAuthorizationFailedError" % (what, error_name(e)))
        return
    fail("%s was allowed" % what)


def set_up_acls(b, k):
    """The authorizer off: topics, a record in payroll, and the ACLs."""
    admin = k.KafkaAdminClient(bootstrap_servers=b.kafka, client_id="acl-test")
    admin.create_topics([k.NewTopic("orders-1", 1, 1), k.NewTopic("payroll", 1, 1)])
    p = k.KafkaProducer(bootstrap_servers=b.kafka, acks="all")
    p.send("payroll", b"salary").get(timeout=CLIENT_TIMEOUT_S)
    p.close(timeout=CLIENT_TIMEOUT_S)
    cluster = k.ResourcePattern(k.ResourceType.CLUSTER, "kafka-cluster",
                                k.ACLResourcePatternType.LITERAL)
    orders = k.ResourcePattern(k.ResourceType.TOPIC, "orders", k.ACLResourcePatternType.PREFIXED)
    payroll = k.ResourcePattern(k.ResourceType.TOPIC, "payroll", k.ACLResourcePatternType.LITERAL)
    allow = k.ACLPermissionType.ALLOW
    # payroll may be seen (so the clients get as far as Produce and Fetch),
    # not read, written or deleted
    acls = [k.ACL(ME, "*", k.ACLOperation.ALTER, allow, cluster),
            k.ACL(ME, "*", k.ACLOperation.DESCRIBE, allow, cluster),
            k.ACL(ME, "*", k.ACLOperation.WRITE, allow, orders),
            k.ACL(ME, "*", k.ACLOperation.READ, allow, orders),
            k.ACL(ME, "*", k.ACLOperation.DESCRIBE, allow, payroll)]
    bad = k.ACL(ME, "*", k.ACLOperation.ALTER, allow,
                k.ResourcePattern(k.ResourceType.CLUSTER, "not-the-cluster",
                                  k.ACLResourcePatternType.LITERAL))
    result = admin.create_acls(acls + [bad])
    if len(result["succeeded"]) != 5 or len(result["failed"]) != 1:
        fail("create_acls: %r" % (result,))
    found, err = admin.describe_acls(everything(k))
    if len(found) != 5:
        fail("describe_acls: %d ACLs, want 5 (%r)" % (len(found), err))
    admin.close()


def everything(k):
    return k.ACLFilter(principal=None, host=None, operation=k.ACLOperation.ANY,
                       permission_type=k.ACLPermissionType.ANY,
                       resource_pattern=k.ResourcePatternFilter(
                           k.ResourceType.ANY, None, k.ACLResourcePatternType.ANY))


def check_enforced(b, k):
    """The authorizer on: orders* writable, payroll neither readable,
    writable nor deletable; ACLs deleted through the admin API."""
    admin = k.KafkaAdminClient(bootstrap_servers=b.kafka, client_id="acl-test")
    found, _ = admin.describe_acls(everything(k))
    if len(found) != 5:
        fail("after the restart: %d ACLs, want 5" % len(found))
    p = k.KafkaProducer(bootstrap_servers=b.kafka, acks="all",
                        max_block_ms=CLIENT_TIMEOUT_S * 1000)
    meta = p.send("orders-1", b"order").get(timeout=CLIENT_TIMEOUT_S)
    if meta.topic != "orders-1":
        fail("produce to orders-1: %r" % (meta,))
    expect_refusal("produce to payroll",
                   lambda: p.send("payroll", b"raise").get(timeout=CLIENT_TIMEOUT_S))
    p.close(timeout=CLIENT_TIMEOUT_S)
    c = k.KafkaConsumer(bootstrap_servers=b.kafka, auto_offset_reset="earliest",
                        enable_auto_commit=False)
    c.assign([k.TopicPartition("payroll", 0)])

    def read_payroll():
        for _ in range(CLIENT_TIMEOUT_S):
            if c.poll(timeout_ms=1000):
                return

    expect_refusal("read payroll", read_payroll)
    c.close()
    expect_refusal("delete payroll", lambda: admin.delete_topics(["payroll"]))
    orders = k.ACLFilter(principal=ME, host=None, operation=k.ACLOperation.ANY,
                         permission_type=k.ACLPermissionType.ANY,
                         resource_pattern=k.ResourcePatternFilter(
                             k.ResourceType.TOPIC, "orders", k.ACLResourcePatternType.PREFIXED))
    deleted = admin.delete_acls([orders])
    if len(deleted) != 1 or len(deleted[0][1]) != 2:
        fail("delete_acls: %r" % (deleted,))
    found, _ = admin.describe_acls(everything(k))
    if len(found) != 3:
        fail("after delete_acls: %d ACLs, want 3" % len(found))
    admin.close()


def check_unchanged(b, k):
    admin = k.KafkaAdminClient(bootstrap_servers=b.kafka, client_id="acl-test")
    topics = set(admin.list_topics())
    if not {"orders-1", "payroll"} <= topics:
        fail("topics after the refusals: %r" % (topics,))
    admin.close()


def main():
    try:
        import kafka
        import kafka.admin
    except ImportError:
        print("skip: kafka-python is not installed", file=sys.stderr)
        sys.exit(SKIP)
    k = type("k", (), {})
    for mod in (kafka, kafka.admin):
        for name in dir(mod):
            setattr(k, name, getattr(mod, name))
    root = tempfile.mkdtemp(prefix="nagare-kafka-acls-")
    b = None
    failed = True
    try:
        for authorizer, step in ((False, set_up_acls), (True, check_enforced),
                                 (False, check_unchanged)):
            b = Broker(root, ["--set", "authorizer=%s" % ("true" if authorizer else "false")])
            step(b, k)
            b.stop()
            b = None
        failed = False
    except SystemExit:
        if b is not None:
            print(open(b.log_path).read()[-4000:], file=sys.stderr)
        raise
    finally:
        if b is not None:
            b.stop()
        if not failed:
            shutil.rmtree(root)
    print("ok: ACLs through kafka-python")


if __name__ == "__main__":
    main()
