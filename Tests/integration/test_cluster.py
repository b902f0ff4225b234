"""A five-node cluster started as AutoMQ's guide does it, on moto (S3, SigV4 enforced).

generate-s3-url, then generate-start-command with three controllers that are brokers too
(nodes 0-2 on 127.0.0.1-3, CONTROLLER :9093, PLAINTEXT :9092) and two broker-only nodes
(3-4 on 127.0.0.4-5, PLAINTEXT :9092); each printed line runs as printed, plus only
`--override log.dirs=...`. One cluster serves the whole module:

- each node binds only the addresses its `listeners` name;
- Metadata from every node lists brokers 0-4 at their advertised host:port;
- a 10-partition topic gets leaders on at least 4 brokers, with leader epochs, and every
  node tells the same leaders;
- confluent-kafka, kafka-python and aiokafka produce (acks=all) through the five-node
  bootstrap list and read every acknowledged record back at its offset;
- a group whose __consumer_offsets partition another node leads has that node as its
  coordinator (asked of every node); 3 members share the topic and read each record once;
- a rolling restart (SIGTERM, exit, same line again) of all five nodes under an idempotent
  acks=all load: each node's controlled shutdown moves its partitions to the others, so every
  partition has a leader while it is down; nothing acknowledged is lost, nothing is
  duplicated, every client error is retriable;
- partitions reassigned with bin/kafka-reassign-partitions.sh (--execute, --verify) under
  that load move to their target within seconds, the target takes writes, and nothing is
  lost or doubled; the old leaders log how long each release took;
- kill -9 of broker-only node 4 under that load: its partitions go offline (leader -1) within
  broker.session.timeout.ms, come back led by node 4 once it restarts; nothing lost or doubled;
- a stale leader cannot write: broker-only node 3 cut off from the controllers (iptables) is
  fenced and, still running, refuses appends to its partitions; healed, it leads them again in
  a newer epoch; nothing lost or doubled.

The addresses and ports are AutoMQ's (9092/9093 on 127.0.0.1-5): the printed lines name
them, so the test checks that nothing else listens there before it starts. No timeout is
shortened: Kafka's defaults (broker.session.timeout.ms 9 s, group.initial.rebalance.delay.ms
3 s) fit the budget. Each node's WAL file is AutoMQ's default 2 GiB, fallocated when the node
formats its log.dirs, so the cluster holds 10 GiB of disk: the fixture deletes the data
directories at the end (the logs stay).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from silt_helpers import (REPO_ROOT, SILT_BIN, Node, NodeError, _ALL_PROCS, offsets_partition_for, process_tree,
                          raw_find_coordinator, raw_list_offsets, raw_metadata, start_moto, stop_moto, tcp_listeners_of,
                          wait_until)

HOSTS = [f"127.0.0.{i}" for i in range(1, 6)]
CONTROLLER_HOSTS, BROKER_ONLY_HOSTS = HOSTS[:3], HOSTS[3:]
BROKER_PORT, CONTROLLER_PORT = 9092, 9093
BOOTSTRAP = ",".join(f"{h}:{BROKER_PORT}" for h in HOSTS)
PARTITIONS = 10
TOPIC = "cluster-seed"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
# Kafka's default for broker.session.timeout.ms, used when a node does not report the key.
KAFKA_BROKER_SESSION_TIMEOUT_MS = 9000
# How late after the session timeout an offline partition may still show its old leader:
# a heartbeat period, the controller's check, one metadata propagation, our poll.
OFFLINE_SLACK_S = 5.0
# What a metadata change (a new topic, a leader moving back) may take to reach every node.
PROPAGATION_S = 20.0
NONE, NOT_LEADER_OR_FOLLOWER = 0, 6


# ---------------------------------------------------------------- the nodes

class SeedNode(Node):
    """One node run from its printed start line (`bin/kafka-server-start.sh ...`) through
    bash, in the Silt home, with `--override log.dirs=<workdir>/data` appended. The bash
    process execs the wrapper, which execs `silt server`: self.proc is the supervisor."""

    def __init__(self, workdir: Path, line: str, home: Path):
        # Not Node.__init__: the ports and overrides come from the printed line.
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "silt.stderr.log"
        self.extra_args, self.proc, self._log_file, self.starts = [], None, None, 0
        self.line, self.home = line, home
        words = shlex.split(line)
        assert words[0] == "bin/kafka-server-start.sh", line
        self.overrides = {}
        for flag, value in zip(words, words[1:]):
            if flag == "--override":
                k, v = value.split("=", 1)
                self.overrides[k] = v
        self.node_id = int(self.overrides["node.id"])
        self.roles = set(self.overrides["process.roles"].split(","))
        self.listeners = parse_listeners(self.overrides["listeners"])
        self.advertised = parse_listeners(self.overrides.get("advertised.listeners", self.overrides["listeners"]))
        # A controller-only node (--controller-only-mode=true) has no PLAINTEXT listener.
        self.host, self.port = self.listeners.get("PLAINTEXT") or self.listeners["CONTROLLER"]

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        return ["bash", "-c", f"cd {shlex.quote(str(self.home))} && exec {self.line} "
                              f"--override log.dirs={shlex.quote(str(self.data_dir))}"]

    def spawn(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise NodeError(f"node {self.node_id} already running")
        self.starts += 1
        self._close_log()
        self._log_file = open(self.log_path, "ab", buffering=0)
        self._log_file.write(f"\n===== start #{self.starts} (log.dirs={self.data_dir})\n".encode())
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=self._log_file, cwd=self.workdir, start_new_session=True)
        _ALL_PROCS.append(self.proc)

    def start(self, timeout: float | None = None) -> "SeedNode":
        self.spawn()
        self.wait_ready(timeout or START_TIMEOUT_S)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Serving: its PLAINTEXT listener answers a Metadata request that names a broker (a
        controller-only node: its CONTROLLER listener accepts connections)."""
        deadline = time.monotonic() + timeout
        last = None
        while "broker" not in self.roles:
            self._check_alive(f"(node {self.node_id}) while waiting for its CONTROLLER listener")
            if tcp_accepts_on(self.host, self.port):
                return
            if time.monotonic() > deadline:
                raise NodeError(f"controller {self.node_id} not listening on {self.bootstrap} after {timeout}s\n{self.log_tail()}")
            time.sleep(0.1)
        while True:
            self._check_alive(f"(node {self.node_id}) while waiting for it to answer Metadata")
            try:
                if raw_metadata(self.host, self.port, topics=[], timeout=2)["brokers"]:
                    return
                last = "no brokers in its Metadata"
            except (OSError, EOFError, AssertionError) as e:
                last = e
            if time.monotonic() > deadline:
                raise NodeError(f"node {self.node_id} not answering Metadata on {self.bootstrap} after {timeout}s "
                                f"(last: {last})\n{self.log_tail()}")
            time.sleep(0.1)

    def metadata(self, topics: list[str] | None = None) -> dict:
        return raw_metadata(self.host, self.port, topics=topics)


