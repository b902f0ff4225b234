"""The elastic cluster (issue 14): the auto balancer under an idempotent acks=all load.

Three controller-only nodes and brokers 3, 4, 5 (generate-start-command
--controller-only-mode=true on 127.0.0.31-36, moto with SigV4), every line run as printed plus
the balancer's keys (`--override autobalancer.controller.enable=true`, a 2 s detect interval
and a 10 s load window so the test is short) and a 256 MiB WAL. One cluster, one load, four steps:

1. only broker 3 runs when the 8-partition topic is created, so it leads all 8; broker 4
   starts: the balancer spreads them (4 and 4) for bytes in, and says why;
2. broker 5 starts (the same line form, a new node.id): it leads partitions and takes acks
   within 60 s;
3. broker 4 is drained (SIGTERM: controlled shutdown moves its partitions to 3 and 5) and
   unregistered with Kafka's `bin/kafka-cluster.sh unregister`; Metadata lists 3 and 5;
4. every acknowledged record is read back where it was acknowledged, none twice, and every
   client error on the way was retriable.

`bin/automq-kafka-admin.sh balancer` shows the brokers' load and the decisions. About 60 s.
"""
from __future__ import annotations

import collections
import re
import subprocess
import time

import pytest

from silt_helpers import REPO_ROOT, SILT_BIN, wait_until
from test_cluster import (BROKER_PORT, CONTROLLER_PORT, START_TIMEOUT_S, STOP_TIMEOUT_S, Cluster, Load, admin_tool,
                          seed_nodes)

HOSTS = [f"127.0.0.{i}" for i in range(31, 37)]
TOPIC, PARTITIONS = "elastic", 8
BALANCER = {"autobalancer.controller.enable": "true", "autobalancer.controller.anomaly.detect.interval.ms": "2000",
            "autobalancer.controller.load.window.ms": "10000", "autobalancer.controller.partition.cooldown.ms": "20000",
            "autobalancer.controller.network.in.usage.distribution.detect.threshold": "1024",
            "autobalancer.controller.network.out.usage.distribution.detect.threshold": "1024",
            "s3.wal.capacity": str(256 << 20)}   # three brokers' WAL files: 768 MiB, not 6 GiB


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    with seed_nodes(tmp_path_factory.mktemp("balancer"), HOSTS, 3, "--controller-only-mode=true",
                    extra=lambda node_id, moto: BALANCER) as (made, home, *_):
        assert [n.node_id for n in made] == [0, 1, 2, 3, 4, 5], [n.line for n in made]
        yield {n.node_id: n for n in made}, home


def leaders(cluster: Cluster) -> dict[int, int]:
    return {p: l for p, (l, _) in cluster.leaders(TOPIC).items()}


def balancer_report(home) -> str:
    r = admin_tool(home, "balancer", "--bootstrap-controller=" + ",".join(f"{h}:{CONTROLLER_PORT}" for h in HOSTS[:3]))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def bytes_in(report: str, broker: int) -> float:
    """Broker `broker`'s bytes in (KiB/s) in a `silt admin balancer` report."""
    m = re.search(rf"^{broker}\s+\w+\s+\d+\s+([\d.]+) KiB/s", report, re.M)
    return float(m.group(1)) if m else 0.0


def test_balancer_spreads_scales_out_and_drains_under_idempotent_load(nodes):
    from confluent_kafka.admin import AdminClient, NewTopic

    by_id, home = nodes
    for i in (0, 1, 2, 3):
        by_id[i].spawn()
    for i in (0, 1, 2, 3):
        by_id[i].wait_ready(START_TIMEOUT_S)
    bootstrap = ",".join(f"{h}:{BROKER_PORT}" for h in HOSTS[3:])
    cluster = Cluster([by_id[i] for i in range(6)], "cluster-id=unused")   # Metadata views only
    a = AdminClient({"bootstrap.servers": by_id[3].bootstrap, "broker.address.family": "v4"})
    a.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])[TOPIC].result(timeout=30)
    wait_until(lambda: len(leaders(cluster)) == PARTITIONS and set(leaders(cluster).values()) == {3}, 20,
               lambda: f"all of {TOPIC} led by broker 3: {leaders(cluster)}")
    load = Load(TOPIC, rate=1000, bootstrap=bootstrap, partitions=PARTITIONS).start()
    try:
        load.wait_acks(300, what="on broker 3 alone")
        # Broker 3's heartbeats carry the load to the active controller.
        wait_until(lambda: bytes_in(balancer_report(home), 3) >= 2.0, 20,
                   lambda: f"the balancer sees broker 3's load:\n{balancer_report(home)}")

        # 1. Broker 4 joins: the balancer spreads the partitions for bytes in.
        t0 = time.monotonic()
        by_id[4].start(START_TIMEOUT_S)
        wait_until(lambda: sorted(leaders(cluster).values()).count(4) == PARTITIONS // 2, 60,
                   lambda: f"half of {TOPIC} on broker 4: {leaders(cluster)}")
        spread_s = time.monotonic() - t0
        report = balancer_report(home)
        assert re.search(r"\[network-in\] broker 3 is outside ±15%", report), report
        load.wait_acks(200, partitions=[p for p, l in leaders(cluster).items() if l == 4], what="on broker 4")

        # 2. Scale out: broker 5 gets load within 60 s.
        t1 = time.monotonic()
        by_id[5].start(START_TIMEOUT_S)
        wait_until(lambda: 5 in leaders(cluster).values(), 60, lambda: f"broker 5 leads a partition: {leaders(cluster)}")
        mine = [p for p, l in leaders(cluster).items() if l == 5]
        load.wait_acks(50, partitions=mine, timeout=60 - (time.monotonic() - t1), what="on broker 5")
        scale_out_s = time.monotonic() - t1
        wait_until(lambda: sorted(collections.Counter(leaders(cluster).values()).values()) == [2, 3, 3], 40,
                   lambda: f"{TOPIC} spread 3/3/2: {leaders(cluster)}")

        # 3. Scale in: drain broker 4 (controlled shutdown), then unregister it.
        t2 = time.monotonic()
        rc = by_id[4].stop(STOP_TIMEOUT_S)
        assert rc == 0, by_id[4].log_tail(40)
        assert set(leaders(cluster).values()) == {3, 5}, leaders(cluster)
        drain_s = time.monotonic() - t2
        r = subprocess.run([str(REPO_ROOT / "bin" / "kafka-cluster.sh"), "unregister", "--bootstrap-server", bootstrap,
                            "--id", "4"], capture_output=True, text=True, timeout=60,
                           env={"SILT_BIN": str(SILT_BIN), "PATH": "/usr/bin:/bin"})
        assert r.returncode == 0 and "Broker 4 is no longer registered" in r.stdout, r.stdout + r.stderr
        wait_until(lambda: sorted(by_id[3].metadata([])["brokers"]) == [3, 5], 20,
                   lambda: f"brokers 3 and 5 only: {sorted(by_id[3].metadata([])['brokers'])}")
        load.wait_acks(200, what="after the drain")
    finally:
        load.stop()
    print(balancer_report(home))
    print(f"spread over 2 brokers in {spread_s:.1f}s, broker 5 took acks {scale_out_s:.1f}s after its start, "
          f"broker 4 drained and stopped in {drain_s:.1f}s")
    load.verify()

