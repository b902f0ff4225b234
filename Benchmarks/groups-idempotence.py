#!/usr/bin/env python3
"""Consumer groups and the idempotent producer (issue 6): what they cost.

Starts .build/release/silt (or $SILT_BIN) on free loopback ports with a temporary data dir
(file:// object store, file WAL) and measures, with confluent-kafka:

1. produce   throughput of --messages messages of --value-size bytes over 6 partitions,
             acks=all, with enable.idempotence off and then on (same topic layout, fresh
             topics), in messages/s and MB/s.
2. commit    OffsetCommit latency: one group member commits explicit offsets synchronously
             --commits times; p50/p99/p99.9 in ms. A commit is answered once its record in
             __consumer_offsets is durable in the WAL, so this is the WAL's write latency
             plus a round trip.
3. rebalance time from subscribe until 3 members (cooperative-sticky) each hold part of
             an assignment covering the 6 partitions, then from a 4th member's subscribe until
             the 4 hold all 6 again, and from one member's close until the other 3 do.
             group.initial.rebalance.delay.ms is the node's (--initial-delay-ms).

    .venv/bin/python Benchmarks/groups-idempotence.py
    .venv/bin/python Benchmarks/groups-idempotence.py --messages 500000 --commits 5000

Prints a table and one JSON document. Binds and connects to 127.0.0.1 only. Not run in CI.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))

from silt_helpers import EnvNode, client_conf, create_topic  # noqa: E402


def percentile(sorted_vals, q):
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def produce_phase(node, args, idempotent: bool) -> dict:
    from confluent_kafka import Producer

    topic = f"bench-produce-{'idem' if idempotent else 'plain'}"
    create_topic(node, topic, partitions=6)
    p = Producer(client_conf(node, **{"acks": "all", "enable.idempotence": idempotent, "linger.ms": 5,
                                      "batch.size": 262144, "queue.buffering.max.messages": 1_000_000}))
    value = os.urandom(args.value_size)
    failed = []
    start = time.monotonic()
    for i in range(args.messages):
        while True:
            try:
                p.produce(topic, value=value, key=str(i).encode(),
                          on_delivery=lambda err, _m: failed.append(err) if err else None)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(120)
    elapsed = time.monotonic() - start
    assert left == 0 and not failed, f"{left} undelivered, {len(failed)} failed: {failed[:3]}"
    return {"idempotence": idempotent, "messages": args.messages, "seconds": round(elapsed, 2),
            "msgs_per_s": round(args.messages / elapsed), "mb_per_s": round(args.messages * args.value_size / elapsed / 1e6, 1)}


def commit_phase(node, args) -> dict:
    from confluent_kafka import Consumer, TopicPartition

    topic = "bench-commit"
    create_topic(node, topic, partitions=1)
    c = Consumer(client_conf(node, **{"group.id": "bench-commit", "enable.auto.commit": False,
                                      "auto.offset.reset": "earliest"}))
    c.assign([TopicPartition(topic, 0, 0)])
    c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)   # warm up: coordinator lookup
    lat = []
    for i in range(1, args.commits + 1):
        t = time.perf_counter()
        c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
        lat.append((time.perf_counter() - t) * 1000)
    committed = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    c.close()
    assert committed == args.commits, f"committed {committed}, expected {args.commits}"
    lat.sort()
    return {"commits": args.commits, "p50_ms": round(percentile(lat, 50), 3), "p99_ms": round(percentile(lat, 99), 3),
            "p99_9_ms": round(percentile(lat, 99.9), 3), "max_ms": round(lat[-1], 3)}


def rebalance_phase(node, args) -> dict:
    from confluent_kafka import Consumer

    topic = "bench-rebalance"
    create_topic(node, topic, partitions=6)
    conf = client_conf(node, **{"group.id": "bench-rebalance", "partition.assignment.strategy": "cooperative-sticky",
                                "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})

    def settle(members, timeout=60.0):
        """Polls every member until each holds at least one partition and together they hold
        all 6, each exactly once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in members:
                m.poll(0.05)
            held = [tp.partition for m in members for tp in m.assignment()]
            if sorted(held) == list(range(6)) and all(m.assignment() for m in members):
                return
        raise AssertionError(f"group did not settle: {[len(m.assignment()) for m in members]}")

    t = time.monotonic()
    members = [Consumer(conf) for _ in range(3)]
    for m in members:
        m.subscribe([topic])
    settle(members)
    first = time.monotonic() - t

    t = time.monotonic()
    joiner = Consumer(conf)
    joiner.subscribe([topic])
    members.append(joiner)
    settle(members)
    join = time.monotonic() - t

    t = time.monotonic()
    members.pop(0).close()
    settle(members)
    leave = time.monotonic() - t
    for m in members:
        m.close()
    return {"initial_delay_ms": args.initial_delay_ms, "three_members_s": round(first, 2),
            "fourth_joins_s": round(join, 2), "one_leaves_s": round(leave, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--value-size", type=int, default=1024)
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--initial-delay-ms", type=int, default=3000)
    ap.add_argument("--json-out", default="")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="silt-bench-groups-") as tmp:
        node = EnvNode(Path(tmp), overrides={"group.initial.rebalance.delay.ms": str(args.initial_delay_ms)})
        node.start()
        try:
            log("produce: idempotence off")
            plain = produce_phase(node, args, idempotent=False)
            log("produce: idempotence on")
            idem = produce_phase(node, args, idempotent=True)
            log("offset commits")
            commit = commit_phase(node, args)
            log("rebalances")
            rebalance = rebalance_phase(node, args)
        finally:
            node.stop()

    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.node(),
              "cpus": os.cpu_count(), "produce": [plain, idem], "commit": commit, "rebalance": rebalance}
    print(f"{'produce':<28}{'msgs/s':>10}{'MB/s':>8}")
    for r in (plain, idem):
        print(f"  idempotence={str(r['idempotence']).lower():<16}{r['msgs_per_s']:>10}{r['mb_per_s']:>8}")
    print(f"OffsetCommit (sync, {commit['commits']}): p50 {commit['p50_ms']} ms, p99 {commit['p99_ms']} ms, "
          f"p99.9 {commit['p99_9_ms']} ms")
    print(f"rebalance (cooperative-sticky, initial delay {args.initial_delay_ms} ms): 3 members "
          f"{rebalance['three_members_s']} s, 4th joins {rebalance['fourth_joins_s']} s, "
          f"one leaves {rebalance['one_leaves_s']} s")
    print(json.dumps(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
