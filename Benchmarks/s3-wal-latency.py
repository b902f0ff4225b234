#!/usr/bin/env python3
"""S3 WAL mode produce latency (run on demand, not in CI): one node whose WAL is a bucket of a
moto server on loopback (SigV4 enforced), for each batch window given.

- produce: confluent-kafka, acks=all, linger.ms=0, idempotent, `--rate` records/s of 1 KiB
  round robin over 6 partitions for `--seconds`; latency from produce() to the delivery
  report, p50/p99/p99.9/max;
- the floor beside it: the same moto server's PUT of a 4 KiB object (boto3, sequential), p50/p99.

Usage: python3 Benchmarks/s3-wal-latency.py [--windows 0,20,250] [--rate 500] [--seconds 10]
Needs the release binary (swift build -c release --product silt) and the test venv (tools/setup).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "integration"))
from silt_helpers import EnvNode, create_topic, s3_client, s3_node_env, start_moto, stop_moto  # noqa: E402

PARTITIONS = 6


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def summary(xs: list[float]) -> str:
    return (f"n={len(xs)} p50={pct(xs, 50):.2f} p99={pct(xs, 99):.2f} p99.9={pct(xs, 99.9):.2f} "
            f"max={max(xs) if xs else float('nan'):.2f} ms")


def produce(bootstrap: str, topic: str, rate: int, seconds: float) -> tuple[list[float], list]:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "acks": "all", "linger.ms": 0,
                  "enable.idempotence": True, "message.timeout.ms": 60_000})
    lat, errors = [], []
    value = b"x" * 1024
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        due = start + n / rate
        now = time.perf_counter()
        if now < due:
            p.poll(min(due - now, 0.01))
            continue
        sent = time.perf_counter()

        def done(err, _msg, sent=sent):
            if err is not None:
                errors.append(err)
            else:
                lat.append((time.perf_counter() - sent) * 1000)
        p.produce(topic, value, partition=n % PARTITIONS, on_delivery=done)
        n += 1
        p.poll(0)
    p.flush(60)
    return lat, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", default="0,20,250")
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="silt-s3wal-bench-"))
    moto, moto_pid = start_moto(root / "moto", ["wal-bench"])
    try:
        s3 = s3_client(moto)
        puts = []
        for i in range(300):
            t0 = time.perf_counter()
            s3.put_object(Bucket="wal-bench", Key=f"floor/{i}", Body=b"y" * 4096)
            puts.append((time.perf_counter() - t0) * 1000)
        print(f"moto PUT 4 KiB (boto3, sequential): {summary(puts)}")
        for window in [int(w) for w in args.windows.split(",")]:
            wal = (f"0@s3://wal-bench?region=us-east-1&endpoint={moto['S3_ENDPOINT']}&pathStyle=true"
                   f"&batchInterval={window}")
            node = EnvNode(root / f"node-{window}", {"s3.wal.path": wal}, env=s3_node_env(moto))
            node.start(60)
            try:
                topic = f"bench-{window}"
                create_topic(node, topic, PARTITIONS)
                produce(node.bootstrap, topic, args.rate, 2)   # warm-up
                lat, errors = produce(node.bootstrap, topic, args.rate, args.seconds)
                print(f"S3 WAL, batchInterval={window} ms, {args.rate} rec/s acks=all: {summary(lat)}, errors={len(errors)}")
            finally:
                node.kill()
    finally:
        stop_moto(moto_pid)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
