"""Shared helpers for the silt integration tests (imported by conftest and tests)."""
from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SILT_BIN = Path(os.environ.get("SILT_BIN", REPO_ROOT / ".build" / "release" / "silt"))
# The loopback address test nodes listen on (free ports); SILT_TEST_HOST picks another one of
# 127.0.0.0/8 so that engineers sharing a machine keep apart.
HOST = os.environ.get("SILT_TEST_HOST", "127.0.0.1")


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = HOST) -> int:
    """A port free now and outside the kernel's ephemeral range: a port taken from that range
    (bind to 0) can be handed to some process's outgoing connection (a node's own role
    connecting to its controller, a client) before the node listens on it."""
    import random

    lo, _ = _ephemeral_range()
    for _ in range(1000):
        port = random.randint(10_000, lo - 1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in 10000-{lo - 1}")


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def tcp_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


class NodeError(RuntimeError):
    pass


_ALL_PROCS: list[subprocess.Popen] = []


def _on_sigterm(signum, frame):  # noqa: ARG001
    _kill_leftovers()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)


@atexit.register
def _kill_leftovers() -> None:
    """Never leave a broker running, even if pytest dies mid-test."""
    for p in _ALL_PROCS:
        _kill_group(p)


def _descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (from /proc), children first found first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_group(p: subprocess.Popen) -> None:
    """SIGKILL the node: its process group (it runs in its own session) and every
    descendant (role processes may sit in process groups of their own), so nothing
    outlives it holding ports or the data dir."""
    victims = _descendants(p.pid) if p.poll() is None else []
    for sig_target in (lambda: os.killpg(p.pid, signal.SIGKILL), lambda: p.kill()):
        try:
            sig_target()
        except (ProcessLookupError, PermissionError):
            pass
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        pass