def parse_listeners(value: str) -> dict[str, tuple[str, int]]:
    """"PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093" -> {name: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, rest = item.split("://", 1)
        host, port = rest.rsplit(":", 1)
        out[name] = (host, int(port))
    return out


class Cluster:
    def __init__(self, nodes: list[SeedNode], s3_url: str):
        self.nodes, self.s3_url = nodes, s3_url
        self.cluster_id = re.search(r"cluster-id=([A-Za-z0-9_-]+)", s3_url).group(1)

    def running(self) -> list[SeedNode]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def metadata(self, topics: list[str] | None = None, via: SeedNode | None = None) -> dict:
        """Metadata from `via`, else from the first running node that answers."""
        last = None
        for n in [via] if via else self.running():
            try:
                return n.metadata(topics)
            except (OSError, EOFError) as e:
                last = e
        raise AssertionError(f"no node answered Metadata ({last})")

    def leaders(self, topic: str, via: SeedNode | None = None) -> dict[int, tuple[int, int]]:
        """partition -> (leader, leader epoch); {} while the topic is unknown."""
        t = self.metadata([topic], via)["topics"].get(topic)
        if t is None or t["error"] != 0:
            return {}
        return {p: (v["leader"], v["epoch"]) for p, v in t["partitions"].items()}

    def broker_config(self, key: str, node_id: int = 0) -> str | None:
        from confluent_kafka.admin import ConfigResource, ResourceType

        a = admin_client()
        res = ConfigResource(ResourceType.BROKER, str(node_id))
        entries = a.describe_configs([res], request_timeout=15)[res].result(timeout=20)
        e = entries.get(key)
        return None if e is None else e.value


def admin_client():
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": BOOTSTRAP, "broker.address.family": "v4"})


def silt_home(root: Path) -> Path:
    """The directory the printed lines are run in ("navigate to the directory where your
    Silt repository is located"): this repository's bin/, and .build/release/silt pointing
    at $SILT_BIN, so the lines run the binary under test even where a wrapper is started
    without SILT_BIN in its environment."""
    home = root / "silt-home"
    (home / ".build" / "release").mkdir(parents=True)
    (home / "bin").symlink_to(REPO_ROOT / "bin", target_is_directory=True)
    (home / ".build" / "release" / "silt").symlink_to(SILT_BIN.resolve())
    return home


def admin_tool(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(home / "bin" / "automq-kafka-admin.sh"), *args], capture_output=True, text=True,
                          timeout=120, cwd=home, env=dict(os.environ, SILT_BIN=str(SILT_BIN)))


def generate_s3_url(home: Path, moto: dict) -> str:
    r = admin_tool(home, "generate-s3-url", f"--s3-access-key={moto['AWS_ACCESS_KEY_ID']}",
                   f"--s3-secret-key={moto['AWS_SECRET_ACCESS_KEY']}", "--s3-region=us-east-1",
                   f"--s3-endpoint={moto['S3_ENDPOINT']}", "--s3-data-bucket=silt-data",
                   "--s3-ops-bucket=silt-ops", "--s3-path-style=true")
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^(s3://\S+)$", r.stdout, re.M)
    assert m, r.stdout
    return m.group(1)


def generate_start_lines(home: Path, url: str, controller_hosts: list[str] = CONTROLLER_HOSTS,
                         broker_hosts: list[str] = BROKER_ONLY_HOSTS, *extra: str, nodes: int = 5) -> list[str]:
    r = admin_tool(home, "generate-start-command", f"--s3-url={url}",
                   "--controller-list=" + ";".join(f"{h}:{CONTROLLER_PORT}" for h in controller_hosts),
                   "--broker-list=" + ";".join(f"{h}:{BROKER_PORT}" for h in broker_hosts), *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line.strip() for line in r.stdout.splitlines() if line.startswith("bin/kafka-server-start.sh")]
    assert len(lines) == nodes, r.stdout
    return lines


@contextlib.contextmanager
def seed_nodes(root: Path, hosts: list[str], controllers: int, *options: str,
               buckets: list[str] = ["silt-data", "silt-ops"], extra=lambda node_id, moto: {}):
    """A cluster's nodes, not started: moto (`buckets`, SigV4), generate-s3-url, and
    generate-start-command with `hosts[:controllers]` as controllers and the rest as brokers
    (plus `options`); one SeedNode per printed line, run as printed plus log.dirs and
    `extra(node_id, moto)` as further --override flags. Yields (nodes, home, s3 url, moto env);
    at the end every node is killed (a paused one too), moto stopped and the data directories
    (each may hold a 2 GiB WAL file) deleted; the logs stay, beside log.dirs."""
    taken = [f"{h}:{p}" for h in hosts for p in (BROKER_PORT, CONTROLLER_PORT) if tcp_accepts_on(h, p)]
    if taken:
        pytest.fail(f"something already listens on {', '.join(taken)} (a tools/start node?); "
                    "the cluster's start lines need these addresses")
    moto, moto_pid = start_moto(root / "moto", buckets)
    nodes: list[SeedNode] = []
    try:
        home = silt_home(root)
        url = generate_s3_url(home, moto)
        printed = generate_start_lines(home, url, hosts[:controllers], hosts[controllers:], *options, nodes=len(hosts))
        lines = [line + "".join(f" --override {shlex.quote(f'{k}={v}')}" for k, v in extra(i, moto).items())
                 for i, line in enumerate(printed)]
        nodes = [SeedNode(root / f"node{i}", line, home) for i, line in enumerate(lines)]
        yield nodes, home, url, moto
    finally:
        for n in nodes:
            n.kill()
        stop_moto(moto_pid)
        for n in nodes:
            shutil.rmtree(n.data_dir, ignore_errors=True)


@contextlib.contextmanager
def five_nodes(root: Path, buckets: list[str] = ["silt-data", "silt-ops"], extra=lambda node_id, moto: {}):
    """The five printed start lines (`seed_nodes` on HOSTS, three controllers that are brokers
    too), started; yields (Cluster, moto env)."""
    with seed_nodes(root, HOSTS, 3, buckets=buckets, extra=extra) as (nodes, _, url, moto):
        expected = {i: ({"broker", "controller"} if i < 3 else {"broker"}) for i in range(5)}
        assert {n.node_id: n.roles for n in nodes} == expected, [n.line for n in nodes]
        t0 = time.monotonic()
        for n in nodes:          # controllers first, as the tool's TIPS say
            n.spawn()
        for n in nodes:
            n.wait_ready(START_TIMEOUT_S)
        print(f"five nodes serving {time.monotonic() - t0:.1f}s after start")
        yield Cluster(nodes, url), moto


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with five_nodes(tmp_path_factory.mktemp("cluster")) as (c, _):
        yield c


@pytest.fixture(autouse=True)
def logs_on_failure(request, cluster):
    yield
    if any(getattr(getattr(request.node, "rep_" + w, None), "failed", False) for w in ("setup", "call")):
        for n in cluster.nodes:
            print(f"\n===== node {n.node_id}\n{n.log_tail(60)}")


def tcp_accepts_on(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def seed_topic(cluster) -> str:
    create_topic(TOPIC)
    return TOPIC


def create_topic(name: str, partitions: int = PARTITIONS) -> None:
    from confluent_kafka.admin import NewTopic

    a = admin_client()
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                         operation_timeout=30, request_timeout=30)
    fs[name].result(timeout=40)


def wait_topic_led(cluster: Cluster, topic: str, partitions: int = PARTITIONS, timeout: float = PROPAGATION_S,
                   nodes: list[SeedNode] | None = None) -> dict[int, tuple[int, int]]:
    """Wait until every node in `nodes` (default: all running) shows `partitions` partitions,
    each with a leader, and all agree on (leader, epoch); returns that view."""
    views = {}

    def agreed():
        views.clear()
        for n in nodes or cluster.running():
            try:
                views[n.node_id] = cluster.leaders(topic, via=n)
            except (OSError, EOFError, AssertionError) as e:
                views[n.node_id] = repr(e)
        first = next(iter(views.values()))
        return (isinstance(first, dict) and len(first) == partitions and all(l >= 0 for l, _ in first.values())
                and all(v == first for v in views.values()))
    wait_until(agreed, timeout, lambda: f"{topic}: every node shows {partitions} led partitions and the same "
                                        f"(leader, epoch); per node: {views}")
    return next(iter(views.values()))


# ---------------------------------------------------------------- the seed flow

def test_each_node_binds_only_its_listeners(cluster):
    for n in cluster.nodes:
        got = tcp_listeners_of(process_tree(n.proc.pid))
        assert got == set(n.listeners.values()), \
            f"node {n.node_id} listens on {sorted(got)}; its listeners are {n.overrides['listeners']}"


def test_every_node_lists_all_five_brokers(cluster):
    want = {n.node_id: n.advertised["PLAINTEXT"] for n in cluster.nodes}
    assert want == {i: (HOSTS[i], BROKER_PORT) for i in range(5)}
    seen = {}

    def all_listed():
        for n in cluster.nodes:
            md = n.metadata(topics=[])
            seen[n.node_id] = (md["brokers"], md["cluster_id"])
        return all(b == want and c == cluster.cluster_id for b, c in seen.values())
    wait_until(all_listed, PROPAGATION_S, lambda: f"Metadata (brokers, cluster id) per node: {seen}; "
                                                  f"want {want}, {cluster.cluster_id}")


def test_topic_leaders_spread_over_the_brokers(cluster, seed_topic):
    leaders = wait_topic_led(cluster, seed_topic)
    distinct = {l for l, _ in leaders.values()}
    assert distinct <= set(range(5)), leaders
    assert len(distinct) >= 4, f"10 partitions led by only {sorted(distinct)}: {leaders}"
    assert all(e >= 0 for _, e in leaders.values()), leaders
    # Only the leader serves a partition; every other broker answers NOT_LEADER_OR_FOLLOWER.
    answers = {n.node_id: raw_list_offsets(n.host, n.port, seed_topic, range(PARTITIONS)) for n in cluster.nodes}
    wrong = {(n, p): answers[n][p] for n in answers for p in range(PARTITIONS)
             if answers[n][p][0] != (NONE if leaders[p][0] == n else NOT_LEADER_OR_FOLLOWER)}
    assert not wrong, f"ListOffsets (node, partition) -> (error, offset) where the leader should answer 0 and " \
                      f"the others {NOT_LEADER_OR_FOLLOWER}: {wrong}; leaders {leaders}"


def test_three_clients_produce_and_read_back_every_acked_record(cluster, seed_topic):
    acked: dict[tuple[int, int], bytes] = {}
    acked.update(produce_confluent(seed_topic, 200, "ck"))
    acked.update(produce_kafka_python(seed_topic, 200, "kp"))
    acked.update(produce_aiokafka(seed_topic, 200, "aio"))
    assert len(acked) == 600, "two records acknowledged at the same partition and offset"
    ends = {p: max(o for pp, o in acked if pp == p) + 1 for p, _ in acked}
    assert set(ends) == set(range(PARTITIONS))
    # Only these producers wrote to the topic: every offset below an end is one of theirs.
    for name, read in (("confluent-kafka", read_confluent), ("kafka-python", read_kafka_python),
                       ("aiokafka", read_aiokafka)):
        got = read(seed_topic, ends)
        missing = sorted(k for k in acked if k not in got)
        wrong = sorted(k for k in acked if k in got and got[k] != acked[k])
        extra = sorted(k for k in got if k not in acked)
        assert not (missing or wrong or extra), (
            f"{name} read {len(got)} records; acked {len(acked)}: missing {missing[:5]} wrong {wrong[:5]} "
            f"unacked {extra[:5]}")


def test_group_coordinator_is_the_offsets_partition_leader(cluster, seed_topic):
    produce_confluent(seed_topic, 100, "grp")   # this test does not depend on the one before
    # __consumer_offsets is created on the first FindCoordinator, as in Kafka.
    probe = cluster.nodes[0]
    wait_until(lambda: raw_find_coordinator(probe.host, probe.port, "silt-probe")["error"] == 0, PROPAGATION_S,
               "FindCoordinator answers (the offsets topic exists)")
    configured = cluster.broker_config("offsets.topic.num.partitions")
    assert configured is not None, "node 0 does not report offsets.topic.num.partitions"
    n_offsets = int(configured)
    offsets_leaders = wait_topic_led(cluster, "__consumer_offsets", n_offsets)
    group, part = next((g, offsets_partition_for(g, n_offsets)) for g in (f"cluster-group-{i}" for i in range(1000))
                       if offsets_leaders[offsets_partition_for(g, n_offsets)][0] != 0)
    leader = offsets_leaders[part][0]
    answers = {}

    def every_node_names_the_leader():
        for n in cluster.nodes:
            answers[n.node_id] = raw_find_coordinator(n.host, n.port, group)
        return all(a == {"error": 0, "node_id": leader, "host": HOSTS[leader], "port": BROKER_PORT}
                   for a in answers.values())
    wait_until(every_node_names_the_leader, PROPAGATION_S,
               lambda: f"group {group} -> __consumer_offsets/{part} led by {leader}; FindCoordinator per node: {answers}")

    # The three members share the topic and read each record once.
    lo_hi = partition_watermarks(seed_topic)
    expected = {(p, o) for p, (lo, hi) in lo_hi.items() for o in range(lo, hi)}
    assert all(hi > lo for lo, hi in lo_hi.values()), lo_hi
    reads, assigned, ever, described = read_as_group(seed_topic, group, expected, members=3)
    assert all(ever), f"a member never got partitions: {ever}"
    assert sorted(p for a in assigned for p in a) == list(range(PARTITIONS)), assigned
    doubled = sorted(k for k, v in reads.items() if v > 1)
    assert not doubled, f"{len(doubled)} records read twice, e.g. {doubled[:5]}"
    assert set(reads) == expected, sorted(set(reads) ^ expected)[:10]
    assert described.coordinator.id == leader, (described.coordinator, leader)
    assert len(described.members) == 3, described.members


def partition_watermarks(topic: str, bootstrap: str = BOOTSTRAP, partitions: int = PARTITIONS) -> dict[int, tuple[int, int]]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "group.id": "cluster-watermarks"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15) for p in range(partitions)}
    finally:
        c.close()


def read_as_group(topic: str, group: str, expected: set, members: int, timeout: float = 60.0,
                  bootstrap: str = BOOTSTRAP):
    """`members` confluent-kafka consumers subscribe to `topic` in `group` and read until every
    (partition, offset) in `expected` was read and each member holds partitions; each commits
    what it read before its next poll (so a rebalance never hands a read record to another).
    Returns (reads: Counter of (partition, offset), current assignments, every partition each
    member ever held, DescribeGroups of the group while its members are in it)."""
    from confluent_kafka import Consumer, KafkaError

    from confluent_kafka.admin import AdminClient

    assigned: list[set[int]] = [set() for _ in range(members)]
    ever: list[set[int]] = [set() for _ in range(members)]
    reads = collections.Counter()
    consumers = []
    for i in range(members):
        def on_assign(c, parts, i=i):
            assigned[i] = {tp.partition for tp in parts}
            ever[i] |= assigned[i]

        def on_revoke(c, parts, i=i):
            assigned[i] = set()
        c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "group.id": group,
                      "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 10000})
        c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        consumers.append(c)
    try:
        deadline = time.monotonic() + timeout
        while not (set(reads) >= expected and all(assigned)):
            assert time.monotonic() < deadline, (
                f"group {group} after {timeout}s: read {len(set(reads) & expected)} of {len(expected)}; "
                f"assignments {assigned}")
            for c in consumers:
                msgs = c.consume(num_messages=1000, timeout=0.1)
                for m in msgs:
                    if m.error():
                        assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                        continue
                    reads[(m.partition(), m.offset())] += 1
                if any(not m.error() for m in msgs):
                    c.commit(asynchronous=False)   # before the next poll can revoke
        final = [set(a) for a in assigned]     # close() revokes them
        a = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
        described = a.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    finally:
        for c in consumers:
            c.close()
    return reads, final, ever, described


# ---------------------------------------------------------------- restarts under load

class Load:
    """An idempotent acks=all confluent-kafka producer in a thread: values `seq-<n>` round
    robin over the partitions, ~`rate` records/s. Keeps seq -> (partition, offset) of every
    acknowledged record, the delivery errors and the client's error_cb errors."""

    def __init__(self, topic: str, rate: int = 1000, bootstrap: str = BOOTSTRAP, partitions: int = PARTITIONS):
        self.topic, self.rate, self.bootstrap, self.partitions = topic, rate, bootstrap, partitions
        self.acked: dict[int, tuple[int, int]] = {}
        self.delivery_errors: list = []
        self.client_errors: list = []
        self.sent = 0
        self.unflushed = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_delivery(self, err, msg):
        if err is not None:
            self.delivery_errors.append(err)
            return
        self.acked[int(msg.value()[4:])] = (msg.partition(), msg.offset())

    def _run(self):
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "broker.address.family": "v4", "enable.idempotence": True,
                      "acks": "all", "linger.ms": 5, "message.timeout.ms": 120_000,
                      "error_cb": self.client_errors.append})
        t0 = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            while self.sent < due:
                p.produce(self.topic, value=b"seq-%d" % self.sent, partition=self.sent % self.partitions,
                          on_delivery=self._on_delivery)
                self.sent += 1
            p.poll(0.02)
            time.sleep(0.02)
        self.unflushed = p.flush(60)

    def start(self) -> "Load":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(90)
        assert not self._thread.is_alive(), "the producer did not finish its flush"

    def acked_on(self, partitions) -> int:
        return sum(1 for p, _ in list(self.acked.values()) if p in partitions)

    def wait_acks(self, more: int, partitions=None, timeout: float = 30.0, what: str = "") -> None:
        partitions = range(self.partitions) if partitions is None else partitions
        base = self.acked_on(partitions)
        wait_until(lambda: self.acked_on(partitions) >= base + more, timeout,
                   lambda: f"{more} more acks on partitions {list(partitions)} {what} "
                           f"(got {self.acked_on(partitions) - base}; errors {self.delivery_errors[-3:]} "
                           f"{self.client_errors[-3:]})")

    def verify(self) -> None:
        """Nothing acknowledged lost (each acked seq is at its acked partition/offset),
        nothing written twice, every error retriable and none fatal."""
        assert self.unflushed == 0, f"{self.unflushed} records still unacknowledged after the final flush"
        fatal = [e for e in self.delivery_errors + self.client_errors if e.fatal()]
        assert not fatal, f"fatal producer errors: {fatal[:5]}"
        final = [e for e in self.delivery_errors if not e.retriable()]
        assert not final, f"{len(final)} records failed with non-retriable errors, e.g. {final[:5]}"
        ends = partition_watermarks(self.topic, self.bootstrap, self.partitions)
        read = read_confluent(self.topic, {p: hi for p, (_, hi) in ends.items()}, bootstrap=self.bootstrap)
        at = {k: int(v[4:]) for k, v in read.items()}
        lost = sorted(s for s, k in self.acked.items() if at.get(k) != s)
        counts = collections.Counter(at.values())
        doubled = sorted(s for s, c in counts.items() if c > 1)
        print(f"{self.topic}: {self.sent} sent, {len(self.acked)} acked, {len(read)} read, "
              f"{len(self.delivery_errors)} delivery errors, {len(self.client_errors)} client errors "
              f"({collections.Counter(str(e.code()) for e in self.client_errors)})")
        assert not lost, f"{len(lost)} acknowledged records lost or moved, e.g. seq {lost[:5]} at " \
                         f"{[(self.acked[s], at.get(self.acked[s])) for s in lost[:5]]}"
        assert not doubled, f"{len(doubled)} records written twice, e.g. seq {doubled[:5]}"


