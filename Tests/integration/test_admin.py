"""Admin APIs through confluent-kafka: CreateTopics, CreatePartitions, DeleteTopics, DescribeConfigs,
DescribeCluster, and ListOffsets (watermarks and offsets_for_times)."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic, OffsetSpec, ResourceType

from silt_helpers import HOST, admin, consumer, create_topic, produce_all, producer, wait_for_topic

T = 30  # seconds, every admin call


def topic_names(a) -> set[str]:
    return set(a.list_topics(timeout=10).topics)


def error_code(exc_info) -> int:
    err = exc_info.value.args[0]
    return err.code()


def test_create_topics_and_validate_only(node):
    a = admin(node)
    fs = a.create_topics([NewTopic("adm-a", num_partitions=3, replication_factor=1),
                          NewTopic("adm-b", num_partitions=1, replication_factor=1)],
                         operation_timeout=T, request_timeout=T)
    for f in fs.values():
        assert f.result(timeout=T) is None
    assert len(wait_for_topic(node, "adm-a", 3, a=a).partitions) == 3
    wait_for_topic(node, "adm-b", 1, a=a)

    # validate_only: succeeds but creates nothing
    fs = a.create_topics([NewTopic("adm-dry", num_partitions=2, replication_factor=1)],
                         validate_only=True, operation_timeout=T, request_timeout=T)
    assert fs["adm-dry"].result(timeout=T) is None
    time.sleep(0.5)
    assert "adm-dry" not in topic_names(a)

    # an existing topic
    fs = a.create_topics([NewTopic("adm-a", num_partitions=3, replication_factor=1)], request_timeout=T)
    with pytest.raises(KafkaException) as ei:
        fs["adm-a"].result(timeout=T)
    assert error_code(ei) == KafkaError.TOPIC_ALREADY_EXISTS

    # invalid partition count
    fs = a.create_topics([NewTopic("adm-zero", num_partitions=0, replication_factor=1)], request_timeout=T)
    with pytest.raises((KafkaException, ValueError)):
        fs["adm-zero"].result(timeout=T)
    assert "adm-zero" not in topic_names(a)


def test_create_partitions(node):
    a = admin(node)
    create_topic(node, "adm-grow", partitions=2)
    fs = a.create_partitions([NewPartitions("adm-grow", 5)], operation_timeout=T, request_timeout=T)
    assert fs["adm-grow"].result(timeout=T) is None
    wait_for_topic(node, "adm-grow", 5, a=a)
    # the new partitions accept writes
    acked = produce_all(node, "adm-grow", [(p, None, f"p{p}".encode(), None) for p in range(5)], timeout=30)
    assert acked == [(p, 0) for p in range(5)]
    # shrinking is refused
    fs = a.create_partitions([NewPartitions("adm-grow", 3)], request_timeout=T)
    with pytest.raises(KafkaException) as ei:
        fs["adm-grow"].result(timeout=T)
    assert error_code(ei) == KafkaError.INVALID_PARTITIONS
    wait_for_topic(node, "adm-grow", 5, a=a)


def test_delete_topics(node):
    a = admin(node)
    create_topic(node, "adm-del", partitions=2)
    produce_all(node, "adm-del", [(0, None, b"x", None)], timeout=30)
    fs = a.delete_topics(["adm-del"], operation_timeout=T, request_timeout=T)
    assert fs["adm-del"].result(timeout=T) is None
    deadline = time.monotonic() + 15
    while "adm-del" in topic_names(a):
        assert time.monotonic() < deadline, "deleted topic still listed after 15s"
        time.sleep(0.2)
    # deleting again: unknown topic
    fs = a.delete_topics(["adm-del"], request_timeout=T)
    with pytest.raises(KafkaException) as ei:
        fs["adm-del"].result(timeout=T)
    assert error_code(ei) == KafkaError.UNKNOWN_TOPIC_OR_PART
    # re-creating the name gives a fresh, empty topic
    create_topic(node, "adm-del", partitions=1)
    c = consumer(node)
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition("adm-del", 0), timeout=10, cached=False)
    finally:
        c.close()
    assert (lo, hi) == (0, 0)


def test_describe_configs_topic(node):
    a = admin(node)
    create_topic(node, "adm-cfg", partitions=1, config={"retention.ms": "3600000", "cleanup.policy": "delete"})
    res = ConfigResource(ResourceType.TOPIC, "adm-cfg")
    entries = a.describe_configs([res], request_timeout=T)[res].result(timeout=T)
    assert isinstance(entries, dict) and entries, "no config entries returned"
    assert "retention.ms" in entries, sorted(entries)
    assert entries["retention.ms"].value == "3600000"
    assert entries["cleanup.policy"].value == "delete"
    # a topic that does not exist
    res2 = ConfigResource(ResourceType.TOPIC, "adm-no-such-topic")
    with pytest.raises(KafkaException):
        a.describe_configs([res2], request_timeout=T)[res2].result(timeout=T)


def test_describe_cluster(node):
    a = admin(node)
    desc = a.describe_cluster(request_timeout=T).result(timeout=T)
    assert len(desc.nodes) == 1
    n = desc.nodes[0]
    assert (n.id, n.host, n.port) == (0, HOST, node.port)
    assert desc.controller is not None
    assert desc.cluster_id, "empty cluster id"
    md = a.list_topics(timeout=10)
    assert md.cluster_id == desc.cluster_id
    assert list(md.brokers) == [0]


def test_list_offsets(node):
    topic = "adm-offsets"
    create_topic(node, topic, partitions=1)
    base = int(time.time() * 1000) - 60_000
    p = producer(node)
    reports = []
    for i in range(10):
        p.produce(topic, value=f"m{i}".encode(), partition=0, timestamp=base + i * 1000,
                  on_delivery=lambda err, msg: reports.append((err, msg.offset())))
    assert p.flush(30) == 0
    assert [r for r in reports if r[0] is not None] == []
    assert sorted(o for _, o in reports) == list(range(10))

    c = consumer(node)
    try:
        tp = TopicPartition(topic, 0)
        assert c.get_watermark_offsets(tp, timeout=10, cached=False) == (0, 10)
        q = [TopicPartition(topic, 0, base - 10_000), TopicPartition(topic, 0, base + 5000),
             TopicPartition(topic, 0, base + 5500), TopicPartition(topic, 0, base + 60_000)]
        got = [c.offsets_for_times([t], timeout=10)[0] for t in q]
        for g in got:
            assert g.error is None, g.error
        assert [g.offset for g in got] == [0, 5, 6, -1]
    finally:
        c.close()

    a = admin(node)
    fs = a.list_offsets({tp: OffsetSpec.earliest()}, request_timeout=T)
    assert fs[tp].result(timeout=T).offset == 0
    fs = a.list_offsets({tp: OffsetSpec.latest()}, request_timeout=T)
    assert fs[tp].result(timeout=T).offset == 10
    # KIP-734 (ListOffsets v7): the record with the largest timestamp.
    fs = a.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=T)
    got = fs[tp].result(timeout=T)
    assert (got.offset, got.timestamp) == (9, base + 9000)


def test_elect_leaders_single_replica(node):
    """ElectLeaders (confluent-kafka's elect_leaders): a partition that has its leader needs no
    election; an unknown partition is UNKNOWN_TOPIC_OR_PARTITION. (confluent-kafka 2.16's
    elect_leaders fails on keyword options, so none are given.)"""
    from confluent_kafka import ElectionType
    create_topic(node, "adm-elect", partitions=2)
    a = admin(node)
    for election in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        result = a.elect_leaders(election, [TopicPartition("adm-elect", 0), TopicPartition("adm-elect", 1),
                                            TopicPartition("adm-elect", 9)]).result(timeout=T)
        codes = {tp.partition: (err.code() if err else 0) for tp, err in result.items()}
        assert codes == {0: KafkaError.ELECTION_NOT_NEEDED, 1: KafkaError.ELECTION_NOT_NEEDED,
                         9: KafkaError.UNKNOWN_TOPIC_OR_PART}, (election, codes)
    # Every partition (None): nothing needs an election, so nothing is listed.
    assert a.elect_leaders(ElectionType.PREFERRED, None).result(timeout=T) == {}


def test_authorized_operations(node):
    """describe_topics and describe_cluster with include_authorized_operations: without an
    authorizer every operation Kafka defines for the resource is allowed (test_acls.py has one)."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AclOperation
    create_topic(node, "adm-ops")
    a = admin(node)
    topic = a.describe_topics(TopicCollection(["adm-ops"]), include_authorized_operations=True,
                              request_timeout=T)["adm-ops"].result(timeout=T)
    assert set(topic.authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER,
        AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}
    cluster = a.describe_cluster(include_authorized_operations=True, request_timeout=T).result(timeout=T)
    assert set(cluster.authorized_operations) == {
        AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE}
