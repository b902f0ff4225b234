"""generate-start-command --controller-only-mode=true: nodes 0-2 run the controller role
only, nodes 3-4 are the brokers. The five printed lines (on 127.0.0.21-25, moto with SigV4
enforced) form one cluster: Metadata lists brokers 3 and 4 only, partitions and group
coordinators are on them, a client produces and reads back, and the quorum tool sees the
three voters through a broker. Lean: one start, a few checks, about 15 s.
"""
from __future__ import annotations

import subprocess

import pytest

from silt_helpers import REPO_ROOT, raw_find_coordinator, wait_until
from test_cluster import BROKER_PORT, START_TIMEOUT_S, read_confluent, seed_nodes

HOSTS = [f"127.0.0.{i}" for i in range(21, 26)]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    with seed_nodes(tmp_path_factory.mktemp("controller-only"), HOSTS, 3, "--controller-only-mode=true") as (started, *_):
        assert {n.node_id: n.roles for n in started} == {0: {"controller"}, 1: {"controller"}, 2: {"controller"},
                                                          3: {"broker"}, 4: {"broker"}}, [n.line for n in started]
        for n in started:
            n.spawn()
        for n in started:
            n.wait_ready(START_TIMEOUT_S)
        yield started


def test_controller_only_layout_is_one_cluster_of_two_brokers(nodes):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    brokers = [n for n in nodes if "broker" in n.roles]
    bootstrap = ",".join(n.bootstrap for n in brokers)
    for n in brokers:
        assert sorted(n.metadata([])["brokers"]) == [3, 4], "only the broker nodes are brokers"
    a = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    a.create_topics([NewTopic("co", num_partitions=4, replication_factor=1)])["co"].result(timeout=30)
    leaders = {}

    def led():
        t = brokers[0].metadata(["co"])["topics"].get("co")
        leaders.update({p: v["leader"] for p, v in (t or {"partitions": {}})["partitions"].items()})
        return len(leaders) == 4 and all(l >= 0 for l in leaders.values())
    wait_until(led, 20, lambda: f"co led: {leaders}")
    assert set(leaders.values()) == {3, 4}, leaders

    acked, errors = {}, []
    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "acks": "all"})
    for i in range(200):
        p.produce("co", value=b"v-%d" % i, partition=i % 4,
                  on_delivery=lambda err, m: errors.append(err) if err else acked.__setitem__((m.partition(), m.offset()), m.value()))
    assert p.flush(30) == 0 and not errors, errors[:3]
    ends = {q: 1 + max(o for (pp, o) in acked if pp == q) for q in range(4)}
    assert read_confluent("co", ends, bootstrap=bootstrap) == acked

    def coordinator():
        c = raw_find_coordinator(brokers[0].host, BROKER_PORT, "co-group")
        return c if c["error"] == 0 else None
    wait_until(coordinator, 20, "a group coordinator")
    assert coordinator()["node_id"] in (3, 4)

    out = subprocess.run([str(REPO_ROOT / "bin" / "kafka-metadata-quorum.sh"), "--bootstrap-server", brokers[0].bootstrap,
                          "describe", "--status"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert '"id": 0' in out.stdout and '"id": 1' in out.stdout and '"id": 2' in out.stdout, out.stdout