def test_rolling_restart_under_idempotent_load_loses_and_doubles_nothing(cluster):
    topic = "cluster-rolling"
    create_topic(topic)
    wait_topic_led(cluster, topic)
    load = Load(topic).start()
    try:
        load.wait_acks(200, what="before the restarts")
        for n in cluster.nodes:
            t0 = time.monotonic()
            rc = n.stop(STOP_TIMEOUT_S)
            assert rc == 0, f"node {n.node_id} exited {rc} on SIGTERM\n{n.log_tail(40)}"
            stopped = time.monotonic() - t0
            # Controlled shutdown moved its partitions: all are led, by the others.
            down = wait_topic_led(cluster, topic, timeout=15)
            assert all(l != n.node_id for l, _ in down.values()), f"node {n.node_id} stopped still leading: {down}"
            load.wait_acks(100, what=f"while node {n.node_id} is down")
            n.start(START_TIMEOUT_S)
            # An operator moves on once the node is back and every partition has a leader.
            wait_topic_led(cluster, topic, timeout=30)
            load.wait_acks(100, what=f"after node {n.node_id} restarted")
            print(f"node {n.node_id}: stopped in {stopped:.1f}s, back and led in {time.monotonic() - t0:.1f}s")
    finally:
        load.stop()
    load.verify()


