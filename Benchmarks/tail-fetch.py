#!/usr/bin/env python3
"""Tail fetch: a consumer reading at the end of a topic while something else produces to it.

confluent-kafka consumer, no group (partitions assigned at their end offset), for
--warmup-s + --duration-s seconds. Counts only what arrives after the warmup and prints one
JSON line: messages and value bytes fetched, MB/s (10^6 bytes of values per second), and the
end-to-end age of each record when the consumer has it (now - the record's CreateTime
timestamp, millisecond resolution: p50/p99/p99.9/max), and the consumer's own CPU seconds
(on a small machine it competes with the node and the producer for the same cores).

    .venv/bin/python Benchmarks/tail-fetch.py --bootstrap 127.0.0.1:9092 --topic T \
        --warmup-s 5 --duration-s 20

Bounded: --duration-s, at most --max-batch messages per poll and --batch-wait-ms (5) to fill
it (that wait adds to the age), a 30 s metadata wait. Only
loopback addresses are accepted. Exit status 0 when anything was fetched, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition, OFFSET_END, TIMESTAMP_CREATE_TIME


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--warmup-s", type=float, default=5.0)
    ap.add_argument("--duration-s", type=float, default=20.0)
    ap.add_argument("--max-batch", type=int, default=1000, help="messages per consume() call")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0,
                    help="longest a consume() call waits to fill its batch (it adds to the records' age)")
    args = ap.parse_args()
    host = args.bootstrap.rsplit(":", 1)[0]
    if not host.startswith("127.") and host not in ("localhost", "[::1]"):
        print("refusing to benchmark a non-loopback address", file=sys.stderr)
        return 2

    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "silt-tail-fetch",      # required by the client; no subscribe, no commits
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
        "fetch.max.bytes": 64 << 20,
        "max.partition.fetch.bytes": 8 << 20,
        "queued.max.messages.kbytes": 256 << 10,
    })
    try:
        deadline = time.monotonic() + 30
        while True:
            md = c.list_topics(args.topic, timeout=10).topics.get(args.topic)
            if md is not None and md.error is None and md.partitions:
                break
            if time.monotonic() > deadline:
                print(f"topic {args.topic} has no partitions after 30 s", file=sys.stderr)
                return 1
            time.sleep(0.2)
        c.assign([TopicPartition(args.topic, p, OFFSET_END) for p in sorted(md.partitions)])

        start = time.monotonic()
        measure_from = start + args.warmup_s
        end = measure_from + args.duration_s
        msgs = 0
        value_bytes = 0
        ages_ms: list[int] = []
        errors = 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            # consume() returns when the batch is full or the wait is over: a short wait keeps
            # the age figure the broker's, not the batching's.
            batch = c.consume(num_messages=args.max_batch, timeout=min(args.batch_wait_ms / 1000, end - now))
            if not batch:
                continue
            now = time.monotonic()
            wall_ms = int(time.time() * 1000)
            if now < measure_from:
                continue
            for m in batch:
                if m.error() is not None:
                    errors += 1
                    continue
                msgs += 1
                v = m.value()
                value_bytes += len(v) if v is not None else 0
                kind, ts = m.timestamp()
                if kind == TIMESTAMP_CREATE_TIME:
                    ages_ms.append(wall_ms - ts)
        ages_ms.sort()
        out = {
            "msgs": msgs, "valueBytes": value_bytes, "measuredS": args.duration_s,
            "msgsPerS": msgs / args.duration_s, "mbPerS": value_bytes / args.duration_s / 1e6,
            "ageP50Ms": percentile(ages_ms, 50), "ageP99Ms": percentile(ages_ms, 99),
            "ageP999Ms": percentile(ages_ms, 99.9), "ageMaxMs": percentile(ages_ms, 100), "errors": errors,
            # this consumer's own CPU (user + system, librdkafka's threads included), whole run
            "clientCpuS": round(sum(getattr(resource.getrusage(resource.RUSAGE_SELF), f)
                                    for f in ("ru_utime", "ru_stime")), 2),
        }
        print(json.dumps(out))
        return 0 if msgs > 0 else 1
    except KafkaException as e:
        print(f"tail fetch failed: {e}", file=sys.stderr)
        return 1
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
