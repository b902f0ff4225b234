"""WAL takeover and zombie fencing on the five-node layout of generate-start-command (on moto,
SigV4 enforced), each printed line plus `--override s3.wal.takeover.paths=...` naming the
other nodes' WAL files (the model of an EBS volume re-attached to a surviving instance), a
64 MiB WAL and a 6 s session timeout with 1 s heartbeats.

- kill -9 of broker-only node 4 under an idempotent acks=all load (its WAL holding acknowledged
  records not yet uploaded: the upload interval is 60 s): within the session timeout plus 2 s
  another node has committed that tail and every partition is led by a live broker; node 4
  restarts and rejoins leading nothing; nothing acknowledged is lost or doubled;
- a zombie: broker-only node 3 SIGSTOPped past its session timeout is taken over the same way;
  when it resumes it acknowledges nothing for the partitions it lost (a produce sent straight
  to it gets NOT_LEADER_OR_FOLLOWER; the producer's requests parked in it are refused, not
  acked), and it rejoins (listed in Metadata again) leading nothing; nothing lost or doubled.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

import test_cluster as tc
from silt_helpers import _descendants, raw_metadata, raw_produce, wait_until

PARTITIONS = 10
SESSION_MS = 6000


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    root = tmp_path_factory.mktemp("takeover")
    wal = {i: root / f"node{i}" / "data" / "wal.silt" for i in range(5)}

    def extra(i, _moto):
        return {"s3.wal.takeover.paths": ",".join(f"{j}@{wal[j]}" for j in range(5) if j != i),
                "s3.wal.capacity": str(64 << 20), "broker.session.timeout.ms": str(SESSION_MS),
                "broker.heartbeat.interval.ms": "1000"}
    with tc.five_nodes(root, extra=extra) as (cluster, _):
        yield cluster.nodes


@pytest.fixture(autouse=True)
def logs_on_failure(request, five):
    yield
    if any(getattr(getattr(request.node, "rep_" + w, None), "failed", False) for w in ("setup", "call")):
        for n in five:
            print(f"\n===== node {n.node_id}\n{n.log_tail(60)}")


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
            t = raw_metadata(n.host, n.port, [topic], timeout=2)["topics"].get(topic)
            if t and t["error"] == 0:
                return {p: v["leader"] for p, v in t["partitions"].items()}
        except (OSError, EOFError):
            continue
    return {}


def brokers(node) -> list[int]:
    return sorted(raw_metadata(node.host, node.port, [], timeout=2)["brokers"])


def create(nodes, topic: str) -> dict[int, int]:
    tc.create_topic(topic, PARTITIONS)
    wait_until(lambda: len(leaders(nodes, topic)) == PARTITIONS and min(leaders(nodes, topic).values()) >= 0, 20,
               lambda: f"{topic} led: {leaders(nodes, topic)}")
    return leaders(nodes, topic)


def taken_over(nodes, victim) -> bool:
    return any("took over a dead broker's WAL" in n.log_text() and f"node={victim.node_id}" in n.log_text()
               for n in nodes if n is not victim)


def wait_led_without(nodes, topic: str, gone, since: float, what: str) -> float:
    """Waits until every partition of `topic` is led by a broker other than `gone`; asserts it
    took at most the session timeout + 2 s from `since`; returns how long it took."""
    live = {n.node_id for n in nodes} - {gone.node_id}
    wait_until(lambda: all(l in live for l in leaders(nodes, topic).values()), SESSION_MS / 1000 + 15,
               lambda: f"{topic}: every partition led by a live broker: {leaders(nodes, topic)}")
    took = time.monotonic() - since
    print(f"node {gone.node_id}'s partitions served elsewhere {took:.1f}s after {what}")
    assert took <= SESSION_MS / 1000 + 2, f"{took:.1f}s: more than broker.session.timeout.ms + 2 s"
    assert taken_over(nodes, gone), "no node logged the takeover"
    return took


def test_killed_broker_is_taken_over_and_nothing_acknowledged_is_lost(five):
    topic = "takeover-kill"
    before = create(five, topic)
    victim = five[4]
    assert victim.roles == {"broker"}
    mine = [p for p, l in before.items() if l == victim.node_id]
    assert mine, f"node 4 leads nothing: {before}"
    load = tc.Load(topic, partitions=PARTITIONS).start()
    try:
        load.wait_acks(300, what="before the kill")
        killed = time.monotonic()
        victim.kill()
        wait_led_without(five, topic, victim, killed, "kill -9")
        load.wait_acks(200, partitions=mine, what="on node 4's old partitions at their new leaders")
        victim.start(90)
        wait_until(lambda: brokers(five[0]) == [0, 1, 2, 3, 4], 30, lambda: f"node 4 back: {brokers(five[0])}")
        assert all(l != victim.node_id for l in leaders(five, topic).values()), "the restarted broker took partitions back"
        load.wait_acks(100, what="after node 4 rejoined")
    finally:
        load.stop()
    load.verify()


def test_paused_broker_is_fenced_and_acknowledges_nothing_when_it_resumes(five):
    topic = "takeover-zombie"
    before = create(five, topic)
    zombie = five[3]
    assert zombie.roles == {"broker"}
    mine = [p for p, l in before.items() if l == zombie.node_id]
    assert mine, f"node 3 leads nothing: {before}"
    load = tc.Load(topic, partitions=PARTITIONS).start()
    try:
        load.wait_acks(300, what="before the pause")
        signal_node(zombie, signal.SIGSTOP)
        paused = time.monotonic()
        wait_led_without(five, topic, zombie, paused, "SIGSTOP")
        # The producer's requests to the paused broker hang until it resumes (as with any
        # broker): on resume it answers them NOT_LEADER_OR_FOLLOWER, lease lapsed or not leader.
        signal_node(zombie, signal.SIGCONT)
        r = raw_produce(zombie.host, zombie.port, topic, mine[0], [b"seq--1"], timeout=10)
        assert r["error"] == 6, f"the resumed broker answered {r} for a partition it lost"
        load.wait_acks(100, partitions=mine, what="at the new leaders after node 3 resumed")
        wait_until(lambda: brokers(five[0]) == [0, 1, 2, 3, 4], 30, lambda: f"node 3 rejoined: {brokers(five[0])}")
        assert all(l != zombie.node_id for l in leaders(five, topic).values()), "the resumed broker took partitions back"
        # Its uploader, fenced by the takeover, restarted with a new session.
        wait_until(lambda: zombie.log_text().count("uploader ready") >= 2, 30,
                   lambda: f"node 3's uploader restarted\n{zombie.log_tail(30)}")
        load.wait_acks(100, what="after node 3 rejoined")
        # It serves again: a new partition placed on it takes a write.
        fresh = create(five, "takeover-after")
        on_it = [p for p, l in fresh.items() if l == zombie.node_id]
        assert on_it, f"no new partition on the rejoined broker: {fresh}"
        r = raw_produce(zombie.host, zombie.port, "takeover-after", on_it[0], [b"after"], timeout=10)
        assert r["error"] == 0, f"the rejoined broker refused a write to its own partition: {r}"
    finally:
        load.stop()
    load.verify()