def reassign_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO_ROOT / "bin" / "kafka-reassign-partitions.sh"), "--bootstrap-server", BOOTSTRAP, *args],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, SILT_BIN=str(SILT_BIN)))


def release_times_ms(cluster: Cluster, topic: str) -> list[int]:
    """What the old leaders logged for each release of `topic`'s partitions: stop appends,
    commit the tail, hand over (Broker+Moves.swift)."""
    out = []
    for n in cluster.nodes:
        for line in n.log_text().splitlines():
            if "partition released" in line and f"topic={topic}" in line:
                m = re.search(r"moved to broker \d+ in (\d+) ms", line)
                if m:
                    out.append(int(m.group(1)))
    return out


def test_reassignment_under_load_moves_partitions_and_loses_nothing(cluster, tmp_path):
    topic = "cluster-moves"
    create_topic(topic)
    wait_topic_led(cluster, topic)
    load = Load(topic).start()
    moves = []
    try:
        load.wait_acks(200, what="before the moves")
        for i in range(6):
            partition = (3 * i) % PARTITIONS
            src = cluster.leaders(topic)[partition][0]
            dst = (src + 1 + i % 4) % len(cluster.nodes)
            plan = tmp_path / f"move-{i}.json"
            plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": partition,
                                                                       "replicas": [dst]}]}))
            t0 = time.monotonic()
            r = reassign_tool("--reassignment-json-file", str(plan), "--execute")
            assert r.returncode == 0, r.stdout + r.stderr
            wait_until(lambda: cluster.leaders(topic).get(partition, (-1, 0))[0] == dst, 20,
                       lambda: f"{topic}-{partition} led by {dst} (now {cluster.leaders(topic).get(partition)})", interval=0.02)
            moves.append(time.monotonic() - t0)
            load.wait_acks(20, partitions=[partition], what=f"on {topic}-{partition} at its new leader {dst}")
            v = reassign_tool("--reassignment-json-file", str(plan), "--verify")
            assert v.returncode == 0 and "is completed" in v.stdout, v.stdout + v.stderr
    finally:
        load.stop()
    load.verify()
    releases = sorted(release_times_ms(cluster, topic))
    print(f"moves, from the tool's start to the new leader in Metadata (s): {[round(m, 2) for m in moves]}; "
          f"releases on the old leader (ms): {releases}")
    assert len(releases) == len(moves), f"each move logged one release: {releases}"
    assert max(moves) < 10, f"a move took {max(moves):.1f}s"


