#!/usr/bin/env python3
"""Stream storage benchmark (issue 5): object storage cost, catch-up reads, produce latency.

Starts .build/release/silt (or $SILT_BIN) on free loopback ports with a temporary data dir,
against the chosen data store(s): `file` (the default file://<log.dirs>/objects) and/or
`moto` (tools/moto-server, SigV4 enforced, a fresh bucket). For each store it measures:

1. puts   PUT-class requests per GiB ingested in steady state, compaction included: produce
          --gib GiB (4 KiB incompressible values, acks=all) at --rate-mbps over --partitions
          partitions, wait until the WAL has nothing pending, then until compaction settles
          (silt_s3_put_requests_total and the object count unchanged for --settle-quiet-s,
          at most --settle-timeout-s), and divide silt_s3_put_requests_total by the GiB
          ingested. Target: <= 130 requests/GiB. Compaction runs at the node's default
          intervals unless --compaction-interval-ms is given (with the defaults, 5 min / 30 min,
          give --settle-timeout-s long enough to see them).
2. catchup  catch-up read throughput (MB/s) from offset 0 of every partition with a cold block
          cache: the node is restarted (graceful stop, start) first; one consumer, all
          partitions assigned, values only counted.
3. latency  produce latency (confluent-kafka, acks=all, --latency-rate messages/s paced, value
          --latency-value-size): delivery-callback time minus send time, p50/p99/p99.9, for
          --latency-seconds alone, then again while a catch-up reader (a separate process, so
          it does not share this interpreter) reads the phase-1 topic from offset 0 in a loop.
          Target: p99 with the reader at most 1 ms worse than without.

Prints a table per store and one JSON document (also written to --json-out).

    .venv/bin/python Benchmarks/stream-storage.py                       # file and moto, 1 GiB
    .venv/bin/python Benchmarks/stream-storage.py --store moto --gib 4 --compaction-interval-ms 60000
    .venv/bin/python Benchmarks/stream-storage.py --store file --phases catchup,latency --gib 0.25
    .venv/bin/python Benchmarks/stream-storage.py --override s3.block.cache.size=268435456

Needs the repo's .venv (confluent-kafka, boto3, moto). Binds and connects to 127.0.0.1 only.
Not run in CI.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))

from silt_helpers import (EnvNode, Metrics, PayloadSource, client_conf, create_topic, debug_objects,  # noqa: E402
                          free_port, node_role_pids, producer, prometheus_override, s3_bucket_override, s3_client, s3_node_env,
                          start_moto, stop_moto)

MiB, GiB = 1 << 20, 1 << 30
PUT_TARGET_PER_GIB = 130
P99_TARGET_DELTA_MS = 1.0


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- node and store

class Bench:
    def __init__(self, args, store: str, workdir: Path, moto_env: dict | None):
        self.args, self.store, self.workdir, self.moto_env = args, store, workdir, moto_env
        self.metrics_port = free_port()
        overrides = {
            "s3.wal.capacity": str(args.wal_capacity),
        }
        overrides.update(prometheus_override(self.metrics_port))
        if args.compaction_interval_ms:
            overrides["s3.stream.set.object.compaction.interval.ms"] = str(args.compaction_interval_ms)
            overrides["s3.stream.object.compaction.interval.ms"] = str(args.compaction_interval_ms)
        env = {}
        if store == "moto":
            self.bucket = f"silt-bench-{uuid.uuid4().hex[:10]}"
            s3_client(moto_env).create_bucket(Bucket=self.bucket)
            overrides.update(s3_bucket_override(self.bucket, moto_env["S3_ENDPOINT"]))
            env = s3_node_env(moto_env)
        for kv in args.override:
            k, _, v = kv.partition("=")
            overrides[k] = v
        self.node = EnvNode(workdir / store, overrides, env=env)
        self.topic = "bench-streams"

    def metrics(self) -> Metrics:
        return Metrics.scrape(self.metrics_port)

    def start(self) -> None:
        self.node.start(120)

    def restart(self) -> None:
        self.node.stop(300)
        self.node.start(120)

    def object_count(self) -> int:
        try:
            return len(debug_objects(self.node)["objects"])
        except Exception:  # noqa: BLE001 - a count is a settle signal only
            return -1


# ----------------------------------------------------------------- phase 1: PUTs per GiB

def produce_paced(bench: Bench, total_bytes: int, rate_bps: float, value_size: int) -> dict:
    p = producer(bench.node, **{"linger.ms": 10, "compression.type": "none", "batch.size": 1_000_000,
                                "queue.buffering.max.kbytes": 262144, "message.timeout.ms": 600_000})
    src = PayloadSource(value_size)
    errors = []
    acked = [0]

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[0] += len(msg.value())

    n = total_bytes // value_size
    parts = bench.args.partitions
    t0 = time.monotonic()
    last_log = t0
    for i in range(n):
        while True:
            try:
                p.produce(bench.topic, value=src.value(i % parts, i), partition=i % parts, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        if i % 256 == 0:
            p.poll(0)
            ahead = (i * value_size) / rate_bps - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
            if time.monotonic() - last_log > 10:
                last_log = time.monotonic()
                log(f"  produced {i * value_size / GiB:.2f} GiB")
    left = p.flush(600)
    secs = time.monotonic() - t0
    if left or errors:
        raise SystemExit(f"produce failed: {left} undelivered, {len(errors)} errors, first: {errors[:3]}")
    return {"bytes": acked[0], "seconds": secs, "mb_per_s": acked[0] / secs / 1e6}


def wait_settled(bench: Bench) -> dict:
    """WAL drained, then PUT counter and object count unchanged for settle_quiet_s."""
    a = bench.args
    deadline = time.monotonic() + a.settle_timeout_s
    while True:
        m = bench.metrics()
        if m.need("silt_wal_pending_bytes") == 0:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"WAL still has {m.get('silt_wal_pending_bytes')} bytes pending")
        time.sleep(0.5)
    last = None
    quiet_since = time.monotonic()
    settled = False
    while time.monotonic() < deadline:
        m = bench.metrics()
        now = (m.get("silt_s3_put_requests_total"), bench.object_count())
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= a.settle_quiet_s:
            settled = True
            break
        time.sleep(1.0)
    if not settled:
        log(f"  compaction did not settle within {a.settle_timeout_s}s; reporting the counters as they are")
    return {"settled": settled, "objects": last[1] if last else -1}


def phase_puts(bench: Bench) -> dict:
    a = bench.args
    total = int(a.gib * GiB)
    log(f"[{bench.store}] puts: producing {a.gib} GiB at {a.rate_mbps} MB/s over {a.partitions} partitions")
    prod = produce_paced(bench, total, a.rate_mbps * 1e6, a.value_size)
    settle = wait_settled(bench)
    m = bench.metrics()
    gib = prod["bytes"] / GiB
    puts = m.need("silt_s3_put_requests_total")
    return {
        "ingested_gib": gib,
        "produce_mb_per_s": prod["mb_per_s"],
        "put_requests": puts,
        "put_requests_per_gib": puts / gib if gib else float("nan"),
        "put_bytes_per_ingested_byte": m.get("silt_s3_put_bytes_total") / prod["bytes"],
        "objects_uploaded_stream_set": m.get("silt_objects_uploaded_total", kind="stream_set"),
        "objects_uploaded_stream": m.get("silt_objects_uploaded_total", kind="stream"),
        "compactions": m.get("silt_compactions_total"),
        "objects_at_end": settle["objects"],
        "compaction_settled": settle["settled"],
        "target_put_requests_per_gib": PUT_TARGET_PER_GIB,
        "pass": puts / gib <= PUT_TARGET_PER_GIB if gib else False,
    }


# ----------------------------------------------------------------- phase 2: catch-up reads

def catch_up_read(bootstrap: str, topic: str, partitions: int, ends: dict[int, int] | None,
                  timeout: float, loop_until: float | None = None) -> dict:
    """Read all partitions from 0 (to `ends`, or to the high watermarks). With loop_until
    (a time.time()), start over from 0 each time it catches up, until then."""
    from confluent_kafka import Consumer, TopicPartition

    conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v4", "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.max.bytes": 52428800,
            "max.partition.fetch.bytes": 8388608, "enable.partition.eof": False}
    c = Consumer(conf)
    total_bytes, total_msgs, rounds = 0, 0, 0
    t0 = time.monotonic()
    try:
        if ends is None:
            ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        while True:
            todo = {p for p, e in ends.items() if e > 0}
            c.assign([TopicPartition(topic, p, 0) for p in todo])
            deadline = time.monotonic() + timeout
            while todo:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"catch-up read did not finish within {timeout}s")
                for m in c.consume(num_messages=10000, timeout=0.5):
                    if m.error():
                        raise RuntimeError(f"consumer error: {m.error()}")
                    total_bytes += len(m.value() or b"")
                    total_msgs += 1
                    if m.offset() >= ends[m.partition()] - 1:
                        todo.discard(m.partition())
            rounds += 1
            c.unassign()
            if loop_until is None or time.time() >= loop_until:
                break
    finally:
        c.close()
    secs = time.monotonic() - t0
    return {"bytes": total_bytes, "messages": total_msgs, "seconds": secs, "rounds": rounds,
            "mb_per_s": total_bytes / secs / 1e6 if secs else float("nan")}


def phase_catchup(bench: Bench) -> dict:
    log(f"[{bench.store}] catchup: restarting the node (cold block cache), then reading from offset 0")
    bench.restart()
    before = bench.metrics()
    r = catch_up_read(bench.node.bootstrap, bench.topic, bench.args.partitions, None, timeout=3600)
    after = bench.metrics()
    r["s3_get_requests"] = after.get("silt_s3_get_requests_total") - before.get("silt_s3_get_requests_total")
    r["s3_get_bytes"] = after.get("silt_s3_get_bytes_total") - before.get("silt_s3_get_bytes_total")
    r["fetch_object_reads"] = after.get("silt_fetch_object_reads_total") - before.get("silt_fetch_object_reads_total")
    r["fetch_tail_reads"] = after.get("silt_fetch_tail_reads_total") - before.get("silt_fetch_tail_reads_total")
    r["block_cache_hits"] = after.get("silt_block_cache_hits_total") - before.get("silt_block_cache_hits_total")
    r["rss_mib_after"] = role_rss_mib(bench.node)
    return r


def role_rss_mib(node) -> dict[str, float]:
    """Resident memory of each role process (VmRSS, MiB; shared log-buffer pages count in
    every process that touched them)."""
    out = {}
    for role, pid in node_role_pids(node).items():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[role] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
    return out


# ----------------------------------------------------------------- phase 3: produce latency

def _reader_process(bootstrap: str, topic: str, partitions: int, until: float, out) -> None:
    try:
        out.put(catch_up_read(bootstrap, topic, partitions, None, timeout=3600, loop_until=until))
    except Exception as e:  # noqa: BLE001 - reported by the parent
        out.put({"error": repr(e)})


def measure_latency(bench: Bench, seconds: float, rate: float, value_size: int, topic: str) -> dict:
    from confluent_kafka import Producer

    conf = client_conf(bench.node, **{"acks": "all", "enable.idempotence": False, "linger.ms": bench.args.linger_ms,
                                      "compression.type": "none", "message.timeout.ms": 60_000})
    p = Producer(conf)
    lat: list[float] = []
    errors: list[str] = []
    value = os.urandom(value_size)

    def make_cb(t_send):
        def cb(err, _msg):
            if err is not None:
                errors.append(str(err))
            else:
                lat.append(time.perf_counter() - t_send)
        return cb

    n = int(seconds * rate)
    t0 = time.perf_counter()
    for i in range(n):
        due = t0 + i / rate
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            # librdkafka's poll timeout is whole milliseconds: a shorter one spins a core.
            p.poll(max(0.001, due - now))
        p.produce(topic, value=value, partition=i % bench.args.partitions, on_delivery=make_cb(time.perf_counter()))
        p.poll(0)
    p.flush(60)
    lat.sort()
    ms = [x * 1000 for x in lat]
    return {"messages": len(lat), "errors": len(errors), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "p999_ms": percentile(ms, 99.9), "max_ms": ms[-1] if ms else float("nan")}


def phase_latency(bench: Bench) -> dict:
    a = bench.args
    topic = "bench-latency"
    create_topic(bench.node, topic, a.partitions)
    log(f"[{bench.store}] latency: warm-up {a.latency_warmup_s}s, then {a.latency_seconds}s at {a.latency_rate}/s alone")
    bench.restart()   # both measurements start from the same state: a node just restarted
    measure_latency(bench, a.latency_warmup_s, a.latency_rate, a.latency_value_size, topic)
    alone = measure_latency(bench, a.latency_seconds, a.latency_rate, a.latency_value_size, topic)
    log(f"[{bench.store}] latency: {a.latency_seconds}s with a concurrent catch-up reader")
    bench.restart()   # cold block cache, so the reader really goes to object storage
    measure_latency(bench, a.latency_warmup_s, a.latency_rate, a.latency_value_size, topic)
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    until = time.time() + a.latency_seconds + 2
    reader = ctx.Process(target=_reader_process, args=(bench.node.bootstrap, bench.topic, a.partitions, until, q))
    reader.start()
    time.sleep(2)   # let the reader get going
    with_reader = measure_latency(bench, a.latency_seconds, a.latency_rate, a.latency_value_size, topic)
    reader.join(3600)
    with_reader["reader"] = q.get(timeout=10) if not q.empty() else {"error": "no result from the reader"}
    delta = with_reader["p99_ms"] - alone["p99_ms"]
    return {"alone": alone, "with_catch_up_reader": with_reader, "p99_delta_ms": delta,
            "target_p99_delta_ms": P99_TARGET_DELTA_MS, "pass": delta <= P99_TARGET_DELTA_MS}


# ----------------------------------------------------------------- driver

def run_store(args, store: str, workdir: Path, moto_env: dict | None) -> dict:
    bench = Bench(args, store, workdir, moto_env)
    result: dict = {"store": store}
    try:
        bench.start()
        create_topic(bench.node, bench.topic, args.partitions)
        phases = args.phases.split(",")
        if "puts" in phases or "catchup" in phases or "latency" in phases:
            if "puts" in phases:
                result["puts"] = phase_puts(bench)
            else:   # the other phases need data to read
                log(f"[{store}] producing {args.gib} GiB for the read phases")
                produce_paced(bench, int(args.gib * GiB), args.rate_mbps * 1e6, args.value_size)
                wait_settled(bench)
        if "catchup" in phases:
            result["catchup"] = phase_catchup(bench)
        if "latency" in phases:
            result["latency"] = phase_latency(bench)
        bench.node.stop(300)
    except BaseException:
        sys.stderr.write(bench.node.log_tail(80) + "\n")
        raise
    finally:
        bench.node.kill()
    return result


def print_table(results: list[dict]) -> None:
    rows = []
    for r in results:
        s = r["store"]
        if "puts" in r:
            p = r["puts"]
            rows.append((s, "PUT requests / GiB (compaction incl.)", f"{p['put_requests_per_gib']:.1f}",
                         f"<= {PUT_TARGET_PER_GIB}", "PASS" if p["pass"] else "MISS"))
            rows.append((s, "PUT bytes / ingested byte", f"{p['put_bytes_per_ingested_byte']:.2f}", "", ""))
            rows.append((s, "produce rate during ingest (MB/s)", f"{p['produce_mb_per_s']:.1f}", "", ""))
            rows.append((s, "compaction settled", str(p["compaction_settled"]), "", ""))
        if "catchup" in r:
            c = r["catchup"]
            rows.append((s, "catch-up read, cold cache (MB/s)", f"{c['mb_per_s']:.1f}", "", ""))
        if "latency" in r:
            lt = r["latency"]
            for label, k in (("alone", "alone"), ("with reader", "with_catch_up_reader")):
                x = lt[k]
                rows.append((s, f"produce latency {label} p50/p99/p99.9 (ms)",
                             f"{x['p50_ms']:.2f}/{x['p99_ms']:.2f}/{x['p999_ms']:.2f}", "", ""))
            rows.append((s, "p99 delta with catch-up reader (ms)", f"{lt['p99_delta_ms']:+.2f}",
                         f"<= {P99_TARGET_DELTA_MS}", "PASS" if lt["pass"] else "MISS"))
    widths = [max(len(str(row[i])) for row in rows + [("store", "metric", "value", "target", "")]) for i in range(5)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format("store", "metric", "value", "target", ""))
    print(fmt.format(*("-" * w for w in widths)))
    for row in rows:
        print(fmt.format(*row))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="file,moto", help="comma-separated: file, moto (default both)")
    ap.add_argument("--phases", default="puts,catchup,latency", help="comma-separated: puts, catchup, latency")
    ap.add_argument("--gib", type=float, default=1.0, help="GiB to ingest (default 1)")
    ap.add_argument("--rate-mbps", type=float, default=50.0, help="steady ingest rate, MB/s (default 50)")
    ap.add_argument("--partitions", type=int, default=20)
    ap.add_argument("--value-size", type=int, default=4096)
    ap.add_argument("--compaction-interval-ms", type=int, default=None,
                    help="both compaction intervals (default: the node's defaults, 5 min and 30 min)")
    ap.add_argument("--settle-quiet-s", type=float, default=30.0,
                    help="compaction has settled when PUTs and the object count did not move for this long")
    ap.add_argument("--settle-timeout-s", type=float, default=900.0)
    ap.add_argument("--latency-rate", type=float, default=2000.0, help="messages/s for the latency phase")
    ap.add_argument("--latency-value-size", type=int, default=1024)
    ap.add_argument("--latency-seconds", type=float, default=30.0)
    ap.add_argument("--latency-warmup-s", type=float, default=5.0)
    ap.add_argument("--linger-ms", type=int, default=0, help="producer linger.ms in the latency phase")
    ap.add_argument("--wal-capacity", type=int, default=2 * GiB, help="s3.wal.capacity (default 2 GiB)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra silt --override (repeatable)")
    ap.add_argument("--workdir", default=None, help="parent of the data dirs (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    stores = [s for s in args.store.split(",") if s]
    for s in stores:
        if s not in ("file", "moto"):
            ap.error(f"unknown store {s}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="silt-stream-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    moto_env, moto_pid = None, None
    results = []
    try:
        if "moto" in stores:
            log("starting moto (SigV4 enforced)")
            moto_env, moto_pid = start_moto(workdir / "moto", ["silt-bench-probe"])
        for s in stores:
            results.append(run_store(args, s, workdir, moto_env))
    finally:
        if moto_pid:
            stop_moto(moto_pid)
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    doc = {"host": platform.node(), "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "args": vars(args), "results": results}
    print_table(results)
    print(json.dumps(doc, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
