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
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


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