def test_killed_broker_partitions_go_offline_and_return_to_it(cluster):
    topic = "cluster-kill"
    victim = cluster.nodes[4]
    assert victim.roles == {"broker"}
    create_topic(topic)
    before = wait_topic_led(cluster, topic)
    mine = sorted(p for p, (l, _) in before.items() if l == victim.node_id)
    others = sorted(set(before) - set(mine))
    assert mine, f"node 4 leads no partition of {topic}: {before}"
    reported = cluster.broker_config("broker.session.timeout.ms")
    session_ms = int(reported or KAFKA_BROKER_SESSION_TIMEOUT_MS)
    print(f"broker.session.timeout.ms: {reported} (Kafka default {KAFKA_BROKER_SESSION_TIMEOUT_MS})")
    survivors = [n for n in cluster.nodes if n is not victim]
    load = Load(topic).start()
    try:
        load.wait_acks(200, what="before the kill")
        killed_at = time.monotonic()
        victim.kill()
        views = {}

        def offline_everywhere():
            for n in survivors:
                md = n.metadata([topic])
                parts = md["topics"][topic]["partitions"]
                views[n.node_id] = ({p: v["leader"] for p, v in parts.items()}, sorted(md["brokers"]),
                                    {p: parts[p]["error"] for p in mine})
            return all(all(leaders[p] == -1 for p in mine) for leaders, _, _ in views.values())
        wait_until(offline_everywhere, session_ms / 1000 + OFFLINE_SLACK_S,
                   lambda: f"node 4's partitions {mine} offline (leader -1) on every node within "
                           f"broker.session.timeout.ms={session_ms} + {OFFLINE_SLACK_S}s; (leaders, brokers) per node: "
                           f"{views}", interval=0.1)
        print(f"node 4's partitions offline {time.monotonic() - killed_at:.1f}s after kill -9 "
              f"(partition error codes per node: {[e for _, _, e in views.values()]})")
        for leaders, brokers, _ in views.values():
            assert victim.node_id not in brokers, f"a fenced broker is still listed: {brokers}"
            assert all(leaders[p] == before[p][0] for p in others), f"other partitions moved: {leaders} vs {before}"
        # Partitions led elsewhere keep taking writes.
        load.wait_acks(100, partitions=others, what="while node 4 is down")
        victim.start(START_TIMEOUT_S)
        back = {}

        def led_by_it_again():
            back.update(cluster.leaders(topic, via=survivors[0]))
            return all(back[p][0] == victim.node_id and back[p][1] > before[p][1] for p in mine)
        wait_until(led_by_it_again, PROPAGATION_S,
                   lambda: f"partitions {mine} led by node 4 again with a newer epoch than {before}: {back}")
        load.wait_acks(100, partitions=mine, what="after node 4 returned")
    finally:
        load.stop()
    load.verify()


