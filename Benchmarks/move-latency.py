#!/usr/bin/env python3
"""Partition move figures (run on demand, not in CI): the five-node layout of
generate-start-command on loopback (127.0.0.41-45, a shared file:// bucket), under an acks=all
produce load on a 10-partition topic.

- reassignment: --moves moves, one at a time, each of one partition to another broker
  (AlterPartitionReassignments through bin/kafka-reassign-partitions.sh's protocol, sent
  here with the raw client so that no process start is counted): from the request to the
  new leader in the Metadata of the target broker, and the old leader's release time
  (silt_partition_release_seconds: stop of appends to the new leader recorded);
- the produce latency of the partitions that do not move, with and without moves running;
- controlled shutdown: SIGTERM of a broker-only node leading partitions: until the process
  exits, with every partition led by another broker;
- fio: 16 KiB writes with fdatasync after each, QD1, in the directory the WALs are in.

Usage: python3 Benchmarks/move-latency.py [--moves 40] [--rate 1000] [--dir /var/tmp/silt-mbench]
Needs the release binary (swift build -c release --product silt) and the test venv (tools/setup).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "integration"))
from silt_helpers import raw_metadata  # noqa: E402

spec = importlib.util.spec_from_file_location("cluster_latency", REPO / "Benchmarks" / "cluster-latency.py")
cl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cl)
HOSTS, BROKER_PORT = cl.HOSTS, cl.BROKER_PORT
PARTITIONS = 10


class Load:
    """acks=all, linger.ms=0 records at `rate`/s round robin over `partitions`; latency per
    record tagged with whether a move was running when it was sent."""

    def __init__(self, bootstrap: str, topic: str, partitions: list[int], rate: int):
        from confluent_kafka import Producer
        self.p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "acks": "all", "linger.ms": 0,
                           "enable.idempotence": True, "message.timeout.ms": 60_000})
        self.topic, self.partitions, self.rate = topic, partitions, rate
        self.moving = threading.Event()
        self.lat = {True: [], False: []}
        self.errors = []
        self.stop_flag = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        start, n = time.perf_counter(), 0
        while not self.stop_flag.is_set():
            due = start + n / self.rate
            now = time.perf_counter()
            if now < due:
                self.p.poll(min(due - now, 0.001))
                continue
            sent, during = time.perf_counter(), self.moving.is_set()

            def done(err, _msg, sent=sent, during=during):
                if err is None:
                    self.lat[during].append((time.perf_counter() - sent) * 1000)
                else:
                    self.errors.append(err)
            self.p.produce(self.topic, b"x" * 1024, partition=self.partitions[n % len(self.partitions)], on_delivery=done)
            self.p.poll(0)
            n += 1
        self.p.flush(30)


def reassign(host: str, topic: str, partition: int, to: int) -> None:
    """AlterPartitionReassignments v0 (flexible: request header v2), raw, so that no tool's
    process start is counted; raises on an error answer."""
    import socket
    import struct

    def compact_str(s: str) -> bytes:
        b = s.encode()
        return bytes([len(b) + 1]) + b
    body = struct.pack(">i", 30_000)                      # TimeoutMs
    body += bytes([2]) + compact_str(topic)               # Topics: 1 entry; Name
    body += bytes([2]) + struct.pack(">i", partition)     # Partitions: 1 entry; PartitionIndex
    body += bytes([2]) + struct.pack(">i", to)            # Replicas: [to]
    body += b"\0\0\0"                                     # tagged fields: partition, topic, request
    client = b"move-bench"
    frame = struct.pack(">hhih", 45, 0, 7, len(client)) + client + b"\0" + body
    with socket.create_connection((host, BROKER_PORT), timeout=30) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = s.recv(size, socket.MSG_WAITALL)
    # correlation id, header tags, throttle, then the top-level error code
    code = struct.unpack(">h", resp[4 + 1 + 4:4 + 1 + 4 + 2])[0]
    if code != 0:
        raise RuntimeError(f"AlterPartitionReassignments error {code}")


def metric(host: str, port: int, name: str) -> float:
    import urllib.request
    text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moves", type=int, default=40)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--dir", default="/var/tmp/silt-mbench")
    args = ap.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    nodes = cl.cluster_nodes(root / "cluster")
    procs = []
    for n in nodes:
        log = open(n.log_path, "ab")
        procs.append(subprocess.Popen(n.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=n.workdir,
                                      start_new_session=True))
    results = {}
    try:
        cl.wait(cl.all_serving, 120, "five brokers serving")
        bootstrap = ",".join(f"{h}:{BROKER_PORT}" for h in HOSTS)
        cl.create_topic(bootstrap, "mv", PARTITIONS)
        cl.wait(lambda: cl.led_everywhere("mv", PARTITIONS), 30, "mv everywhere")
        moving = [0, 1]       # moved back and forth; the others carry the steady load
        steady = [p for p in range(PARTITIONS) if p not in moving]
        load = Load(bootstrap, "mv", list(range(PARTITIONS)), args.rate)
        load.t.start()
        time.sleep(5)
        moves = []
        for i in range(args.moves):
            p = moving[i % 2]
            src = cl.leaders("mv")[p]
            dst = (src + 1 + i % 4) % 5
            load.moving.set()
            t0 = time.perf_counter()
            reassign(HOSTS[0], "mv", p, dst)
            cl.wait(lambda: raw_metadata(HOSTS[dst], BROKER_PORT, ["mv"])["topics"]["mv"]["partitions"][p]["leader"] == dst,
                    20, f"mv-{p} on {dst}")
            moves.append((time.perf_counter() - t0) * 1000)
            load.moving.clear()
            time.sleep(0.5)
        load.stop_flag.set()
        load.t.join(60)
        results["moves_ms"] = cl.percentiles(moves)
        results["produce_all_partitions_during_moves_ms"] = cl.percentiles(load.lat[True]) if load.lat[True] else None
        results["produce_all_partitions_between_moves_ms"] = cl.percentiles(load.lat[False][len(load.lat[False]) // 10:])
        results["produce_errors"] = len(load.errors)
        # Controlled shutdown of broker-only node 4.
        mine = [p for p, leader in cl.leaders("mv").items() if leader == 4]
        t0 = time.perf_counter()
        procs[4].terminate()
        procs[4].wait(60)
        results["controlled_shutdown"] = {"partitions": len(mine), "exit_ms": (time.perf_counter() - t0) * 1000,
                                          "exit_code": procs[4].returncode,
                                          "all_led_after": all(leader not in (-1, 4) for leader in cl.leaders("mv").values())}
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(root / "cluster", ignore_errors=True)
    results["fio_16k_write_fdatasync_ms"] = cl.fio(root)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
