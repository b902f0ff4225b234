"""Kafka ACLs (docs/security.md): with `authorizer.class.name` set to Kafka's StandardAuthorizer,
confluent-kafka's AdminClient creates, describes and deletes ACLs, `bin/kafka-acls.sh` adds,
lists and removes them in Kafka's command-line form (librdkafka's 0109/0115/0119 use it), a
denied produce and fetch get TOPIC_AUTHORIZATION_FAILED, a topic without DESCRIBE is left out
of the all-topics listing, removing the ACLs restores access, and the ACLs survive a restart.
Without an authorizer the ACL APIs answer SECURITY_DISABLED."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from silt_helpers import REPO_ROOT, SILT_BIN, admin, client_conf, create_topic, wait_until

ACLS = REPO_ROOT / "bin" / "kafka-acls.sh"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def kafka_acls(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, SILT_BIN=str(SILT_BIN))
    r = subprocess.run([str(ACLS), *args], capture_output=True, text=True, timeout=60, env=env)
    assert (r.returncode == 0) == ok, f"kafka-acls.sh {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def produce_one(node, topic: str):
    """Produces one record; returns the delivery error (None when delivered)."""
    from confluent_kafka import Producer

    p = Producer(client_conf(node, **{"acks": "all", "message.timeout.ms": 5000, "retries": 0}))
    result = []
    p.produce(topic, b"v", on_delivery=lambda err, msg: result.append(err))
    p.flush(10)
    assert result, "no delivery report"
    return result[0]


def fetch_error(node, topic: str):
    """Reads partition 0 from the start without a group; returns the first error code seen, or
    None when a record arrives."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(client_conf(node, **{"group.id": "acl-reader", "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        for _ in range(40):
            m = c.poll(0.25)
            if m is None:
                continue
            if m.error() is not None:
                return m.error().code()
            return None
        raise AssertionError("neither a record nor an error")
    finally:
        c.close()


@pytest.fixture
def anode(node_factory):
    return node_factory({"authorizer.class.name": AUTHORIZER, "allow.everyone.if.no.acl.found": "true",
                         "s3.wal.capacity": str(64 << 20)})


