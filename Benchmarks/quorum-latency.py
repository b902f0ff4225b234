#!/usr/bin/env python3
"""Controller quorum figures (run on demand, not in CI), with fio on the same disk:

- metadata commit latency with 3 voters and fsync on: sequential AllocateProducerIds
  requests to the active controller, each one proposal committed by a majority;
- election time after kill -9 of the active controller: from the kill to a DescribeQuorum
  answer naming a new leader, and to the first commit through it, over --kills kills
  (each killed node restarts and catches up before the next kill);
- fio: 4 KiB writes with fdatasync after each (what one group commit of a small batch
  costs), in the directory the controllers write to.

Usage: python3 Benchmarks/quorum-latency.py [--commits 2000] [--kills 20] [--dir /var/tmp/silt-qbench]
Needs the release binary (swift build -c release --product silt) and fio (apt-get install fio).
Controller settings are Kafka's defaults: election timeout 1000 ms, fetch timeout 2000 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SILT = Path(os.environ.get("SILT_BIN", REPO / ".build" / "release" / "silt"))
HOSTS = ["127.0.0.31", "127.0.0.32", "127.0.0.33"]
PORT = 19093
CLUSTER_ID = "quorum-bench-cluster-1"


def uvarint(n: int) -> bytes:
    out = b""
    while True:
        if n < 0x80:
            return out + bytes([n])
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7


class Conn:
    """One Kafka-framed connection with flexible (v2) request headers."""

    def __init__(self, host: str, timeout: float = 5.0):
        self.sock = socket.create_connection((host, PORT), timeout=timeout)
        self.sock.settimeout(timeout)
        self.correlation = 0

    def call(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation += 1
        client = b"quorum-bench"
        frame = struct.pack(">hhih", api_key, version, self.correlation, len(client)) + client + b"\x00" + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._recv(4))[0]
        resp = self._recv(size)
        return resp[5:]   # correlation id + header tags

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk
        return buf

    def close(self):
        self.sock.close()


def allocate_producer_ids(conn: Conn) -> int:
    """One metadata commit; returns the error code."""
    resp = conn.call(67, 0, struct.pack(">iq", 0, -1) + b"\x00")
    return struct.unpack(">h", resp[4:6])[0]


def describe_quorum_leader(host: str) -> tuple[int, int]:
    """(leaderId, leaderEpoch) as `host` answers DescribeQuorum v0, (-1, -1) on error."""
    name = b"__cluster_metadata"
    body = b"\x02" + uvarint(len(name) + 1) + name + b"\x02" + struct.pack(">i", 0) + b"\x00" + b"\x00" + b"\x00"
    try:
        conn = Conn(host, timeout=1.0)
        try:
            resp = conn.call(55, 0, body)
        finally:
            conn.close()
    except (OSError, EOFError):
        return (-1, -1)
    pos = 2 + 1   # error code, topics array length
    pos += 1 + resp[pos] - 1   # topic name (compact string; short)
    pos += 1   # partitions array length
    _, error, leader, epoch = struct.unpack(">ihii", resp[pos:pos + 14])
    return (leader, epoch) if error == 0 else (-1, -1)


def percentiles(values: list[float]) -> dict:
    v = sorted(values)
    def p(q):
        return v[min(len(v) - 1, int(q * len(v)))]
    return {"count": len(v), "p50": p(0.50), "p99": p(0.99), "p999": p(0.999), "max": v[-1]}


class Controller:
    def __init__(self, i: int, root: Path, voters: str):
        self.i, self.host = i, HOSTS[i]
        self.dir = root / f"c{i}"
        self.cmd = [str(SILT), "server", "--override", f"node.id={i}", "--override", "process.roles=controller",
                    "--override", f"controller.quorum.voters={voters}", "--override", f"cluster.id={CLUSTER_ID}",
                    "--override", f"listeners=CONTROLLER://{self.host}:{PORT}", "--override", f"log.dirs={self.dir}",
                    "--override", f"s3.data.buckets=0@file://{root / 'bucket'}"]
        self.proc = None

    def start(self):
        self.log = open(self.dir.parent / f"c{self.i}.log", "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=self.log, start_new_session=True)

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def find_leader(ids) -> tuple[int, int]:
    best = (-1, -1)
    for i in ids:
        lead = describe_quorum_leader(HOSTS[i])
        if lead[0] >= 0 and lead[1] > best[1]:
            best = lead
    return best


def wait_leader(ids, exclude=(), timeout=30.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lead = find_leader(ids)
        if lead[0] >= 0 and lead[0] not in exclude:
            return lead
        time.sleep(0.005)
    raise RuntimeError("no leader")


def commit_once(host: str) -> bool:
    try:
        conn = Conn(host, timeout=2.0)
        try:
            return allocate_producer_ids(conn) == 0
        finally:
            conn.close()
    except (OSError, EOFError):
        return False


def fio_fdatasync(directory: Path) -> dict:
    if shutil.which("fio") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "fio"], check=True, capture_output=True)
    r = subprocess.run(["fio", "--name=fdatasync", f"--directory={directory}", "--rw=write", "--bs=4k", "--size=32m",
                        "--ioengine=sync", "--fdatasync=1", "--output-format=json"], capture_output=True, text=True,
                       check=True)
    job = json.loads(r.stdout)["jobs"][0]
    sync = job["sync"]["lat_ns"]["percentile"]
    return {"p50_ms": sync["50.000000"] / 1e6, "p99_ms": sync["99.000000"] / 1e6, "p999_ms": sync["99.900000"] / 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--dir", default="/var/tmp/silt-qbench")
    args = ap.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    (root / "bucket").mkdir(parents=True)
    voters = ",".join(f"{i}@{h}:{PORT}" for i, h in enumerate(HOSTS))
    nodes = [Controller(i, root, voters) for i in range(3)]
    for n in nodes:
        n.dir.mkdir()
        n.start()
    try:
        leader, _ = wait_leader(range(3))
        # Commit latency: one proposal at a time, on one connection to the leader.
        conn = Conn(HOSTS[leader])
        for _ in range(50):   # warm-up
            allocate_producer_ids(conn)
        lat = []
        for _ in range(args.commits):
            t = time.perf_counter()
            code = allocate_producer_ids(conn)
            lat.append((time.perf_counter() - t) * 1000)
            assert code == 0, f"AllocateProducerIds error {code}"
        conn.close()
        commit = percentiles(lat)

        # Elections after kill -9 of the leader.
        elections, first_commits = [], []
        for k in range(args.kills):
            leader, epoch = wait_leader(range(3))
            others = [i for i in range(3) if i != leader]
            t0 = time.monotonic()
            nodes[leader].kill()
            new, new_epoch = wait_leader(others, exclude=(leader,))
            elections.append((time.monotonic() - t0) * 1000)
            while not commit_once(HOSTS[new]):
                time.sleep(0.002)
            first_commits.append((time.monotonic() - t0) * 1000)
            nodes[leader].start()
            # Back in the quorum before the next kill: its listener is up, then a moment to
            # find the leader and catch up (its log is a few records behind).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection((HOSTS[leader], PORT), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            time.sleep(2.0)
            print(f"kill {k + 1}: leader {leader} -> {new}, elected after {elections[-1]:.0f} ms, "
                  f"first commit after {first_commits[-1]:.0f} ms", file=sys.stderr)
        fio = fio_fdatasync(root)
        result = {
            "machine": os.uname().nodename, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit_latency_ms": commit, "election_after_kill_ms": percentiles(elections),
            "first_commit_after_kill_ms": percentiles(first_commits), "fio_4k_write_fdatasync": fio,
        }
        print(json.dumps(result, indent=2))
    finally:
        for n in nodes:
            try:
                n.kill()
            except Exception:  # noqa: BLE001
                pass


if __name__ == "__main__":
    main()