class CutOff:
    """Drops what `host` sends to the controllers' listeners (iptables on the loopback
    addresses: a node's controller traffic leaves from its listener address)."""

    def __init__(self, host: str):
        self.rules = [["INPUT", "-s", host, "-d", c, "-p", "tcp", "--dport", str(CONTROLLER_PORT), "-j", "DROP"]
                      for c in CONTROLLER_HOSTS]

    def __enter__(self):
        for r in self.rules:
            subprocess.run(["iptables", "-I", *r], check=True)
        return self

    def __exit__(self, *exc):
        for r in self.rules:
            subprocess.run(["iptables", "-D", *r], check=False)


def test_broker_cut_off_from_the_controllers_stops_acknowledging(cluster):
    """A stale leader cannot write: broker-only node 3, cut off from the controllers, is fenced
    by them after broker.session.timeout.ms, and by then refuses its own partitions' appends
    (its lease lapsed) though it still runs and still believes it leads. Healed, it heartbeats,
    is unfenced, and leads them again in a newer epoch. Under idempotent load: nothing
    acknowledged lost, nothing doubled."""
    from silt_helpers import raw_produce

    topic = "cluster-cut"
    victim = cluster.nodes[3]
    assert victim.roles == {"broker"}
    create_topic(topic)
    before = wait_topic_led(cluster, topic)
    mine = sorted(p for p, (l, _) in before.items() if l == victim.node_id)
    assert mine, f"node 3 leads no partition of {topic}: {before}"
    session_ms = int(cluster.broker_config("broker.session.timeout.ms") or KAFKA_BROKER_SESSION_TIMEOUT_MS)
    host, port = victim.host, BROKER_PORT
    # Raw appends carry negative sequence numbers: Load.verify reads them as records nobody
    # acknowledged through the load, each unique.
    stale = iter(range(-2, -10_000, -1))
    assert raw_produce(host, port, topic, mine[0], [b"seq--1"])["error"] == NONE
    survivors = [n for n in cluster.nodes if n is not victim]
    load = Load(topic).start()
    try:
        load.wait_acks(200, what="before the cut")
        with CutOff(host):
            cut_at = time.monotonic()

            def fenced_and_refusing():
                leaders = cluster.leaders(topic, via=survivors[0])
                offline = all(leaders[p][0] == -1 for p in mine)
                refused = raw_produce(host, port, topic, mine[0], [b"seq-%d" % next(stale)])["error"]
                return offline and refused == NOT_LEADER_OR_FOLLOWER
            wait_until(fenced_and_refusing, session_ms / 1000 + OFFLINE_SLACK_S,
                       f"node 3's partitions offline and node 3 refusing appends within {session_ms} ms + slack")
            print(f"node 3 fenced and refusing {time.monotonic() - cut_at:.1f}s after the cut")
            # Still cut off: every append stays refused; the other partitions keep going.
            for p in mine:
                assert raw_produce(host, port, topic, p, [b"seq-%d" % next(stale)])["error"] == NOT_LEADER_OR_FOLLOWER
            load.wait_acks(100, partitions=sorted(set(before) - set(mine)), what="while node 3 is cut off")
        back = {}

        def led_again():
            back.update(cluster.leaders(topic, via=survivors[0]))
            return all(back[p][0] == victim.node_id and back[p][1] > before[p][1] for p in mine)
        wait_until(led_again, PROPAGATION_S, lambda: f"partitions {mine} led by node 3 again in a newer epoch: {back}")
        wait_until(lambda: raw_produce(host, port, topic, mine[0], [b"seq-%d" % next(stale)])["error"] == NONE, PROPAGATION_S,
                   "node 3 takes appends again")
        load.wait_acks(100, partitions=mine, what="after node 3 returned")
    finally:
        load.stop()
    load.verify()