class Node:
    """One silt broker process on free loopback ports with its own data dir.

    start()/stop()/kill() may be called repeatedly; the data dir and ports
    are kept across restarts. stderr of every run is appended to self.log_path.
    """

    START_TIMEOUT = 30.0
    STOP_TIMEOUT = 20.0

    def __init__(self, workdir: Path, overrides: dict[str, str] | None = None, extra_args: list[str] | None = None):
        self.extra_args = list(extra_args or [])
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "silt.stderr.log"
        self.port, self.controller_port = free_ports(2)
        self.overrides = {
            "node.id": "0",
            "log.dirs": str(self.data_dir),
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            # AutoMQ's 2 GiB default WAL would cost 2 GiB of disk per test node.
            "s3.wal.capacity": str(256 << 20),
        }
        self.overrides.update(overrides or {})
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(SILT_BIN), "server"]
        for k, v in self.overrides.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd + self.extra_args

    def start(self, timeout: float | None = None) -> "Node":
        if self.proc is not None and self.proc.poll() is None:
            raise NodeError("node already running")
        if not SILT_BIN.exists():
            raise NodeError(f"silt binary not found at {SILT_BIN} (run: swift build -c release --product silt)")
        self.starts += 1
        self._close_log()
        self._log_file = open(self.log_path, "ab", buffering=0)
        self._log_file.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            cwd=self.workdir,
            start_new_session=True,
        )
        _ALL_PROCS.append(self.proc)
        self.wait_ready(timeout or self.START_TIMEOUT)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # 1. the PLAINTEXT port accepts TCP
        while True:
            self._check_alive("while waiting for the PLAINTEXT port")
            if tcp_accepts(self.port):
                break
            if time.monotonic() > deadline:
                raise NodeError(f"PLAINTEXT port {self.port} not accepting after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)
        # 2. it answers a Metadata request
        from confluent_kafka.admin import AdminClient
        from confluent_kafka import KafkaException

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "broker.address.family": "v4"})
        last = None
        while True:
            self._check_alive("while waiting for a Metadata answer")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NodeError(f"node did not answer Metadata within {timeout}s (last error: {last})\n{self.log_tail()}")
            try:
                md = admin.list_topics(timeout=min(3.0, max(0.5, remaining)))
                if md.brokers:
                    return
                last = "metadata had no brokers"
            except KafkaException as e:  # noqa: PERF203
                last = e
            time.sleep(0.1)

    def _check_alive(self, what: str) -> None:
        if self.proc is None:
            raise NodeError("node not started")
        rc = self.proc.poll()
        if rc is not None:
            raise NodeError(f"silt exited with code {rc} {what}\n{self.log_tail()}")

    def stop(self, timeout: float | None = None) -> int:
        """Graceful stop with SIGTERM. Returns the exit code. Kills and raises if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout or self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            raise NodeError(f"silt did not exit within {timeout or self.STOP_TIMEOUT}s of SIGTERM\n{self.log_tail()}")
        finally:
            self._close_log()
        return rc

    def kill(self) -> None:
        """SIGKILL the node: the process and everything in its process group."""
        if self.proc is not None:
            _kill_group(self.proc)
        self._close_log()

    def restart(self, graceful: bool = True) -> int | None:
        rc = self.stop() if graceful else self.kill()
        self.start()
        return rc

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 200) -> str:
        text = self.log_text().splitlines()
        return f"----- silt stderr ({self.log_path}), last {min(lines, len(text))} lines -----\n" + "\n".join(text[-lines:])


# ---------------------------------------------------------------- client helpers

def client_conf(node: Node, **extra) -> dict:
    conf = {"bootstrap.servers": node.bootstrap, "broker.address.family": "v4"}
    conf.update(extra)
    return conf


def admin(node: Node):
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_conf(node))


def create_topic(node: Node, name: str, partitions: int = 1, config: dict | None = None, timeout: float = 30.0) -> None:
    from confluent_kafka.admin import NewTopic

    a = admin(node)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
                         operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout=timeout)
    wait_for_topic(node, name, partitions, a=a, timeout=timeout)


def wait_for_topic(node: Node, name: str, partitions: int | None = None, a=None, timeout: float = 30.0):
    """Wait until metadata shows the topic (with `partitions` partitions, each with a leader)."""
    a = a or admin(node)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is not None and t.error is None:
            if (partitions is None or len(t.partitions) == partitions) and all(
                    p.leader >= 0 for p in t.partitions.values()):
                return t
        last = t.error if t is not None else "absent"
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions within {timeout}s (last: {last})")


def producer(node: Node, **extra):
    from confluent_kafka import Producer

    conf = client_conf(node, **{"acks": "all", "enable.idempotence": False, "linger.ms": 5})
    conf.update(extra)
    return Producer(conf)


def consumer(node: Node, **extra):
    from confluent_kafka import Consumer

    conf = client_conf(node, **{
        "group.id": "silt-integration",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
    })
    conf.update(extra)
    return Consumer(conf)


def produce_all(node: Node, topic: str, messages, timeout: float = 120.0, **producer_conf):
    """Produce (partition, key, value, headers) tuples; return list of (err, partition, offset) per message."""
    p = producer(node, **producer_conf)
    reports: list = [None] * len(messages)

    def make_cb(i):
        def cb(err, msg):
            reports[i] = (err, msg.partition(), msg.offset())
        return cb

    for i, (part, key, value, headers) in enumerate(messages):
        kwargs = {"key": key, "value": value, "on_delivery": make_cb(i)}
        if part is not None:
            kwargs["partition"] = part
        if headers:
            kwargs["headers"] = headers
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    missing = [i for i, r in enumerate(reports) if r is None]
    assert not missing, f"{len(missing)} messages got no delivery report"
    errors = [(i, r[0]) for i, r in enumerate(reports) if r[0] is not None]
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    return [(r[1], r[2]) for r in reports]


def consume_partitions(node: Node, topic: str, partitions, expected: int, timeout: float = 120.0, **consumer_conf):
    """Assign all `partitions` at OFFSET_BEGINNING and read until `expected` messages arrived.

    Returns {partition: [Message, ...]} in arrival order."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    c = consumer(node, **consumer_conf)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out: dict[int, list] = {p: [] for p in partitions}
        n = 0
        deadline = time.monotonic() + timeout
        while n < expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"consumed only {n} of {expected} messages within {timeout}s")
            for m in c.consume(num_messages=10000, timeout=0.5):
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                out[m.partition()].append(m)
                n += 1
        # give the broker a moment to show that nothing unexpected follows
        for m in c.consume(num_messages=1000, timeout=0.5):
            if not m.error():
                out[m.partition()].append(m)
        return out
    finally:
        c.close()


