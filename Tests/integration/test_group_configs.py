"""Kafka 4.0's GROUP config resource (KIP-848 group configs; librdkafka 0081
`do_test_DescribeConfigs_groups` and the GROUP resource of `do_test_IncrementalAlterConfigs`):
confluent-kafka's AdminClient describes a group's `consumer.session.timeout.ms` and
`consumer.heartbeat.interval.ms` (the broker's values, DEFAULT_CONFIG, until set), sets and
deletes them (GROUP_CONFIG), gets INVALID_CONFIG for a bad value or an unknown key, and the
coordinator tells the group's members its own heartbeat interval."""
from __future__ import annotations

import socket
import struct

import pytest

from silt_helpers import HOST, admin, raw_find_coordinator, wait_until

BROKER_HEARTBEAT_MS = 6000   # not Kafka's 5000, so the test sees where the value came from


@pytest.fixture
def gnode(node_factory):
    return node_factory({"group.consumer.heartbeat.interval.ms": str(BROKER_HEARTBEAT_MS), "s3.wal.capacity": str(64 << 20)})


def describe(a, group: str) -> dict:
    from confluent_kafka.admin import ConfigResource, ResourceType

    res = ConfigResource(ResourceType.GROUP, group)
    return a.describe_configs([res])[res].result(timeout=10)


def alter(a, group: str, *changes):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.DELETE if v is None else AlterConfigOpType.SET)
               for k, v in changes]
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    return a.incremental_alter_configs([res])[res].result(timeout=10)


def uvarint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def cstr(s: str) -> bytes:
    b = s.encode()
    return uvarint(len(b) + 1) + b


def heartbeat_interval(port: int, group: str) -> int:
    """The heartbeat interval a new member of `group` is told, once the coordinator is up
    (`__consumer_offsets` is created by the first FindCoordinator: COORDINATOR_NOT_AVAILABLE
    until then)."""
    answers: list[tuple[int, int]] = []

    def answered() -> bool:
        raw_find_coordinator(HOST, port, group)   # what creates __consumer_offsets, as a client's lookup does
        answers.append(first_heartbeat(port, group))
        return answers[-1][0] not in (14, 15)   # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE
    wait_until(answered, 30, "the group coordinator")
    error, interval = answers[-1]
    assert error == 0, f"ConsumerGroupHeartbeat error {error}"
    return interval


def first_heartbeat(port: int, group: str) -> tuple[int, int]:
    """A new member's first ConsumerGroupHeartbeat (v0, flexible header v2): the answer's
    error code and heartbeat interval."""
    body = (cstr(group) + cstr("") + struct.pack(">i", 0) + b"\x00" + b"\x00" + struct.pack(">i", 30000)
            + uvarint(2) + cstr("group-config-topic") + b"\x00" + uvarint(1) + b"\x00")
    client = b"silt-test"
    frame = struct.pack(">hhih", 68, 0, 7, len(client)) + client + b"\x00" + body
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            buf += chunk
    resp = buf[4:]
    assert struct.unpack(">i", resp[:4])[0] == 7 and resp[4] == 0, "correlation id, no header tags"
    pos = 5 + 4   # throttle
    (error,) = struct.unpack(">h", resp[pos:pos + 2])
    pos += 2
    for _ in range(2):   # error message, member id (compact nullable strings)
        shift, length = 0, 0
        while True:
            byte = resp[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        pos += max(length - 1, 0)
    pos += 4   # member epoch
    return error, struct.unpack(">i", resp[pos:pos + 4])[0]


def test_group_configs_are_described_altered_refused_and_used(gnode):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import ConfigSource

    a = admin(gnode)
    # A group nobody created is described with the broker's values.
    fresh = describe(a, "gc-group")
    assert {k: (e.value, ConfigSource(e.source)) for k, e in fresh.items()} == {
        "consumer.session.timeout.ms": ("45000", ConfigSource.DEFAULT_CONFIG),
        "consumer.heartbeat.interval.ms": (str(BROKER_HEARTBEAT_MS), ConfigSource.DEFAULT_CONFIG),
    }
    assert heartbeat_interval(gnode.port, "gc-group") == BROKER_HEARTBEAT_MS

    # librdkafka 0081's change, then the heartbeat interval.
    alter(a, "gc-group", ("consumer.session.timeout.ms", "50000"), ("consumer.heartbeat.interval.ms", "7000"))
    got = describe(a, "gc-group")
    assert got["consumer.session.timeout.ms"].value == "50000"
    assert ConfigSource(got["consumer.session.timeout.ms"].source) == ConfigSource.GROUP_CONFIG
    assert got["consumer.heartbeat.interval.ms"].value == "7000"
    assert heartbeat_interval(gnode.port, "gc-group") == 7000, "the coordinator tells members the group's interval"
    assert heartbeat_interval(gnode.port, "gc-other") == BROKER_HEARTBEAT_MS, "another group keeps the broker's"

    # Refusals are INVALID_CONFIG and change nothing.
    for change in [("consumer.session.timeout.ms", "60001"), ("consumer.heartbeat.interval.ms", "abc"),
                   ("retention.ms", "5")]:
        with pytest.raises(KafkaException) as e:
            alter(a, "gc-group", change)
        assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, (change, e.value)
    assert describe(a, "gc-group")["consumer.session.timeout.ms"].value == "50000"

    # DELETE returns a key to the broker's value.
    alter(a, "gc-group", ("consumer.heartbeat.interval.ms", None))
    back = describe(a, "gc-group")["consumer.heartbeat.interval.ms"]
    assert (back.value, ConfigSource(back.source)) == (str(BROKER_HEARTBEAT_MS), ConfigSource.DEFAULT_CONFIG)
    assert heartbeat_interval(gnode.port, "gc-group") == BROKER_HEARTBEAT_MS
