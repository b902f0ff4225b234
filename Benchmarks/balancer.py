#!/usr/bin/env python3
"""Auto balancer figures (run on demand, not in CI): the five-node layout of
cluster-latency.py on loopback (127.0.0.41-45, a shared file:// bucket) with
`autobalancer.controller.enable=true`, under an idempotent acks=all load of 1 KiB records on a
12-partition topic, skewed and stable (partition i gets a share proportional to 1/(i+1)^0.8).

- time to balance: from the load's start (4 brokers; the topic placed by count, the load
  skewed), from the start of a fifth broker (scale out), and from the SIGTERM of a broker
  (scale in, a controlled shutdown), to the balancer's last move of that burst (no move for
  --quiet s after it);
- moves per hour in steady state: the balancer's moves over --steady minutes after the
  balance, scaled to an hour;
- produce latency of the partitions that are not moving, while a balancer move is in flight
  (from its decision to 2 s after, from the controller's log, 1 s resolution) against the
  rest of the run.

Thresholds are lowered to fit a loopback load (`network.*.usage.distribution.detect.threshold`
= 16 KiB/s); the other balancer keys keep their defaults unless given with --override.

Usage: python3 Benchmarks/balancer.py [--rate 1000] [--steady 10] [--quiet 40] [--dir /var/tmp/silt-bbench]
Needs the release binary (swift build -c release --product silt) and the test venv (tools/setup).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "integration"))
spec = importlib.util.spec_from_file_location("cluster_latency", REPO / "Benchmarks" / "cluster-latency.py")
cl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cl)
HOSTS, BROKER_PORT = cl.HOSTS, cl.BROKER_PORT
PARTITIONS, TOPIC = 12, "bal"
BALANCER = {"autobalancer.controller.enable": "true",
            "autobalancer.controller.network.in.usage.distribution.detect.threshold": "16384",
            "autobalancer.controller.network.out.usage.distribution.detect.threshold": "16384"}
DECISION = re.compile(r"^(\S+) info .*partition=(\S+)-(\d+) .*to=(\d+) .*auto balancer: moving partition")


class Load:
    """Idempotent acks=all 1 KiB records at `rate`/s, partition i weighted 1/(i+1)^0.8;
    (send time, partition, latency ms) of every acknowledged record."""

    def __init__(self, bootstrap: str, rate: int):
        from confluent_kafka import Producer
        self.p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "acks": "all", "linger.ms": 1,
                           "enable.idempotence": True, "message.timeout.ms": 120_000})
        weights = [1 / (i + 1) ** 0.8 for i in range(PARTITIONS)]
        self.cycle = [i for i, w in enumerate(weights) for _ in range(round(20 * w / weights[-1]))]
        self.rate = rate
        self.samples: list[tuple[float, int, float]] = []
        self.errors = []
        self.stop_flag = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        start, n = time.time(), 0
        while not self.stop_flag.is_set():
            due = start + n / self.rate
            now = time.time()
            if now < due:
                self.p.poll(min(due - now, 0.001))
                continue
            part = self.cycle[n % len(self.cycle)]

            def done(err, _msg, sent=time.time(), part=part):
                if err is None:
                    self.samples.append((sent, part, (time.time() - sent) * 1000))
                else:
                    self.errors.append(err)
            self.p.produce(TOPIC, b"x" * 1024, partition=part, on_delivery=done)
            self.p.poll(0)
            n += 1
        self.p.flush(60)


def decisions(nodes) -> list[tuple[float, int, int]]:
    """(time, partition, to) of every balancer move, from the controllers' logs."""
    out = []
    for n in nodes[:3]:
        for line in n.log_path.read_text(errors="replace").splitlines():
            m = DECISION.match(line)
            if m and m.group(2) == TOPIC:
                out.append((datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S%z").timestamp(), int(m.group(3)), int(m.group(4))))
    return sorted(out)


def settle(nodes, since: float, quiet: float, timeout: float = 600) -> float:
    """Seconds from `since` to the last move of the burst after it (no move for `quiet` s)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        moves = [t for t, _, _ in decisions(nodes) if t >= since - 1]
        last = moves[-1] if moves else since
        if time.time() - last >= quiet:
            return max(0.0, last - since)
        time.sleep(1)
    raise TimeoutError("the balancer kept moving")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--steady", type=float, default=10, help="minutes of steady state to count moves over")
    ap.add_argument("--quiet", type=float, default=40, help="seconds without a move that end a burst")
    ap.add_argument("--override", action="append", default=[], help="key=value for every node")
    ap.add_argument("--dir", default="/var/tmp/silt-bbench")
    args = ap.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    nodes = cl.cluster_nodes(root / "cluster")
    extra = dict(kv.split("=", 1) for kv in args.override)
    for n in nodes:
        n.overrides.update({**BALANCER, **extra})
    procs = {}

    def start(i: int):
        log = open(nodes[i].log_path, "ab")
        procs[i] = subprocess.Popen(nodes[i].command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    cwd=nodes[i].workdir, start_new_session=True)
    results = {"rate_records_per_s": args.rate, "record_bytes": 1024, "partitions": PARTITIONS, "overrides": extra}
    try:
        for i in range(4):
            start(i)
        bootstrap = ",".join(f"{h}:{BROKER_PORT}" for h in HOSTS)
        cl.wait(lambda: all(sorted(cl.raw_metadata(h, BROKER_PORT, [], timeout=1.0)["brokers"]) == [0, 1, 2, 3]
                            for h in HOSTS[:4]), 120, "four brokers serving")
        cl.create_topic(bootstrap, TOPIC, PARTITIONS)
        cl.wait(lambda: len(cl.leaders(TOPIC)) == PARTITIONS and min(cl.leaders(TOPIC).values()) >= 0, 30, "topic led")
        load = Load(bootstrap, args.rate)
        t0 = time.time()
        load.t.start()
        results["balance_after_load_start_s"] = settle(nodes, t0, args.quiet)
        t1 = time.time()
        time.sleep(args.steady * 60)
        steady = [t for t, _, _ in decisions(nodes) if t1 <= t < time.time()]
        results["steady_state"] = {"minutes": args.steady, "moves": len(steady),
                                   "moves_per_hour": round(len(steady) * 60 / args.steady, 1)}
        t2 = time.time()
        start(4)
        cl.wait(lambda: 4 in cl.leaders(TOPIC).values(), 120, "broker 4 leads a partition")
        results["scale_out"] = {"first_partition_on_new_broker_s": round(time.time() - t2, 1),
                                "balance_s": settle(nodes, t2, args.quiet)}
        t3 = time.time()
        procs[3].terminate()
        procs[3].wait(60)
        results["scale_in"] = {"drain_and_exit_s": round(time.time() - t3, 1), "exit_code": procs[3].returncode,
                               "all_led_after": all(l not in (-1, 3) for l in cl.leaders(TOPIC).values()),
                               "balance_s": settle(nodes, t3, args.quiet)}
        load.stop_flag.set()
        load.t.join(120)
        moves = decisions(nodes)
        windows = [(t, t + 2, p) for t, p, _ in moves]
        during, calm = [], []
        for sent, part, ms in load.samples:
            hit = [p for a, b, p in windows if a <= sent < b]
            if hit and part not in hit:
                during.append(ms)
            elif not hit:
                calm.append(ms)
        results["moves_total"] = len(moves)
        results["produce_other_partitions_during_moves_ms"] = cl.percentiles(during) if during else None
        results["produce_no_moves_ms"] = cl.percentiles(calm[len(calm) // 20:])
        results["produce_errors"] = len(load.errors)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(root / "cluster", ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