def roundtrip(node: Node, topic: str, count: int = 20) -> None:
    """Produce `count` messages to a fresh 1-partition topic and read them back."""
    msgs = [(0, f"k{i}".encode(), f"roundtrip-{i}".encode(), None) for i in range(count)]
    offsets = produce_all(node, topic, msgs, timeout=30)
    got = consume_partitions(node, topic, [0], count, timeout=30)[0]
    assert [m.value() for m in got] == [v for _, _, v, _ in msgs]
    assert [m.offset() for m in got] == [o for _, o in offsets]


# ------------------------------------------------ stream storage helpers (issue 5)

class EnvNode(Node):
    """A Node whose processes get extra environment variables (e.g. KAFKA_S3_ACCESS_KEY /
    KAFKA_S3_SECRET_KEY for an S3 data bucket). The variables are set in os.environ only
    while start() spawns the supervisor (its role processes inherit them from it) and are
    restored right after, so they never appear in an argv or in the start line logged."""

    def __init__(self, workdir: Path, overrides: dict[str, str] | None = None,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None):
        super().__init__(workdir, overrides, extra_args)
        self.env = dict(env or {})

    def start(self, timeout: float | None = None) -> "Node":
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return super().start(timeout)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll `predicate()` until it returns something truthy (returned); fail with `what`
    (a string, or a callable giving one, evaluated at the deadline) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f}s: {what() if callable(what) else what}")
        time.sleep(interval)


def node_role_pids(node: Node) -> dict[str, int]:
    """The role processes of `node` (children of its `silt server` supervisor, argv
    `silt role <name>`) by role name."""
    import re

    out = subprocess.run(["pgrep", "-a", "-P", str(node.proc.pid)], capture_output=True, text=True).stdout
    pids = {}
    for line in out.splitlines():
        m = re.match(r"(\d+) .* role (\w+)", line)
        if m:
            pids[m.group(2)] = int(m.group(1))
    return pids


# Prometheus text exposition: `name{a="x",b="y"} value` lines; '#' lines are comments.
def parse_prometheus(text: str) -> dict[tuple[str, frozenset], float]:
    """{(metric name, frozenset of (label, value))): value} for every sample line."""
    import re

    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    out: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            raise ValueError(f"not a Prometheus sample line: {line!r}")
        labels = frozenset(label_re.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class Metrics:
    """One scrape of a node's Prometheus endpoint; get(name, **labels) sums the samples of
    `name` over all label sets that contain the given labels (0.0 when there is none)."""

    def __init__(self, samples: dict[tuple[str, frozenset], float]):
        self.samples = samples

    @classmethod
    def scrape(cls, port: int, timeout: float = 5.0) -> "Metrics":
        import urllib.request

        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=timeout) as r:
            return cls(parse_prometheus(r.read().decode()))

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.samples)

    def get(self, name: str, **labels: str) -> float:
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def need(self, name: str, **labels: str) -> float:
        """get(), but a metric that is not exported at all fails (a gauge that must reach 0
        would otherwise pass by being absent)."""
        want = set(labels.items())
        assert any(n == name and want <= ls for n, ls in self.samples), \
            f"metric {name}{labels or ''} is not exported (exported: {sorted({n for n, _ in self.samples})})"
        return self.get(name, **labels)


def scrape_metrics(port: int, timeout: float = 5.0) -> Metrics:
    return Metrics.scrape(port, timeout)


def prometheus_override(port: int) -> dict[str, str]:
    """The --override that makes the supervisor serve /metrics on 127.0.0.1:`port`."""
    return {"s3.telemetry.metrics.exporter.uri": f"prometheus://?host={HOST}&port={port}"}


