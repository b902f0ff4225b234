"""Consumer groups and committed offsets (issue 6): the classic group protocol with real
clients (confluent-kafka, kafka-python, aiokafka, kcat -G), offsets in __consumer_offsets
surviving a restart, group administration, and Kafka's errors for bad group input."""
from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import Counter

import pytest

from silt_helpers import admin, client_conf, create_topic, produce_all, wait_until

# Kafka's own tests run with the initial rebalance delay at 0; a little of it still
# exercises the delayed first join.
GROUP_OVERRIDES = {"group.initial.rebalance.delay.ms": "200"}
FAST_HEARTBEATS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


@pytest.fixture
def gnode(node_factory):
    return node_factory(GROUP_OVERRIDES)


def end_offsets(node, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(client_conf(node, **{"group.id": "end-offsets-probe"}))
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()


def committed_offsets(node, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets through the AdminClient (OffsetFetch)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    a = admin(node)   # held: a collected AdminClient never completes its futures
    result = a.list_consumer_group_offsets([req])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


# ------------------------------------------------------------ confluent-kafka groups

class GroupMember:
    """A confluent-kafka consumer in a thread that records what it processes and commits
    after processing (synchronously, and for revoked partitions before giving them up)."""

    def __init__(self, node, group: str, topic: str, strategy: str, name: str, seen: Counter, lock: threading.Lock,
                 **extra):
        from confluent_kafka import Consumer

        self.name, self.topic, self.seen, self.lock = name, topic, seen, lock
        self.processed: dict[tuple[str, int], int] = {}   # (topic, partition) → next offset
        self.commit_errors: list[str] = []
        self.count = 0
        self.revokes = 0
        self.consumer = Consumer(client_conf(node, **{
            "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "partition.assignment.strategy": strategy, "client.id": name, **FAST_HEARTBEATS, **extra}))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def commit(self, partitions=None) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        todo = [TopicPartition(t, p, o) for (t, p), o in self.processed.items()
                if partitions is None or (t, p) in partitions]
        if not todo:
            return
        try:
            self.consumer.commit(offsets=todo, asynchronous=False)
        except KafkaException as e:
            self.commit_errors.append(str(e))

    def on_revoke(self, consumer, partitions) -> None:
        self.revokes += 1
        self.commit({(tp.topic, tp.partition) for tp in partitions})
        for tp in partitions:
            self.processed.pop((tp.topic, tp.partition), None)

    def run(self) -> None:
        self.consumer.subscribe([self.topic], on_revoke=self.on_revoke, on_lost=self.on_revoke)
        while not self.stop.is_set():
            msgs = self.consumer.consume(num_messages=500, timeout=0.2)
            batch = [m for m in msgs if not m.error()]
            if not batch:
                continue
            with self.lock:
                for m in batch:
                    self.seen[m.value()] += 1
            self.count += len(batch)
            for m in batch:
                self.processed[(m.topic(), m.partition())] = m.offset() + 1
            self.commit()

    def start(self) -> "GroupMember":
        self.thread.start()
        return self

    def close(self) -> None:
        if self.stop.is_set():
            return
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), f"{self.name}'s poll loop is stuck"
        self.commit()
        self.consumer.close()   # LeaveGroup


def produce_in_background(node, topic: str, values: list[bytes], consumed, chunk: int = 1000,
                          pause: float = 0.15, lag_max: int = 5000) -> threading.Thread:
    """Produces `values` in chunks over several seconds, never more than `lag_max` ahead of
    the consumers, so the production is still running when members join and leave at
    consumption milestones."""
    def run():
        for i in range(0, len(values), chunk):
            deadline = time.monotonic() + 60
            while i - consumed() > lag_max and time.monotonic() < deadline:
                time.sleep(0.02)
            produce_all(node, topic, [(None, v, v, None) for v in values[i:i + chunk]])
            time.sleep(pause)

    t = threading.Thread(target=run, name="producer", daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_confluent_group_members_join_and_leave(gnode, strategy):
    """3 members on 6 partitions while 30,000 messages are produced; one leaves, another
    joins. Commits after processing and no crash: every message exactly once. A restarted
    group resumes at the committed offsets."""
    topic, group, total = f"grp-{strategy}", f"g-{strategy}", 30_000
    create_topic(gnode, topic, partitions=6)
    values = [f"m{i}".encode() for i in range(total)]
    seen, lock = Counter(), threading.Lock()

    def consumed() -> int:
        with lock:
            return len(seen)

    members = [GroupMember(gnode, group, topic, strategy, f"c{i}", seen, lock).start() for i in range(3)]
    try:
        producing = produce_in_background(gnode, topic, values, consumed)
        wait_until(lambda: consumed() >= total // 3, 60, "a third of the messages consumed")
        assert producing.is_alive(), "the member should leave while messages are produced"
        members[1].close()                      # a member leaves mid-stream
        assert members[1].count > 0
        wait_until(lambda: consumed() >= total // 2, 60, "half of the messages consumed")
        assert producing.is_alive(), "the member should join while messages are produced"
        members.append(GroupMember(gnode, group, topic, strategy, "c3", seen, lock).start())   # and one joins
        producing.join(120)
        assert not producing.is_alive()
        wait_until(lambda: consumed() >= total, 90, f"all {total} messages consumed")
    finally:
        for m in members:
            m.close()

    missing = [v for v in values if seen[v] == 0]
    assert not missing, f"{len(missing)} messages never consumed, e.g. {missing[:3]}"
    duplicates = {v: n for v, n in seen.items() if n > 1}
    errors = [e for m in members for e in m.commit_errors]
    assert not duplicates, f"{len(duplicates)} messages consumed twice (commit errors: {errors[:3]})"
    assert sum(seen.values()) == total
    assert members[3].count > 0, "the member that joined late got partitions"

    ends = end_offsets(gnode, topic, 6)
    assert committed_offsets(gnode, group, topic, 6) == ends

    # The group restarts: it resumes at the committed offsets and reads only what is new.
    more = [f"n{i}".encode() for i in range(3000)]
    produce_all(gnode, topic, [(None, v, v, None) for v in more])
    seen.clear()
    again = GroupMember(gnode, group, topic, strategy, "c-restart", seen, lock).start()
    wait_until(lambda: consumed() >= len(more), 60, "the new messages consumed after the restart")
    time.sleep(1)
    again.close()
    assert set(seen) == set(more) and sum(seen.values()) == len(more), "resumed at the committed offsets"


# -------------------------------------------------- other clients' consumer groups

def produce_numbered(node, topic: str, partitions: int, count: int) -> dict[int, int]:
    create_topic(node, topic, partitions=partitions)
    produce_all(node, topic, [(i % partitions, None, f"v{i}".encode(), None) for i in range(count)])
    ends = end_offsets(node, topic, partitions)
    assert sum(ends.values()) == count
    return ends


def test_kafka_python_group_commits(gnode):
    from kafka import KafkaConsumer

    ends = produce_numbered(gnode, "kp-topic", 3, 3000)
    c = KafkaConsumer("kp-topic", bootstrap_servers=gnode.bootstrap, group_id="kp-group", enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500)
    got = 0
    deadline = time.monotonic() + 60
    while got < 3000 and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=500).values():
            got += len(records)
        c.commit()
    c.commit()
    c.close()
    assert got == 3000
    assert committed_offsets(gnode, "kp-group", "kp-topic", 3) == ends


def test_aiokafka_group_commits(gnode):
    from aiokafka import AIOKafkaConsumer

    ends = produce_numbered(gnode, "aio-topic", 3, 3000)

    async def consume() -> int:
        c = AIOKafkaConsumer("aio-topic", bootstrap_servers=gnode.bootstrap, group_id="aio-group",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=6000, heartbeat_interval_ms=500)
        await c.start()
        got = 0
        try:
            deadline = time.monotonic() + 60
            while got < 3000 and time.monotonic() < deadline:
                for records in (await c.getmany(timeout_ms=500)).values():
                    got += len(records)
                await c.commit()
        finally:
            await c.stop()
        return got

    assert asyncio.run(consume()) == 3000
    assert committed_offsets(gnode, "aio-group", "aio-topic", 3) == ends


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
def test_kcat_balanced_consumer_commits(gnode):
    ends = produce_numbered(gnode, "kcat-topic", 3, 3000)
    out = subprocess.run(
        ["kcat", "-b", gnode.bootstrap, "-G", "kcat-group", "kcat-topic", "-e", "-q", "-f", "%s\n",
         "-X", "auto.offset.reset=earliest", "-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100",
         "-X", "broker.address.family=v4"],
        capture_output=True, timeout=90, check=True)
    lines = out.stdout.decode().split()
    assert sorted(lines) == sorted(f"v{i}" for i in range(3000))
    wait_until(lambda: committed_offsets(gnode, "kcat-group", "kcat-topic", 3) == ends, 15, "kcat's commits visible")


def test_static_member_restart_keeps_its_partitions(gnode):
    """KIP-345: a static member (group.instance.id) that restarts within its session takes
    its old place; the other member is not rebalanced."""
    create_topic(gnode, "static-topic", partitions=2)
    produce_all(gnode, "static-topic", [(i % 2, None, f"a{i}".encode(), None) for i in range(20)])
    seen, lock = Counter(), threading.Lock()
    adm = admin(gnode)
    a = GroupMember(gnode, "static-group", "static-topic", "range", "sa", seen, lock, **{"group.instance.id": "i-a"}).start()
    # a leads: the restart below is a follower's.
    wait_until(lambda: adm.describe_consumer_groups(["static-group"])["static-group"].result(timeout=30).state.name
               == "STABLE", 30, "the first member alone in a stable group")
    b = GroupMember(gnode, "static-group", "static-topic", "range", "sb", seen, lock, **{"group.instance.id": "i-b"}).start()

    def describe():
        return adm.describe_consumer_groups(["static-group"])["static-group"].result(timeout=30)

    def settled():
        d = describe()
        return (d.state.name == "STABLE" and len(d.members) == 2
                and all(len(m.assignment.topic_partitions) == 1 for m in d.members))

    wait_until(settled, 30, "both static members with one partition each")
    before = {m.group_instance_id: (m.member_id, m.assignment.topic_partitions[0].partition) for m in describe().members}
    revokes_before = a.revokes
    b.close()   # a static member leaves no LeaveGroup behind: its place waits for it
    b2 = GroupMember(gnode, "static-group", "static-topic", "range", "sb2", seen, lock, **{"group.instance.id": "i-b"}).start()
    produce_all(gnode, "static-topic", [(i % 2, None, f"b{i}".encode(), None) for i in range(20)])
    wait_until(lambda: all(seen[f"b{i}".encode()] for i in range(20)), 30, "both partitions consumed after the restart")
    after = {m.group_instance_id: (m.member_id, m.assignment.topic_partitions[0].partition) for m in describe().members}
    revokes_after = a.revokes
    a.close()
    b2.close()
    assert after["i-a"] == before["i-a"]
    assert after["i-b"][1] == before["i-b"][1], "the restarted member got its partition back"
    assert after["i-b"][0] != before["i-b"][0], "under a new member id"
    assert revokes_after == revokes_before, "the other member was not rebalanced"


# ------------------------------------------------------------------- durability

def test_committed_offsets_survive_restart(node_factory):
    from confluent_kafka import Consumer, TopicPartition

    node = node_factory(GROUP_OVERRIDES)
    produce_numbered(node, "durable-topic", 2, 200)
    c = Consumer(client_conf(node, **{"group.id": "durable-group", "enable.auto.commit": False}))
    c.commit(offsets=[TopicPartition("durable-topic", 0, 42, "meta-0"), TopicPartition("durable-topic", 1, 77)],
             asynchronous=False)
    c.close()
    node.restart()
    got = committed_offsets(node, "durable-group", "durable-topic", 2)
    assert got == {0: 42, 1: 77}
    c = Consumer(client_conf(node, **{"group.id": "durable-group"}))
    try:
        tps = c.committed([TopicPartition("durable-topic", 0)], timeout=30)
        assert tps[0].offset == 42 and tps[0].metadata == "meta-0", "commit metadata round-trips"
    finally:
        c.close()
    md = admin(node).list_topics(topic="__consumer_offsets", timeout=10).topics["__consumer_offsets"]
    assert len(md.partitions) == 50


# ---------------------------------------------------------------- administration

def test_list_describe_delete_groups(gnode):
    from confluent_kafka import ConsumerGroupState, KafkaException

    create_topic(gnode, "adm-topic", partitions=2)
    produce_all(gnode, "adm-topic", [(i % 2, None, b"x", None) for i in range(10)])
    seen, lock = Counter(), threading.Lock()
    member = GroupMember(gnode, "adm-group", "adm-topic", "range", "adm-c", seen, lock).start()
    wait_until(lambda: sum(seen.values()) >= 10, 30, "the member consumed")
    a = admin(gnode)

    listed = a.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(timeout=30)
    assert "adm-group" in {g.group_id for g in listed.valid}
    empty = a.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(timeout=30)
    assert "adm-group" not in {g.group_id for g in empty.valid}

    d = a.describe_consumer_groups(["adm-group"])["adm-group"].result(timeout=30)
    assert d.state == ConsumerGroupState.STABLE
    assert d.partition_assignor == "range"
    assert len(d.members) == 1 and d.members[0].client_id == "adm-c"
    assert sorted(tp.partition for tp in d.members[0].assignment.topic_partitions) == [0, 1]

    with pytest.raises(KafkaException) as busy:
        a.delete_consumer_groups(["adm-group"])["adm-group"].result(timeout=30)
    assert busy.value.args[0].name() == "NON_EMPTY_GROUP"
    member.close()
    wait_until(lambda: a.describe_consumer_groups(["adm-group"])["adm-group"].result(timeout=30).state
               == ConsumerGroupState.EMPTY, 30, "the group empty after its member left")
    a.delete_consumer_groups(["adm-group"])["adm-group"].result(timeout=30)
    assert committed_offsets(gnode, "adm-group", "adm-topic", 2) == {0: -1001, 1: -1001}
    with pytest.raises(KafkaException) as unknown:
        a.delete_consumer_groups(["adm-group"])["adm-group"].result(timeout=30)
    assert unknown.value.args[0].name() == "GROUP_ID_NOT_FOUND"
    md = a.list_topics(timeout=10)
    assert "__consumer_offsets" in md.topics

    # Only the coordinator writes its internal topic.
    from confluent_kafka import KafkaError, Producer

    errors = []
    p = Producer(client_conf(gnode, **{"acks": "all", "message.send.max.retries": 0}))
    p.produce("__consumer_offsets", key=b"junk", value=b"junk", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_EXCEPTION, errors


# ------------------------------------------------------ bad input, raw protocol

def raw_request(node, api_key: int, version: int, body: bytes) -> bytes:
    """Sends one request with a v1 header and returns the response body after the
    correlation id (both v0-header APIs here)."""
    client = b"raw-test"
    header = struct.pack(">hhih", api_key, version, 7, len(client)) + client
    frame = header + body
    with socket.create_connection((node.bootstrap.split(":")[0], int(node.bootstrap.split(":")[1])), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        data = recv_exact(s, size)
    assert struct.unpack(">i", data[:4])[0] == 7
    return data[4:]


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


def kstr(s: str) -> bytes:
    return struct.pack(">h", len(s)) + s.encode()


def offset_commit_v2(node, group: str, generation: int, member: str, topic: str, offset: int) -> int:
    body = kstr(group) + struct.pack(">i", generation) + kstr(member) + struct.pack(">q", -1)
    body += struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1) + struct.pack(">iq", 0, offset) + kstr("")
    resp = raw_request(node, 8, 2, body)
    # [topics: name, [partitions: index int32, error int16]]
    (n_topics,) = struct.unpack(">i", resp[:4])
    assert n_topics == 1
    name_len = struct.unpack(">h", resp[4:6])[0]
    rest = resp[6 + name_len:]
    n_parts, index, error = struct.unpack(">iih", rest[:10])
    assert n_parts == 1 and index == 0
    return error


def join_group_v1(node, group: str, session_timeout_ms: int) -> int:
    body = kstr(group) + struct.pack(">ii", session_timeout_ms, 30_000) + kstr("") + kstr("consumer")
    body += struct.pack(">i", 1) + kstr("range") + struct.pack(">i", 0)
    resp = raw_request(node, 11, 1, body)
    return struct.unpack(">h", resp[:2])[0]


def test_commit_with_unknown_generation_is_illegal_generation(gnode):
    create_topic(gnode, "bad-topic", partitions=1)
    produce_all(gnode, "bad-topic", [(0, None, b"x", None) for _ in range(5)])
    seen, lock = Counter(), threading.Lock()
    member = GroupMember(gnode, "bad-group", "bad-topic", "range", "bad-c", seen, lock).start()
    try:
        wait_until(lambda: sum(seen.values()) >= 5, 30, "the member consumed")
        a = admin(gnode)
        d = a.describe_consumer_groups(["bad-group"])["bad-group"].result(timeout=30)
        member_id = d.members[0].member_id
        assert offset_commit_v2(gnode, "bad-group", 999, member_id, "bad-topic", 3) == 22      # ILLEGAL_GENERATION
        assert offset_commit_v2(gnode, "bad-group", 999, "not-a-member", "bad-topic", 3) == 25  # UNKNOWN_MEMBER_ID
        assert offset_commit_v2(gnode, "no-such-group", 5, "m", "bad-topic", 3) == 22          # ILLEGAL_GENERATION
        assert offset_commit_v2(gnode, "bad-group", -1, "", "no-such-topic", 3) == 3           # UNKNOWN_TOPIC_OR_PARTITION
    finally:
        member.close()
    assert committed_offsets(gnode, "bad-group", "bad-topic", 1) == {0: 5}, "the rejected commits changed nothing"


def test_join_with_absurd_session_timeout_is_rejected(gnode):
    # As a client would, find the coordinator first: that creates __consumer_offsets, and
    # until it exists a group request gets COORDINATOR_NOT_AVAILABLE (15), as in Kafka.
    a = admin(gnode)
    a.describe_consumer_groups(["sess-group"])["sess-group"].result(timeout=30)
    wait_until(lambda: join_group_v1(gnode, "sess-group", 1) != 15, 30, "the group coordinator is up")
    assert join_group_v1(gnode, "sess-group", 1) == 26              # below group.min.session.timeout.ms
    assert join_group_v1(gnode, "sess-group", 3_600_000) == 26      # above group.max.session.timeout.ms
    assert join_group_v1(gnode, "sess-group", 10_000) == 0          # v1 has no MEMBER_ID_REQUIRED step
