"""KIP-848's consumer group protocol (issue 16, item 4): confluent-kafka consumers with
`group.protocol=consumer` get server-side assignments through ConsumerGroupHeartbeat, share
a topic partition by partition, rebalance when one leaves, and the group is described by
ConsumerGroupDescribe, ListGroups and DescribeGroups. A classic group and a consumer group
live side by side on the same coordinator, and neither kind of member can join the other."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from silt_helpers import admin, client_conf, create_topic, produce_all, wait_until

# The broker tells members how often to heartbeat; 1 s instead of Kafka's 5 s keeps the
# test short (a partition moves on the heartbeat after its owner released it).
# A small WAL: these tests write little, and a file per node stays until the run ends.
KIP848_OVERRIDES = {"group.consumer.heartbeat.interval.ms": "1000", "group.initial.rebalance.delay.ms": "0",
                    "s3.wal.capacity": str(64 << 20)}
PARTITIONS = 6


@pytest.fixture
def knode(node_factory):
    return node_factory(KIP848_OVERRIDES)


class Member:
    """A `group.protocol=consumer` consumer in a thread: counts every value it reads and
    commits after processing (and for revoked partitions before giving them up)."""

    def __init__(self, node, group: str, topic: str, name: str, seen: Counter, lock: threading.Lock, **extra):
        from confluent_kafka import Consumer

        self.name, self.topic, self.seen, self.lock = name, topic, seen, lock
        self.processed: dict[tuple[str, int], int] = {}
        self.consumer = Consumer(client_conf(node, **{
            "group.id": group, "group.protocol": "consumer", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "client.id": name, **extra}))
        self.assigned: set[int] = set()
        self.errors: list[str] = []
        self.lost = 0
        self.member_id: str | None = None   # read in the poll thread: memberid() waits for a running consume()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def commit(self, partitions=None) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        todo = [TopicPartition(t, p, o) for (t, p), o in self.processed.items() if partitions is None or (t, p) in partitions]
        if todo:
            try:
                self.consumer.commit(offsets=todo, asynchronous=False)
            except KafkaException as e:
                self.errors.append(str(e))

    def on_assign(self, consumer, partitions) -> None:
        self.assigned |= {tp.partition for tp in partitions}

    def on_revoke(self, consumer, partitions) -> None:
        self.commit({(tp.topic, tp.partition) for tp in partitions})
        self.drop(partitions)

    def on_lost(self, consumer, partitions) -> None:
        """Fenced or unknown to the coordinator: the partitions are gone, nothing to commit."""
        self.lost += len(partitions)
        self.drop(partitions)

    def drop(self, partitions) -> None:
        for tp in partitions:
            self.processed.pop((tp.topic, tp.partition), None)
            self.assigned.discard(tp.partition)

    def run(self) -> None:
        self.consumer.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost)
        while not self.stop.is_set():
            batch = [m for m in self.consumer.consume(num_messages=500, timeout=0.2) if not m.error()]
            self.member_id = self.consumer.memberid()
            if not batch:
                continue
            with self.lock:
                for m in batch:
                    if m.partition() not in self.assigned:
                        self.errors.append(f"{self.name} read partition {m.partition()} it does not own")
                    self.seen[m.value()] += 1
            for m in batch:
                self.processed[(m.topic(), m.partition())] = m.offset() + 1
            self.commit()

    def start(self) -> "Member":
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), f"{self.name}'s poll loop is stuck"
        self.commit()
        self.consumer.close()   # ConsumerGroupHeartbeat with member epoch -1


def settled(members: list[Member], partitions: int = PARTITIONS) -> bool:
    """Every partition owned by exactly one member."""
    owned = [p for m in members for p in m.assigned]
    return sorted(owned) == list(range(partitions))


def test_kip848_group_shares_partitions_and_rebalances(knode):
    """3 consumer-protocol members on 6 partitions: 2 each, every record read exactly once;
    one leaves: the other 2 take over its partitions (3 each) and read the rest once."""
    from confluent_kafka import ConsumerGroupState, ConsumerGroupType

    topic, group = "kip848", "kip848-group"
    create_topic(knode, topic, PARTITIONS)
    first = [b"a%05d" % i for i in range(3000)]
    produce_all(knode, topic, [(p % PARTITIONS, v, v, None) for p, v in enumerate(first)])
    seen, lock = Counter(), threading.Lock()
    members = [Member(knode, group, topic, f"m{i}", seen, lock).start() for i in range(3)]
    try:
        wait_until(lambda: settled(members) and all(len(m.assigned) == 2 for m in members), 30,
                   "3 members with 2 partitions each")
        wait_until(lambda: len(seen) == len(first), 30, "every record of the first batch read")

        a = admin(knode)
        d = a.describe_consumer_groups([group])[group].result(timeout=10)
        assert d.type == ConsumerGroupType.CONSUMER
        assert d.state == ConsumerGroupState.STABLE
        assert sorted(len(m.assignment.topic_partitions) for m in d.members) == [2, 2, 2]
        listed = a.list_consumer_groups().result(timeout=10)
        assert [(g.group_id, g.type) for g in listed.valid if g.group_id == group] == [(group, ConsumerGroupType.CONSUMER)]

        leaving = members.pop()
        leaving.close()
        wait_until(lambda: settled(members) and all(len(m.assigned) == 3 for m in members), 30,
                   "the 2 remaining members with 3 partitions each")
        second = [b"b%05d" % i for i in range(3000)]
        produce_all(knode, topic, [(p % PARTITIONS, v, v, None) for p, v in enumerate(second)])
        wait_until(lambda: len(seen) == len(first) + len(second), 30, "every record of the second batch read")
        time.sleep(0.5)
        with lock:
            doubled = {v: n for v, n in seen.items() if n != 1}
        assert not doubled, f"records read more than once: {list(doubled.items())[:5]}"
        assert all(not m.errors for m in members + [leaving]), [m.errors for m in members + [leaving]]
    finally:
        for m in members:
            m.close()


def test_kip848_and_classic_groups_coexist(knode):
    """A classic group and a consumer-protocol group consume on the same node; a classic
    member cannot join the consumer group while it has members (INCONSISTENT_GROUP_PROTOCOL)."""
    from confluent_kafka import Consumer, KafkaException

    topic = "coexist"
    create_topic(knode, topic, 2)
    produce_all(knode, topic, [(i % 2, b"v%d" % i, b"v%d" % i, None) for i in range(100)])

    def drain(c: Consumer, n: int) -> int:
        got, deadline = 0, time.monotonic() + 30
        while got < n and time.monotonic() < deadline:
            got += len([m for m in c.consume(num_messages=100, timeout=0.5) if not m.error()])
        return got

    modern = Consumer(client_conf(knode, **{"group.id": "g-consumer", "group.protocol": "consumer",
                                            "auto.offset.reset": "earliest"}))
    classic = Consumer(client_conf(knode, **{"group.id": "g-classic", "auto.offset.reset": "earliest",
                                             "session.timeout.ms": 6000}))
    intruder = Consumer(client_conf(knode, **{"group.id": "g-consumer", "auto.offset.reset": "earliest",
                                              "session.timeout.ms": 6000}))
    errors: list[str] = []
    try:
        modern.subscribe([topic])
        classic.subscribe([topic])
        assert drain(modern, 100) == 100
        assert drain(classic, 100) == 100
        intruder.subscribe([topic], on_assign=lambda c, ps: errors.append("assigned"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not errors:
            try:
                for m in intruder.consume(num_messages=10, timeout=0.5):
                    if m.error():
                        errors.append(m.error().name())
            except KafkaException as e:
                errors.append(e.args[0].name())
        assert "INCONSISTENT_GROUP_PROTOCOL" in errors, errors
        a = admin(knode)
        listed = a.list_consumer_groups().result(timeout=10)
        types = {g.group_id: g.type.name for g in listed.valid}
        assert types.get("g-consumer") == "CONSUMER" and types.get("g-classic") == "CLASSIC", (types, listed.errors)
    finally:
        for c in (intruder, modern, classic):
            c.close()


@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "kill9"])
def test_kip848_members_carry_on_after_the_coordinator_restarts(knode, graceful):
    """The group's state is in __consumer_offsets: after a restart (SIGTERM, or kill -9 with
    the WAL recovered) the coordinator loads it, the members' heartbeats are accepted with
    their member ids and epochs, nobody loses a partition, and every record is read once."""
    topic, group = f"kip848-restart-{graceful}", f"kip848-restart-group-{graceful}"
    create_topic(knode, topic, 4)
    first = [b"r%05d" % i for i in range(1000)]
    produce_all(knode, topic, [(p % 4, v, v, None) for p, v in enumerate(first)])
    seen, lock = Counter(), threading.Lock()
    members = [Member(knode, group, topic, f"r{i}", seen, lock).start() for i in range(2)]
    try:
        wait_until(lambda: len(seen) == len(first) and settled(members, 4) and all(len(m.assigned) == 2 for m in members),
                   30, "the first batch read by 2 members, 2 partitions each")
        time.sleep(1)   # the last commits land
        ids = [m.member_id for m in members]
        owned = [set(m.assigned) for m in members]
        assert all(ids) and len(set(ids)) == 2, ids
        knode.restart(graceful=graceful)
        second = [b"s%05d" % i for i in range(1000)]
        produce_all(knode, topic, [(p % 4, v, v, None) for p, v in enumerate(second)])
        wait_until(lambda: len(seen) == len(first) + len(second), 60, "the second batch read after the restart")
        assert [m.member_id for m in members] == ids, "member ids changed across the restart"
        assert [set(m.assigned) for m in members] == owned, "partitions moved across the restart"
        assert sum(m.lost for m in members) == 0, "members were fenced or forgotten by the restarted coordinator"
        with lock:
            doubled = {v: n for v, n in seen.items() if n != 1}
        assert not doubled, f"records read again after the restart: {list(doubled.items())[:5]}"
        assert not [e for m in members for e in m.errors if "does not own" in e]
        # The coordinator describes the same members, Stable.
        a = admin(knode)   # kept: a collected AdminClient never completes its futures
        desc = a.describe_consumer_groups([group])[group].result(30)
        assert sorted(m.member_id for m in desc.members) == sorted(ids)
        assert str(desc.state).endswith("STABLE"), desc.state
    finally:
        for m in members:
            m.close()


def test_kip848_regex_subscription(knode):
    """A consumer-protocol member subscribing by regex (SubscribedTopicRegex) gets the
    partitions of every matching topic, and only those."""
    from confluent_kafka import Consumer

    for name, parts in (("rx-a", 2), ("rx-b", 1), ("other", 1)):
        create_topic(knode, name, parts)
        produce_all(knode, name, [(p % parts, b"%s-%d" % (name.encode(), p), b"%s-%d" % (name.encode(), p), None)
                                  for p in range(20)])
    c = Consumer(client_conf(knode, **{"group.id": "rx-group", "group.protocol": "consumer",
                                       "auto.offset.reset": "earliest"}))
    try:
        c.subscribe(["^rx-.*"])
        got: set[bytes] = set()
        deadline = time.monotonic() + 30
        while len(got) < 40 and time.monotonic() < deadline:
            got |= {m.value() for m in c.consume(num_messages=100, timeout=0.5) if not m.error()}
        assert len(got) == 40 and all(v.startswith(b"rx-") for v in got), sorted(got)[:5]
        assert sorted((tp.topic, tp.partition) for tp in c.assignment()) == [("rx-a", 0), ("rx-a", 1), ("rx-b", 0)]
    finally:
        c.close()


def test_kip848_static_member_comes_back_to_its_partitions(knode):
    """A static member (group.instance.id) that closes leaves with epoch -2: its partitions
    are not given to the others, and its next incarnation gets them back."""
    from confluent_kafka import Consumer

    create_topic(knode, "static", 4)

    def member(instance: str) -> Consumer:
        c = Consumer(client_conf(knode, **{"group.id": "static-group", "group.protocol": "consumer",
                                           "group.instance.id": instance, "auto.offset.reset": "earliest"}))
        c.subscribe(["static"])
        return c

    def owned(c: Consumer) -> list[int]:
        return sorted(tp.partition for tp in c.assignment())

    def poll_until(consumers, predicate, what: str) -> None:
        deadline = time.monotonic() + 20
        while not predicate():
            assert time.monotonic() < deadline, what
            for c in consumers:
                c.poll(0.1)

    a, b = member("ia"), member("ib")
    a2 = None
    try:
        poll_until([a, b], lambda: len(owned(a)) == 2 and len(owned(b)) == 2, "2 partitions each")
        before_a, before_b = owned(a), owned(b)
        a.close()
        ad = admin(knode)
        d = ad.describe_consumer_groups(["static-group"])["static-group"].result(timeout=10)
        assert sorted((m.group_instance_id, len(m.assignment.topic_partitions)) for m in d.members) == [("ia", 2), ("ib", 2)]
        end = time.monotonic() + 3
        while time.monotonic() < end:
            b.poll(0.1)
        assert owned(b) == before_b, "the away static member's partitions were handed out"
        a2 = member("ia")
        poll_until([a2, b], lambda: owned(a2) == before_a, "the new incarnation gets the old one's partitions")
    finally:
        for c in (a2, b):
            if c is not None:
                c.close()