class DataBucket:
    """The data bucket of a node, for counting the objects it holds: a local directory
    (the file:// store; each key is a file under it) or an S3 bucket (boto3, SigV4).
    Object keys are `<4 hex>/<cluster id>/o/<object id>`; keys() returns only those."""

    OBJECT_MARK = "/o/"

    def __init__(self, directory: Path | None = None, s3_env: dict | None = None, bucket: str | None = None):
        self.directory = Path(directory) if directory is not None else None
        self.s3_env, self.bucket = s3_env, bucket
        self._client = None

    @classmethod
    def local(cls, directory: Path) -> "DataBucket":
        return cls(directory=directory)

    @classmethod
    def s3(cls, s3_env: dict, bucket: str) -> "DataBucket":
        return cls(s3_env=s3_env, bucket=bucket)

    def client(self):
        if self._client is None:
            self._client = s3_client(self.s3_env)
        return self._client

    def all_keys(self) -> set[str]:
        if self.directory is not None:
            if not self.directory.exists():
                return set()
            out = set()
            for dirpath, dirnames, filenames in os.walk(self.directory):
                dirnames[:] = [d for d in dirnames if d != ".silt-staging"]
                rel = Path(dirpath).relative_to(self.directory)
                out.update(str(rel / f) if str(rel) != "." else f for f in filenames)
            return out
        keys: set[str] = set()
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys.update(o["Key"] for o in page.get("Contents", []))
        return keys

    def keys(self) -> set[str]:
        return {k for k in self.all_keys() if self.OBJECT_MARK in k}

    def count(self) -> int:
        return len(self.keys())

    def object_id(self, key: str) -> int:
        return int(key.rsplit(self.OBJECT_MARK, 1)[1])

    def pending_multipart_uploads(self) -> int:
        """S3 only: multipart uploads started and neither completed nor aborted."""
        if self.directory is not None:
            return 0
        r = self.client().list_multipart_uploads(Bucket=self.bucket)
        return len(r.get("Uploads", []))

    def __str__(self) -> str:
        return f"file://{self.directory}" if self.directory is not None else f"s3://{self.bucket}"


def s3_client(s3_env: dict):
    """A boto3 S3 client for the moto-server env (S3_ENDPOINT, AWS_ACCESS_KEY_ID, ...)."""
    import boto3
    import botocore.config

    return boto3.client("s3", endpoint_url=s3_env["S3_ENDPOINT"], region_name=s3_env.get("AWS_REGION", "us-east-1"),
                        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
                        config=botocore.config.Config(s3={"addressing_style": "path"},
                                                      retries={"max_attempts": 3}))


def s3_bucket_override(bucket: str, endpoint: str, region: str = "us-east-1") -> dict[str, str]:
    """The --override that puts a node's data in an S3 bucket at `endpoint` (path style)."""
    return {"s3.data.buckets": f"0@s3://{bucket}?region={region}&endpoint={endpoint}&pathStyle=true"}


def s3_node_env(s3_env: dict) -> dict[str, str]:
    """The environment a node reads its S3 credentials from."""
    return {"KAFKA_S3_ACCESS_KEY": s3_env["AWS_ACCESS_KEY_ID"], "KAFKA_S3_SECRET_KEY": s3_env["AWS_SECRET_ACCESS_KEY"]}


