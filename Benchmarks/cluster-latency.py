#!/usr/bin/env python3
"""Cluster figures (run on demand, not in CI): the five-node layout of generate-start-command
(3 combined controller+broker nodes, 2 broker-only nodes) on loopback, against one node,
with fio on the same disk.

- time from starting the five nodes to every broker serving a Metadata answer that lists all
  five brokers;
- metadata propagation: from a CreateTopics answer (through node 0) to the topic, with a
  leader for every partition, in the Metadata of every broker (--topics creations);
- produce latency, acks=all, one message per request (linger.ms=0) at --rate msgs/s of
  --size bytes for --seconds: through the two broker-only nodes (only partitions they lead),
  and through one single node with the same settings;
- fio: 16 KiB writes with fdatasync after each, QD1, in the directory the WALs are in.

Usage: python3 Benchmarks/cluster-latency.py [--seconds 15] [--rate 1000] [--topics 20] [--dir /var/tmp/silt-cbench]
Needs the release binary (swift build -c release --product silt), fio and the test venv
(tools/setup). Nodes share a file:// bucket; all addresses are 127.0.0.41-45.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "integration"))
import silt_helpers  # noqa: E402
from silt_helpers import Node, raw_metadata  # noqa: E402

HOSTS = [f"127.0.0.{41 + i}" for i in range(5)]
BROKER_PORT, CONTROLLER_PORT = 19092, 19093


def percentiles(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {"n": len(s), "p50": pick(0.50), "p99": pick(0.99), "p99.9": pick(0.999), "max": s[-1]}


def cluster_nodes(root: Path) -> list[Node]:
    bucket = root / "bucket"
    bucket.mkdir(parents=True)
    voters = ",".join(f"{i}@{HOSTS[i]}:{CONTROLLER_PORT}" for i in range(3))
    common = {"cluster.id": "cluster-bench-" + uuid.uuid4().hex[:8], "controller.quorum.voters": voters,
              "s3.data.buckets": f"0@file://{bucket}", "num.partitions": "1"}
    nodes = []
    for i, host in enumerate(HOSTS):
        roles = "broker,controller" if i < 3 else "broker"
        listeners = f"PLAINTEXT://{host}:{BROKER_PORT}" + (f",CONTROLLER://{host}:{CONTROLLER_PORT}" if i < 3 else "")
        nodes.append(Node(root / f"node{i}", {**common, "node.id": str(i), "process.roles": roles, "listeners": listeners,
                                              "advertised.listeners": f"PLAINTEXT://{host}:{BROKER_PORT}"}))
    return nodes


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise TimeoutError(what)


def all_serving() -> bool:
    for h in HOSTS:
        md = raw_metadata(h, BROKER_PORT, [], timeout=1.0)
        if sorted(md["brokers"]) != [0, 1, 2, 3, 4]:
            return False
    return True


def create_topic(bootstrap: str, name: str, partitions: int):
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)


def led_everywhere(name: str, partitions: int) -> bool:
    for h in HOSTS:
        md = raw_metadata(h, BROKER_PORT, [name], timeout=1.0)
        t = md["topics"].get(name)
        if t is None or t["error"] != 0 or len(t["partitions"]) != partitions \
                or any(p["leader"] < 0 for p in t["partitions"].values()):
            return False
    return True


def leaders(name: str) -> dict[int, int]:
    md = raw_metadata(HOSTS[0], BROKER_PORT, [name])
    return {index: p["leader"] for index, p in md["topics"][name]["partitions"].items()}


def produce_latency(bootstrap: str, topic: str, partitions: list[int], seconds: float, rate: int, size: int) -> list[float]:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "acks": "all", "linger.ms": 0,
                  "max.in.flight.requests.per.connection": 5, "enable.idempotence": False})
    latencies: list[float] = []
    errors = []
    lock = threading.Lock()
    value = b"x" * size

    def cb(sent: float):
        def done(err, _msg):
            with lock:
                if err is None:
                    latencies.append((time.perf_counter() - sent) * 1000)
                else:
                    errors.append(err)
        return done

    start = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - start < seconds:
        due = start + n / rate
        if now < due:
            p.poll(min(due - now, 0.001))
            continue
        p.produce(topic, value, partition=partitions[n % len(partitions)], on_delivery=cb(time.perf_counter()))
        p.poll(0)
        n += 1
    p.flush(30)
    if errors:
        raise RuntimeError(f"{len(errors)} delivery errors, first {errors[0]}")
    return latencies[len(latencies) // 10:]   # the first 10 %: connection set-up and metadata


def fio(directory: Path) -> dict:
    out = subprocess.run(["fio", "--name=wal", f"--directory={directory}", "--rw=write", "--bs=16k", "--size=256m",
                          "--ioengine=sync", "--fdatasync=1", "--runtime=10", "--time_based", "--output-format=json"],
                         capture_output=True, text=True, check=True).stdout
    job = json.loads(out)["jobs"][0]
    pct = job["sync"]["lat_ns"]["percentile"] if "sync" in job else job["write"]["clat_ns"]["percentile"]
    return {k: pct[v] / 1e6 for k, v in (("p50", "50.000000"), ("p99", "99.000000"), ("p99.9", "99.900000"))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--topics", type=int, default=20)
    ap.add_argument("--dir", default="/var/tmp/silt-cbench")
    args = ap.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    print(f"silt: {silt_helpers.SILT_BIN}")
    results = {}

    nodes = cluster_nodes(root / "cluster")
    started = time.perf_counter()
    procs = []
    for n in nodes:
        log = open(n.log_path, "ab")
        procs.append(subprocess.Popen(n.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=n.workdir,
                                      start_new_session=True))
    try:
        wait(all_serving, 120, "five brokers serving")
        results["start_to_all_serving_ms"] = (time.perf_counter() - started) * 1000
        bootstrap = ",".join(f"{h}:{BROKER_PORT}" for h in HOSTS)
        propagation = []
        for i in range(args.topics):
            name = f"prop-{i}"
            t0 = time.perf_counter()
            create_topic(f"{HOSTS[0]}:{BROKER_PORT}", name, 10)
            answered = time.perf_counter()
            wait(lambda: led_everywhere(name, 10), 30, f"{name} on every broker")
            propagation.append((time.perf_counter() - answered) * 1000)
        results["metadata_propagation_ms"] = percentiles(propagation)
        create_topic(bootstrap, "lat", 10)
        wait(lambda: led_everywhere("lat", 10), 30, "lat everywhere")
        mine = [p for p, leader in leaders("lat").items() if leader in (3, 4)]
        results["cluster_partitions_on_brokers_3_4"] = len(mine)
        results["produce_two_brokers_ms"] = percentiles(
            produce_latency(bootstrap, "lat", mine, args.seconds, args.rate, args.size))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()

    single = Node(root / "single", {"num.partitions": "1"})
    single.start()
    try:
        create_topic(single.bootstrap, "lat", len(mine) or 4)
        results["produce_one_node_ms"] = percentiles(
            produce_latency(single.bootstrap, "lat", list(range(len(mine) or 4)), args.seconds, args.rate, args.size))
    finally:
        single.stop()
    results["fio_16k_write_fdatasync_ms"] = fio(root)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