# ---------------------------------------------------------------- the three clients

def produce_confluent(topic: str, count: int, tag: str) -> dict[tuple[int, int], bytes]:
    from confluent_kafka import Producer

    acked, errors = {}, []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = msg.value()
    p = Producer({"bootstrap.servers": BOOTSTRAP, "broker.address.family": "v4", "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": 30_000})
    for i in range(count):
        p.produce(topic, value=f"{tag}-{i}".encode(), partition=i % PARTITIONS, on_delivery=cb)
    assert p.flush(40) == 0, "confluent-kafka: records unacknowledged after 40s"
    assert not errors, f"confluent-kafka delivery errors: {errors[:5]}"
    assert len(acked) == count
    return acked


def produce_kafka_python(topic: str, count: int, tag: str) -> dict[tuple[int, int], bytes]:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=BOOTSTRAP.split(","), acks="all", linger_ms=5, request_timeout_ms=30000,
                      max_block_ms=30000)
    try:
        futures = [(f"{tag}-{i}".encode(), p.send(topic, value=f"{tag}-{i}".encode(), partition=i % PARTITIONS))
                   for i in range(count)]
        p.flush(timeout=40)
        acked = {}
        for value, f in futures:
            md = f.get(timeout=30)
            acked[(md.partition, md.offset)] = value
    finally:
        p.close(timeout=10)
    assert len(acked) == count
    return acked