def start_moto(workdir: Path, buckets: list[str]) -> tuple[dict, Path]:
    """Start tools/moto-server (SigV4 enforced) with `buckets`; returns (its env, pid file).
    The server dies with this process (--watch-pid)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env_file, pid_file = workdir / "moto.env", workdir / "moto.pid"
    subprocess.run([str(REPO_ROOT / "tools" / "moto-server"), "--port", "0", "--env-file", str(env_file),
                    "--pid-file", str(pid_file), "--watch-pid", str(os.getpid()), *buckets],
                   check=True, timeout=180, stdout=subprocess.DEVNULL)
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return env, pid_file


def stop_moto(pid_file: Path) -> None:
    subprocess.run([str(REPO_ROOT / "tools" / "moto-server"), "--stop", "--pid-file", str(pid_file)], timeout=30)


class FaultProxy:
    """tools/s3-fault-proxy.py in front of `upstream`; .endpoint is what a node should use.
    Use as a context manager, or call stop()."""

    def __init__(self, upstream: str, fault_rate: float = 0.2, faults: str | None = None,
                 max_latency_ms: int | None = None, seed: int | None = None, stats_file: Path | None = None):
        cmd = [str(REPO_ROOT / ".venv" / "bin" / "python"), str(REPO_ROOT / "tools" / "s3-fault-proxy.py"),
               "--upstream", upstream, "--port", "0", "--fault-rate", str(fault_rate)]
        if faults is not None:
            cmd += ["--faults", faults]
        if max_latency_ms is not None:
            cmd += ["--max-latency-ms", str(max_latency_ms)]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        if stats_file is not None:
            cmd += ["--stats-file", str(stats_file)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        _ALL_PROCS.append(self.proc)
        line = self.proc.stdout.readline()
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"s3-fault-proxy did not start: {line!r}")
        self.port = int(line.split()[1])
        self.endpoint = f"http://{HOST}:{self.port}"

    def stats(self) -> dict:
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}/__fault_stats", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def debug_objects(node: Node, timeout: float = 30.0) -> dict:
    """`silt debug objects --controller 127.0.0.1:<controller port>` as parsed JSON:
    {"objects": [{id, key, size, kind, ranges}], "prepared": [ids], "awaitingDeletion": [ids],
     "streams": [{id, topic, partition, start, end, epoch}]}."""
    import json

    r = subprocess.run([str(SILT_BIN), "debug", "objects", "--controller", f"{HOST}:{node.controller_port}",
                        "--log-dir", str(node.data_dir)],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"silt debug objects exited {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


# ------------------------------------------------ produce / verify big payloads

class PayloadSource:
    """Deterministic, incompressible values: value(partition, seq) is a 12-byte header
    (partition, seq) followed by a slice of a seeded random pool, so a value can be rebuilt
    from its header and nothing has to be kept in memory per message but a digest."""

    POOL_BYTES = 1 << 20

    def __init__(self, size: int, seed: int = 5):
        import random

        assert size >= 16, "values carry a 12-byte header"
        self.size = size
        self.pool = random.Random(seed).randbytes(self.POOL_BYTES + size)

    def value(self, partition: int, seq: int) -> bytes:
        import struct

        start = (seq * 7919 + partition * 104729) % self.POOL_BYTES
        return struct.pack(">IQ", partition, seq) + self.pool[start:start + self.size - 12]

    @staticmethod
    def header(value: bytes) -> tuple[int, int]:
        import struct

        return struct.unpack(">IQ", value[:12])


class AckLog:
    """What the producer was told: per partition, acked offset -> sha1 of the value.
    digest(p) is a sha256 over (offset, value sha1) in offset order, the same thing a
    reader computes over what it reads at those offsets."""

    def __init__(self):
        self.acked: dict[int, dict[int, bytes]] = {}
        self.errors: list[str] = []
        self.bytes = 0

    def on_delivery(self, err, msg) -> None:
        import hashlib

        if err is not None:
            self.errors.append(str(err))
            return
        self.acked.setdefault(msg.partition(), {})[msg.offset()] = hashlib.sha1(msg.value()).digest()
        self.bytes += len(msg.value())

    def count(self) -> int:
        return sum(len(d) for d in self.acked.values())

    def ends(self) -> dict[int, int]:
        """Per partition: last acked offset + 1 (where a reader may stop)."""
        return {p: max(d) + 1 for p, d in self.acked.items() if d}

    def digest(self, partition: int) -> str:
        return ordered_digest(sorted(self.acked.get(partition, {}).items()))


def ordered_digest(offset_sha1s) -> str:
    """sha256 over (offset, sha1 of value) pairs, in the order given."""
    import hashlib
    import struct

    h = hashlib.sha256()
    for off, sha in offset_sha1s:
        h.update(struct.pack(">q", off))
        h.update(sha)
    return h.hexdigest()


def produce_stream(node: Node, topic: str, partitions: int, total_bytes: int, value_size: int,
                   acks: AckLog | None = None, source: PayloadSource | None = None, flush_timeout: float = 300.0,
                   first_seq: int = 0, rate_bytes_per_s: float | None = None, until=None,
                   **producer_conf) -> AckLog:
    """Produce ~total_bytes of `value_size` values round-robin over `partitions` with acks=all
    (compression off), recording every delivery in `acks`; at most `rate_bytes_per_s` when
    given, and stopping early once the threading.Event `until` is set. Returns the AckLog;
    does NOT assert that there were no errors (the caller decides)."""
    acks = acks or AckLog()
    source = source or PayloadSource(value_size)
    conf = {"linger.ms": 10, "compression.type": "none", "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 65536, "message.timeout.ms": 300_000}
    conf.update(producer_conf)
    p = producer(node, **conf)
    n = total_bytes // value_size
    t0 = time.monotonic()
    for i in range(n):
        if until is not None and i % 256 == 0 and until.is_set():
            break
        seq = first_seq + i
        part = seq % partitions
        v = source.value(part, seq)
        while True:
            try:
                p.produce(topic, value=v, partition=part, on_delivery=acks.on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 256 == 0:
            p.poll(0)
            if rate_bytes_per_s:
                ahead = (i * value_size) / rate_bytes_per_s - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    remaining = p.flush(flush_timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {flush_timeout}s"
    return acks


def read_back(node: Node, topic: str, ends: dict[int, int], timeout: float = 300.0, **consumer_conf) -> dict:
    """Read every partition in `ends` from offset 0 up to its end offset (assign, no group
    needed). Returns {partition: {"offsets": [..in read order..], "sha1": {offset: sha1}}}
    (values are folded into sha1s, so 200 MB do not stay in memory)."""
    import hashlib

    from confluent_kafka import Consumer, TopicPartition

    conf = client_conf(node, **{"group.id": f"silt-readback-{time.monotonic_ns()}", "enable.auto.commit": False,
                                "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
                                "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 4194304,
                                "enable.partition.eof": False})
    conf.update(consumer_conf)
    c = Consumer(conf)
    out = {p: {"offsets": [], "sha1": {}} for p in ends}
    todo = {p for p, e in ends.items() if e > 0}
    try:
        c.incremental_assign([TopicPartition(topic, p, 0) for p in todo])
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                got = {p: len(out[p]["offsets"]) for p in ends}
                raise AssertionError(f"read-back of {topic} incomplete after {timeout}s: read {got}, ends {ends}")
            for m in c.consume(num_messages=10000, timeout=0.5):
                if m.error():
                    raise AssertionError(f"consumer error on {topic}: {m.error()}")
                p = m.partition()
                if p not in todo:
                    continue
                if m.offset() < ends[p]:
                    out[p]["offsets"].append(m.offset())
                    out[p]["sha1"][m.offset()] = hashlib.sha1(m.value()).digest()
                if m.offset() >= ends[p] - 1:
                    todo.discard(p)
                    c.incremental_unassign([TopicPartition(topic, p)])
        return out
    finally:
        c.close()


def verify_read_back(acks: AckLog, got: dict, exact: bool = True) -> None:
    """Every acked message is read at its acked offset with the same value, offsets are read
    in order with no gap from 0, and the per-partition ordered digests are equal. With
    exact=True the partition also holds nothing but acked messages (no retried duplicate)."""
    for p, acked in sorted(acks.acked.items()):
        offs = got[p]["offsets"]
        end = max(acked) + 1
        assert offs == list(range(end)), (
            f"partition {p}: read offsets are not 0..{end - 1} in order without gaps "
            f"(read {len(offs)}, first problem at index "
            f"{next((i for i, o in enumerate(offs) if o != i), len(offs))})")
        missing = [o for o in acked if o not in got[p]["sha1"]]
        assert not missing, f"partition {p}: {len(missing)} acked offsets not read, e.g. {sorted(missing)[:5]}"
        wrong = [o for o, sha in acked.items() if got[p]["sha1"][o] != sha]
        assert not wrong, f"partition {p}: {len(wrong)} acked offsets hold another value, e.g. {sorted(wrong)[:5]}"
        assert ordered_digest((o, got[p]["sha1"][o]) for o in sorted(acked)) == acks.digest(p), \
            f"partition {p}: ordered digest of the read-back differs from the producer's"
        if exact:
            extra = sorted(set(got[p]["sha1"]) - set(acked))
            assert not extra, f"partition {p}: {len(extra)} offsets hold messages nobody acked, e.g. {extra[:5]}"


# ------------------------------------------------ raw Kafka requests to one broker address
# The clients route a request to whichever broker they like; these go to exactly the
# address given, so a test can ask each node of a cluster what *it* answers.

class _Cursor:
    """Reads the big-endian, non-flexible encodings of a Kafka response body."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        import struct

        size = struct.calcsize(fmt)
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return v

    def int8(self) -> int: return self.take(">b")
    def int16(self) -> int: return self.take(">h")
    def int32(self) -> int: return self.take(">i")

    def string(self) -> str | None:
        n = self.int16()
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def array(self, item) -> list:
        n = self.int32()
        return [item() for _ in range(max(n, 0))]

    def single_partition_error(self) -> int:
        """Skips to the one partition of a one-topic answer (topics, name, partitions, index)
        and returns its error code."""
        self.int32(), self.string(), self.int32(), self.int32()
        return self.int16()