def test_acls_deny_and_restore(anode):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)

    topic, hidden = f"acl-{uuid.uuid4().hex[:8]}", f"acl-hidden-{uuid.uuid4().hex[:8]}"
    create_topic(anode, topic)
    create_topic(anode, hidden)
    assert produce_one(anode, topic) is None, "no ACLs and allow.everyone.if.no.acl.found: open"
    bs = ["--bootstrap-server", anode.bootstrap]

    # kafka-acls.sh in librdkafka's forms: allow READ (which implies DESCRIBE), deny WRITE. Once
    # a topic has ACLs, allow.everyone.if.no.acl.found no longer applies to it.
    kafka_acls(*bs, "--add", "--allow-principal", "User:*", "--operation", "Read", "--allow-host", "*", "--topic", topic)
    r = kafka_acls(*bs, "--add", "--deny-principal", "User:*", "--operation", "Write", "--deny-host", "*", "--topic", topic)
    pattern = f"ResourcePattern(resourceType=TOPIC, name={topic}, patternType=LITERAL)"
    entry = "(principal=User:*, host=*, operation=WRITE, permissionType=DENY)"
    assert f"Adding ACLs for resource `{pattern}`: \n \t{entry} \n" in r.stdout, r.stdout
    assert f"Current ACLs for resource `{pattern}`: \n" in r.stdout and entry in r.stdout, r.stdout
    assert "(principal=User:*, host=*, operation=READ, permissionType=ALLOW)" in r.stdout, r.stdout
    assert produce_one(anode, topic).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert fetch_error(anode, topic) is None, "WRITE denied, READ allowed"

    # AdminClient: deny READ, and DESCRIBE of another topic.
    a = admin(anode)
    deny_read = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:*", "*",
                           AclOperation.READ, AclPermissionType.DENY)
    deny_describe = AclBinding(ResourceType.TOPIC, hidden, ResourcePatternType.LITERAL, "User:*", "*",
                               AclOperation.DESCRIBE, AclPermissionType.DENY)
    for f in a.create_acls([deny_read, deny_describe], request_timeout=10).values():
        assert f.result(timeout=10) is None
    bad = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "nobody", "*",
                     AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(Exception) as refused:
        a.create_acls([bad], request_timeout=10)[bad].result(timeout=10)
    assert "principal" in str(refused.value).lower(), str(refused.value)
    assert fetch_error(anode, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    md = a.list_topics(timeout=10)
    assert topic in md.topics and hidden not in md.topics, "a topic without DESCRIBE is left out of listings"
    assert a.list_topics(topic=hidden, timeout=10).topics[hidden].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    every = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                             AclPermissionType.ANY)
    assert len(a.describe_acls(every, request_timeout=10).result(timeout=10)) == 4
    match = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.MATCH, None, None, AclOperation.ANY,
                             AclPermissionType.ANY)
    found = a.describe_acls(match, request_timeout=10).result(timeout=10)
    assert sorted((b.operation.value, b.permission_type.value) for b in found) == sorted(
        (op.value, perm.value) for op, perm in [(AclOperation.WRITE, AclPermissionType.DENY),
                                                (AclOperation.READ, AclPermissionType.ALLOW),
                                                (AclOperation.READ, AclPermissionType.DENY)])

    # The ACLs are in the metadata log: a restart keeps them, and keeps enforcing them.
    anode.restart()
    a = admin(anode)
    assert len(a.describe_acls(every, request_timeout=10).result(timeout=10)) == 4
    assert produce_one(anode, topic).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    r = kafka_acls(*bs, "--list", "--topic", topic)
    assert "operation=READ, permissionType=DENY" in r.stdout and entry in r.stdout, r.stdout

    # Removal restores access: AdminClient for READ and DESCRIBE, kafka-acls.sh --force for WRITE.
    deleted = a.delete_acls([AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.LITERAL, "User:*", None,
                                              AclOperation.READ, AclPermissionType.DENY),
                             AclBindingFilter(ResourceType.TOPIC, hidden, ResourcePatternType.ANY, None, None,
                                              AclOperation.ANY, AclPermissionType.ANY)], request_timeout=10)
    assert [len(f.result(timeout=10)) for f in deleted.values()] == [1, 1]
    kafka_acls(*bs, "--remove", "--force", "--deny-principal", "User:*", "--operation", "Write", "--deny-host", "*",
               "--topic", topic)
    kafka_acls(*bs, "--remove", "--force", "--topic", topic)   # every ACL of the topic: the READ allow
    assert a.describe_acls(every, request_timeout=10).result(timeout=10) == []
    wait_until(lambda: produce_one(anode, topic) is None, 10, "produce allowed again")
    assert fetch_error(anode, topic) is None
    assert hidden in a.list_topics(timeout=10).topics

    # Flags kafka-acls.sh does not take are named.
    r = kafka_acls(*bs, "--add", "--authorizer-properties", "zookeeper.connect=x", "--topic", topic, ok=False)
    assert "--authorizer-properties is not supported" in r.stderr, r.stderr


def test_acl_apis_without_authorizer(node):
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    a = admin(node)   # kept: a collected client fails its futures with _DESTROY
    b = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:*", "*", AclOperation.READ,
                   AclPermissionType.ALLOW)
    with pytest.raises(Exception) as e:
        a.create_acls([b], request_timeout=10)[b].result(timeout=10)
    assert "SECURITY_DISABLED" in str(e.value) and "No Authorizer is configured." in str(e.value), str(e.value)
    r = kafka_acls("--bootstrap-server", node.bootstrap, "--list", ok=False)
    assert "SECURITY_DISABLED: No Authorizer is configured." in r.stderr, r.stderr
