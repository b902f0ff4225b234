"""Consumer lag in a two-broker cluster: the group's coordinator publishes
kafka_consumergroup_lag for every partition the group committed, those led by the other
broker too (their log end comes from that leader's ListOffsets). Nodes on 127.0.0.80-81
(node 0 controller and broker, node 1 broker only), moto with SigV4 as in test_cluster."""
from __future__ import annotations

import pytest

from silt_helpers import free_port, prometheus_override, raw_find_coordinator, scrape_metrics, wait_until
from test_cluster import START_TIMEOUT_S, seed_nodes

HOSTS = ["127.0.0.80", "127.0.0.81"]
PARTITIONS = 6


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    ports = {0: free_port(), 1: free_port()}

    def extra(node_id, moto):
        # A small WAL (the default is 2 GiB a node) and each node's own /metrics port.
        return {"s3.wal.capacity": str(64 << 20), "group.initial.rebalance.delay.ms": "0", **prometheus_override(ports[node_id])}

    with seed_nodes(tmp_path_factory.mktemp("lag-cluster"), HOSTS, 1, extra=extra) as (nodes, *_):
        assert {n.node_id: n.roles for n in nodes} == {0: {"broker", "controller"}, 1: {"broker"}}, [n.line for n in nodes]
        for n in nodes:
            n.spawn()
        for n in nodes:
            n.wait_ready(START_TIMEOUT_S)
            n.metrics_port = ports[n.node_id]
        yield nodes


def test_lag_covers_partitions_led_by_the_other_broker(pair):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = ",".join(n.bootstrap for n in pair)
    conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v4"}
    a = AdminClient(conf)
    a.create_topics([NewTopic("lagged", num_partitions=PARTITIONS, replication_factor=1)])["lagged"].result(timeout=30)

    def leaders():
        md = a.list_topics("lagged", timeout=10).topics["lagged"].partitions
        return {p: md[p].leader for p in md} if len(md) == PARTITIONS else {}

    wait_until(lambda: len(set(leaders().values()) - {-1}) == 2, 30, "partitions led by both brokers")
    p = Producer(conf)
    for part in range(PARTITIONS):
        for i in range(10):
            p.produce("lagged", value=b"v%d" % i, partition=part)
    assert p.flush(30) == 0

    group = "lag-cluster-g"
    c = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition("lagged", part, 4 + part % 2) for part in range(PARTITIONS)], asynchronous=False)
    finally:
        c.close()

    coordinator_id = raw_find_coordinator(pair[0].host, pair[0].port, group)["node_id"]
    coordinator = next(n for n in pair if n.node_id == coordinator_id)
    led = leaders()
    remote = [part for part, leader in led.items() if leader != coordinator_id]
    assert remote, f"every partition is led by the coordinator {coordinator_id}: {led}"

    def lags():
        m = scrape_metrics(coordinator.metrics_port)
        return {int(dict(labels)["partition"]): v for (name, labels), v in m.samples.items()
                if name == "kafka_consumergroup_lag" and dict(labels).get("consumergroup") == group}

    expected = {part: 10 - (4 + part % 2) for part in range(PARTITIONS)}
    wait_until(lambda: lags() == expected, 30, f"lag for every partition on the coordinator (remote: {remote})")
    # Only the coordinator knows the group's offsets: the other broker publishes no series for it.
    other = next(n for n in pair if n.node_id != coordinator_id)
    m = scrape_metrics(other.metrics_port)
    assert not [k for k in m.samples if k[0] == "kafka_consumergroup_lag" and dict(k[1]).get("consumergroup") == group]