def _kstr(s: str | None) -> bytes:
    import struct

    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def raw_kafka_call(host: str, port: int, api_key: int, version: int, body: bytes, timeout: float = 5.0) -> bytes:
    """One request with a v1 (non-flexible) header to host:port; the response body after its
    v0 header. Raises OSError/EOFError when the connection fails or closes."""
    import struct

    client = b"silt-test"
    frame = struct.pack(">hhih", api_key, version, 1, len(client)) + client + body
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(frame)) + frame)

        def recv(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise EOFError(f"{host}:{port} closed the connection")
                buf += chunk
            return buf
        size = struct.unpack(">i", recv(4))[0]
        resp = recv(size)
    assert struct.unpack(">i", resp[:4])[0] == 1, "correlation id"
    return resp[4:]


def raw_metadata(host: str, port: int, topics: list[str] | None = None, timeout: float = 5.0) -> dict:
    """Metadata v7 (leader epochs, no auto-creation) answered by host:port itself:
    {"brokers": {id: (host, port)}, "controller": id, "cluster_id": str,
     "topics": {name: {"error": code, "partitions": {index: {"error", "leader", "epoch"}}}}}.
    topics=None asks for every topic."""
    import struct

    body = struct.pack(">i", -1) if topics is None else struct.pack(">i", len(topics)) + b"".join(map(_kstr, topics))
    c = _Cursor(raw_kafka_call(host, port, 3, 7, body + b"\x00", timeout))
    c.int32()  # throttle
    brokers = {}
    for _ in range(c.int32()):
        node_id, h, p = c.int32(), c.string(), c.int32()
        c.string()  # rack
        brokers[node_id] = (h, p)
    cluster_id, controller = c.string(), c.int32()
    out_topics = {}
    for _ in range(c.int32()):
        err, name = c.int16(), c.string()
        c.int8()  # is_internal
        parts = {}
        for _ in range(c.int32()):
            perr, index, leader, epoch = c.int16(), c.int32(), c.int32(), c.int32()
            c.array(c.int32), c.array(c.int32), c.array(c.int32)  # replicas, isr, offline
            parts[index] = {"error": perr, "leader": leader, "epoch": epoch}
        out_topics[name] = {"error": err, "partitions": parts}
    return {"brokers": brokers, "controller": controller, "cluster_id": cluster_id, "topics": out_topics}


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as record batches carry it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _zigzag_varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        if z < 0x80:
            return out + bytes([z])
        out += bytes([(z & 0x7F) | 0x80])
        z >>= 7


def record_batch(values: list[bytes], timestamp_ms: int = 0) -> bytes:
    """A record batch v2 of keyless records, no compression, no producer id."""
    import struct

    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + _zigzag_varint(0) + _zigzag_varint(i) + _zigzag_varint(-1) + _zigzag_varint(len(v)) + v \
            + _zigzag_varint(0)
        records += _zigzag_varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, timestamp_ms, timestamp_ms, -1, -1, -1, len(values)) + records
    crc = _crc32c(after_crc)
    tail = struct.pack(">ibI", -1, 2, crc) + after_crc   # partition leader epoch, magic, crc
    return struct.pack(">qi", 0, len(tail)) + tail


