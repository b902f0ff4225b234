#!/usr/bin/env python3
"""Produce throughput benchmark for a running silt (or any Kafka) broker.

confluent-kafka producer, 1 KiB values, acks=all. Prints messages/s, MB/s and
p50/p99 delivery latency (time from produce() to delivery report).

    .venv/bin/python Benchmarks/produce-throughput.py --bootstrap 127.0.0.1:9092 \
        --count 200000 --partitions 6

With --start, it starts .build/release/silt itself on free loopback ports with a
temporary data dir and stops it afterwards. Only loopback addresses are allowed.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--start", action="store_true", help="start .build/release/silt on free ports for the run")
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--size", type=int, default=1024, help="value size in bytes (default 1 KiB)")
    ap.add_argument("--topic", default=None, help="default: a fresh topic name")
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=1_000_000)
    ap.add_argument("--compression", default="none")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="target messages/s (0 = as fast as possible; latency then includes client queueing)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra silt --override for --start (repeatable)")
    ap.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    args = ap.parse_args()

    node = None
    ok = False
    if args.start:
        sys.path.insert(0, str(ROOT / "Tests" / "integration"))
        from silt_helpers import Node  # noqa: E402

        tmp = tempfile.mkdtemp(prefix="silt-bench-")
        overrides = {"num.partitions": str(args.partitions)}
        overrides.update(kv.split("=", 1) for kv in args.override)
        node = Node(Path(tmp), overrides)
        node.start()
        args.bootstrap = node.bootstrap
        print(f"started silt on {args.bootstrap} (data {tmp}, stderr {node.log_path})")
    host = args.bootstrap.rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]") and not host.startswith("127."):
        print("refusing to benchmark a non-loopback address", file=sys.stderr)
        return 2

    try:
        topic = args.topic or f"bench-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        if topic not in admin.list_topics(timeout=10).topics:
            admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(timeout=30)
            deadline = time.monotonic() + 30
            while len(admin.list_topics(topic=topic, timeout=10).topics[topic].partitions) != args.partitions:
                if time.monotonic() > deadline:
                    raise SystemExit("topic did not appear")
                time.sleep(0.1)

        p = Producer({
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": args.linger_ms,
            "batch.size": args.batch_size,
            "compression.type": args.compression,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        })
        payload = os.urandom(args.size)
        latencies: list[float] = []
        errors = [0]
        mono = time.monotonic

        def cb(err, msg, t0):
            if err is not None:
                errors[0] += 1
            else:
                latencies.append(mono() - t0)

        start = mono()
        for i in range(args.count):
            t0 = mono()
            while True:
                try:
                    p.produce(topic, value=payload, partition=i % args.partitions,
                              on_delivery=lambda err, msg, t0=t0: cb(err, msg, t0))
                    break
                except BufferError:
                    p.poll(0.01)
                    if mono() - start > args.timeout:
                        break
            if i % 1000 == 0:
                p.poll(0)
            if args.rate > 0:
                ahead = (i + 1) / args.rate - (mono() - start)
                if ahead > 0:
                    p.poll(ahead)
            if mono() - start > args.timeout:
                print(f"timeout: gave up producing after {args.timeout}s ({i} queued)", file=sys.stderr)
                break
        left = p.flush(max(5.0, args.timeout - (mono() - start)))
        elapsed = mono() - start

        n = len(latencies)
        lat = sorted(latencies)
        print(f"date            {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        print(f"machine         {platform.node()} {os.cpu_count()} cpus, {platform.platform()}")
        print(f"topic           {topic} ({args.partitions} partitions), value {args.size} B, acks=all, "
              f"linger.ms={args.linger_ms}, compression={args.compression}, "
              f"rate={'max' if args.rate <= 0 else f'{args.rate:.0f}/s'}")
        print(f"delivered       {n} of {args.count} ({errors[0]} errors, {left} undelivered) in {elapsed:.2f}s")
        print(f"throughput      {n / elapsed:,.0f} msg/s  {n * args.size / elapsed / 1e6:,.1f} MB/s")
        print(f"latency         p50 {percentile(lat, 50) * 1000:.2f} ms  p99 {percentile(lat, 99) * 1000:.2f} ms"
              f"  p99.9 {percentile(lat, 99.9) * 1000:.2f} ms  max {percentile(lat, 100) * 1000:.2f} ms"
              f"  mean {statistics.fmean(lat) * 1000 if lat else float('nan'):.2f} ms")
        ok = n == args.count
        return 0 if ok else 1
    finally:
        if node is not None:
            clean = ok
            try:
                rc = node.stop()
                print(f"silt stopped (exit {rc})")
                clean = clean and rc == 0
            except Exception as e:  # noqa: BLE001 - a hung SIGTERM is reported, the node is killed
                print(f"silt did not stop cleanly: {str(e).splitlines()[0]}", file=sys.stderr)
                clean = False
            if clean:
                shutil.rmtree(node.workdir, ignore_errors=True)
            else:
                shutil.rmtree(node.data_dir, ignore_errors=True)
                print(f"kept silt's stderr for inspection: {node.log_path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
