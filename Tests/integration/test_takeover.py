"""WAL takeover and zombie fencing: three nodes (node 0 controller+broker, nodes 1-2 brokers)
sharing a file:// bucket, each able to open the others' WAL files (`s3.wal.takeover.paths`),
the model of an EBS volume re-attached to a surviving instance.

- kill -9 of broker 2 under an idempotent acks=all load (its WAL holding acknowledged records
  not yet uploaded: the upload interval is 60 s): within the session timeout plus 2 s another
  node has committed that tail and every partition is led by a live broker;
  broker 2 restarts and rejoins leading nothing; nothing acknowledged is lost or doubled;
- a zombie: broker 1 SIGSTOPped past its session timeout is taken over the same way; when it
  resumes it acknowledges nothing for the partitions it lost (a produce sent straight to it
  gets NOT_LEADER_OR_FOLLOWER; the producer's requests parked in it are refused, not acked),
  and it rejoins (listed in Metadata again) leading nothing; nothing lost or doubled.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from pathlib import Path

import pytest

from silt_helpers import HOST, Node, _descendants, raw_metadata, raw_produce, wait_until
from test_cluster import Load

PARTITIONS = 6
SESSION_MS = 6000


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    root = tmp_path_factory.mktemp("takeover")
    bucket = root / "bucket"
    bucket.mkdir()
    wal = {i: root / f"node{i}" / "data" / "wal.silt" for i in range(3)}
    nodes = [Node(root / f"node{i}") for i in range(3)]
    voter_port = nodes[0].controller_port
    common = {"cluster.id": "takeover-" + uuid.uuid4().hex[:8], "controller.quorum.voters": f"0@{HOST}:{voter_port}",
              "s3.data.buckets": f"0@file://{bucket}", "num.partitions": str(PARTITIONS),
              "broker.session.timeout.ms": str(SESSION_MS), "broker.heartbeat.interval.ms": "1000",
              "s3.wal.capacity": str(64 << 20)}
    for i, n in enumerate(nodes):
        listeners = f"PLAINTEXT://{HOST}:{n.port}" + (f",CONTROLLER://{HOST}:{voter_port}" if i == 0 else "")
        others = ",".join(f"{j}@{wal[j]}" for j in range(3) if j != i)
        n.overrides.update({**common, "node.id": str(i), "process.roles": "broker,controller" if i == 0 else "broker",
                            "listeners": listeners, "s3.wal.path": str(wal[i]), "s3.wal.takeover.paths": others})
    nodes[0].start(90)
    for n in nodes[1:]:
        n.start(90)
    yield nodes
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            signal_node(n, signal.SIGCONT)
            n.kill()
    shutil.rmtree(root, ignore_errors=True)


def signal_node(node, sig) -> None:
    """`sig` to the node's supervisor and every role process (each role has its own group)."""
    for pid in [node.proc.pid] + _descendants(node.proc.pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def leaders(nodes, topic: str) -> dict[int, int]:
    for n in nodes:
        if n.proc is None or n.proc.poll() is not None:
            continue
        try:
            t = raw_metadata(HOST, n.port, [topic], timeout=2)["topics"].get(topic)
            if t and t["error"] == 0:
                return {p: v["leader"] for p, v in t["partitions"].items()}
        except (OSError, EOFError):
            continue
    return {}


def brokers(node) -> list[int]:
    return sorted(raw_metadata(HOST, node.port, [], timeout=2)["brokers"])


def bootstrap(nodes) -> str:
    return ",".join(n.bootstrap for n in nodes)


def create(nodes, topic: str) -> dict[int, int]:
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": bootstrap(nodes), "broker.address.family": "v4"})
    a.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    wait_until(lambda: len(leaders(nodes, topic)) == PARTITIONS and min(leaders(nodes, topic).values()) >= 0, 20,
               lambda: f"{topic} led: {leaders(nodes, topic)}")
    return leaders(nodes, topic)


def taken_over(nodes, victim) -> bool:
    return any("took over a dead broker's WAL" in n.log_text() and f"node={victim.overrides['node.id']}" in n.log_text()
               for n in nodes if n is not victim)


def test_killed_broker_is_taken_over_and_nothing_acknowledged_is_lost(trio):
    topic = "takeover-kill"
    before = create(trio, topic)
    victim = trio[2]
    mine = [p for p, l in before.items() if l == 2]
    assert mine, f"broker 2 leads nothing: {before}"
    load = Load(topic, bootstrap=bootstrap(trio), partitions=PARTITIONS).start()
    try:
        load.wait_acks(300, what="before the kill")
        killed = time.monotonic()
        victim.kill()
        wait_until(lambda: all(l in (0, 1) for l in leaders(trio, topic).values()), SESSION_MS / 1000 + 15,
                   lambda: f"{topic}: every partition led by a live broker after the takeover: {leaders(trio, topic)}")
        took = time.monotonic() - killed
        print(f"broker 2's partitions {mine} served elsewhere {took:.1f}s after kill -9")
        assert took <= SESSION_MS / 1000 + 2, f"{took:.1f}s: more than broker.session.timeout.ms + 2 s"
        assert taken_over(trio, victim), "no node logged the takeover"
        load.wait_acks(200, partitions=mine, what="on broker 2's old partitions at their new leaders")
        victim.start(90)
        wait_until(lambda: brokers(trio[0]) == [0, 1, 2], 30, lambda: f"broker 2 back: {brokers(trio[0])}")
        assert all(l in (0, 1) for l in leaders(trio, topic).values()), "the restarted broker took partitions back"
        load.wait_acks(100, what="after broker 2 rejoined")
    finally:
        load.stop()
    load.verify()


def test_paused_broker_is_fenced_and_acknowledges_nothing_when_it_resumes(trio):
    topic = "takeover-zombie"
    before = create(trio, topic)
    zombie = trio[1]
    mine = [p for p, l in before.items() if l == 1]
    assert mine, f"broker 1 leads nothing: {before}"
    load = Load(topic, bootstrap=bootstrap(trio), partitions=PARTITIONS).start()
    try:
        load.wait_acks(300, what="before the pause")
        signal_node(zombie, signal.SIGSTOP)
        paused = time.monotonic()
        wait_until(lambda: all(l in (0, 2) for l in leaders(trio, topic).values()), SESSION_MS / 1000 + 15,
                   lambda: f"{topic}: every partition led by a live broker: {leaders(trio, topic)}")
        took = time.monotonic() - paused
        print(f"broker 1's partitions {mine} served elsewhere {took:.1f}s after SIGSTOP")
        assert took <= SESSION_MS / 1000 + 2, f"{took:.1f}s: more than broker.session.timeout.ms + 2 s"
        # The producer's requests to the paused broker hang until it resumes (as with any
        # broker): on resume it answers them NOT_LEADER_OR_FOLLOWER, lease lapsed or not leader.
        signal_node(zombie, signal.SIGCONT)
        r = raw_produce(HOST, zombie.port, topic, mine[0], [b"zombie-write"], timeout=10)
        assert r["error"] == 6, f"the resumed broker answered {r} for a partition it lost"
        load.wait_acks(100, partitions=mine, what="at the new leaders after broker 1 resumed")
        wait_until(lambda: brokers(trio[0]) == [0, 1, 2], 30, lambda: f"broker 1 rejoined: {brokers(trio[0])}")
        assert all(l in (0, 2) for l in leaders(trio, topic).values()), "the resumed broker took partitions back"
        # Its uploader, fenced by the takeover, restarted with a new session.
        wait_until(lambda: zombie.log_text().count("uploader ready") >= 2, 30,
                   lambda: f"broker 1's uploader restarted\n{zombie.log_tail(30)}")
        load.wait_acks(100, what="after broker 1 rejoined")
        # It serves again: a new partition placed on it takes a write.
        fresh = create(trio, "takeover-after")
        on_it = [p for p, l in fresh.items() if l == 1]
        assert on_it, f"no new partition on the rejoined broker: {fresh}"
        r = raw_produce(HOST, zombie.port, "takeover-after", on_it[0], [b"after"], timeout=10)
        assert r["error"] == 0, f"the rejoined broker refused a write to its own partition: {r}"
    finally:
        load.stop()
    load.verify()