def raw_produce(host: str, port: int, topic: str, partition: int, values: list[bytes], acks: int = -1,
                timeout: float = 5.0) -> dict:
    """Produce v3 of one batch to one partition, answered by host:port itself:
    {"error": code, "base_offset": offset}."""
    import struct

    batch = record_batch(values, int(time.time() * 1000))
    body = (_kstr(None) + struct.pack(">hi", acks, int(timeout * 1000)) + struct.pack(">i", 1) + _kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">ii", partition, len(batch)) + batch)
    c = _Cursor(raw_kafka_call(host, port, 0, 3, body, timeout + 1))
    err = c.single_partition_error()
    base = c.take(">q")
    return {"error": err, "base_offset": base}


def raw_fetch(host: str, port: int, topic: str, partition: int, offset: int, max_wait_ms: int = 0,
              timeout: float = 5.0) -> dict:
    """Fetch v4 of one partition from `offset`, answered by host:port itself:
    {"error": code, "high_watermark": hw, "batches": [(base offset, record count), ...]}."""
    import struct

    body = (struct.pack(">iiiib", -1, max_wait_ms, 1, 1 << 20, 0) + struct.pack(">i", 1) + _kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, 1 << 20))
    c = _Cursor(raw_kafka_call(host, port, 1, 4, body, timeout))
    c.int32()       # throttle
    err = c.single_partition_error()
    hw = c.take(">q")
    c.take(">q")    # last stable offset
    for _ in range(max(c.int32(), 0)):   # aborted transactions
        c.take(">q"), c.take(">q")
    size = c.int32()
    records = c.data[c.pos:c.pos + max(size, 0)]
    batches, pos = [], 0
    while pos + 61 <= len(records):
        base, length = struct.unpack_from(">qi", records, pos)
        batches.append((base, struct.unpack_from(">i", records, pos + 57)[0]))
        pos += 12 + length
    return {"error": err, "high_watermark": hw, "batches": batches}