def produce_aiokafka(topic: str, count: int, tag: str) -> dict[tuple[int, int], bytes]:
    from aiokafka import AIOKafkaProducer

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP.split(","), acks="all", request_timeout_ms=30000)
        await asyncio.wait_for(p.start(), 30)
        try:
            futures = [(f"{tag}-{i}".encode(),
                        await p.send(topic, value=f"{tag}-{i}".encode(), partition=i % PARTITIONS))
                       for i in range(count)]
            acked = {}
            for value, f in futures:
                md = await asyncio.wait_for(f, 40)
                acked[(md.partition, md.offset)] = value
            return acked
        finally:
            await asyncio.wait_for(p.stop(), 30)
    acked = asyncio.run(run())
    assert len(acked) == count
    return acked


def read_confluent(topic: str, ends: dict[int, int], timeout: float = 60.0,
                   bootstrap: str = BOOTSTRAP) -> dict[tuple[int, int], bytes]:
    """Every record of `topic` below `ends[partition]`, by (partition, offset)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "group.id": "cluster-reader",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    got = {}
    try:
        c.assign([TopicPartition(topic, p, 0) for p, e in ends.items() if e > 0])
        deadline = time.monotonic() + timeout
        while len(got) < sum(ends.values()):
            assert time.monotonic() < deadline, f"confluent-kafka read {len(got)} of {sum(ends.values())} in {timeout}s"
            for m in c.consume(num_messages=5000, timeout=0.5):
                assert not m.error(), m.error()
                if m.offset() < ends[m.partition()]:
                    got[(m.partition(), m.offset())] = m.value()
    finally:
        c.close()
    return got


def read_kafka_python(topic: str, ends: dict[int, int], timeout: float = 60.0) -> dict[tuple[int, int], bytes]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP.split(","), group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=30000)
    got = {}
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while len(got) < sum(ends.values()):
            assert time.monotonic() < deadline, f"kafka-python read {len(got)} of {sum(ends.values())} in {timeout}s"
            for tp, records in c.poll(timeout_ms=500).items():
                got.update({(tp.partition, r.offset): r.value for r in records if r.offset < ends[tp.partition]})
    finally:
        c.close()
    return got


def read_aiokafka(topic: str, ends: dict[int, int], timeout: float = 60.0) -> dict[tuple[int, int], bytes]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    async def run():
        c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP.split(","), group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=30000)
        await asyncio.wait_for(c.start(), 30)
        got = {}
        try:
            tps = [TopicPartition(topic, p) for p in ends]
            c.assign(tps)
            await asyncio.wait_for(c.seek_to_beginning(*tps), 30)
            deadline = time.monotonic() + timeout
            while len(got) < sum(ends.values()):
                assert time.monotonic() < deadline, f"aiokafka read {len(got)} of {sum(ends.values())} in {timeout}s"
                for tp, records in (await c.getmany(timeout_ms=500)).items():
                    got.update({(tp.partition, r.offset): r.value for r in records if r.offset < ends[tp.partition]})
        finally:
            await asyncio.wait_for(c.stop(), 30)
        return got
    return asyncio.run(run())