def raw_find_coordinator(host: str, port: int, group: str, timeout: float = 5.0) -> dict:
    """FindCoordinator v1 for a consumer group, answered by host:port:
    {"error": code, "node_id": id, "host": str, "port": int}."""
    c = _Cursor(raw_kafka_call(host, port, 10, 1, _kstr(group) + b"\x00", timeout))
    c.int32()  # throttle
    err = c.int16()
    c.string()  # error message
    return {"error": err, "node_id": c.int32(), "host": c.string(), "port": c.int32()}


def raw_list_offsets(host: str, port: int, topic: str, partitions, timestamp: int = -1,
                     timeout: float = 5.0) -> dict[int, tuple[int, int]]:
    """ListOffsets v1 (timestamp -1: the log end, -2: the log start) answered by host:port:
    {partition: (error code, offset)}."""
    import struct

    parts = list(partitions)
    body = struct.pack(">i", -1) + struct.pack(">i", 1) + _kstr(topic) + struct.pack(">i", len(parts))
    body += b"".join(struct.pack(">iq", p, timestamp) for p in parts)
    c = _Cursor(raw_kafka_call(host, port, 2, 1, body, timeout))
    out = {}
    for _ in range(c.int32()):
        c.string()
        for _ in range(c.int32()):
            p, err = c.int32(), c.int16()
            c.take(">q")  # timestamp
            out[p] = (err, c.take(">q"))
    return out


def java_string_hash(s: str) -> int:
    """Java's String.hashCode (over UTF-16 code units, 32-bit wrap-around)."""
    data = s.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def offsets_partition_for(group: str, partitions: int) -> int:
    """Kafka's partitionFor(group): Utils.abs(group.hashCode) % partitions (abs(MIN_VALUE) is 0)."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def tcp_listeners_of(pids) -> set[tuple[str, int]]:
    """The (address, port) of every listening TCP socket (v4 and v6) held by the processes
    `pids`, read from /proc (no ss/netstat needed)."""
    import ipaddress

    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = cols[1].split(":")
            raw = bytes.fromhex(addr_hex)
            # /proc shows each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            out.add((str(ipaddress.ip_address(raw)), int(port_hex, 16)))
    return out


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    return [pid] + _descendants(pid)
