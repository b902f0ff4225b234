"""The idempotent producer on raw sockets: InitProducerId, a replayed batch gets its original
offsets back, and a node restart (clean stop and kill -9) between two batches keeps
deduplication working, accepts the next sequence and refuses an out-of-order one."""
from __future__ import annotations

import socket
import struct
import time

import pytest

from silt_helpers import HOST, consume_partitions, create_topic

PRODUCE = 0
INIT_PRODUCER_ID = 22
NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_PRODUCER_ID = 59
INVALID_REQUEST = 42


# ---------------------------------------------------------------- wire helpers

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)   # zigzag
    out = b""
    while True:
        if z < 0x80:
            return out + bytes([z])
        out += bytes([(z & 0x7F) | 0x80])
        z >>= 7


def record_batch(producer_id: int, epoch: int, sequence: int, values: list[bytes], timestamp_ms: int) -> bytes:
    """A magic-2 batch of uncompressed records without keys or headers."""
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, timestamp_ms, timestamp_ms, producer_id, epoch, sequence,
                            len(values)) + records
    crc = crc32c(after_crc)
    # batchLength counts from partitionLeaderEpoch to the end.
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc


def frame(api_key: int, api_version: int, correlation_id: int, body: bytes) -> bytes:
    """Request header v1 (these versions are not flexible) and body, length-prefixed."""
    client = b"silt-idem-raw"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


class Connection:
    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=30)
        self.correlation = 0

    def close(self):
        self.sock.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise AssertionError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def call(self, api_key: int, api_version: int, body: bytes) -> bytes:
        self.correlation += 1
        self.sock.sendall(frame(api_key, api_version, self.correlation, body))
        (size,) = struct.unpack(">i", self._recv_exact(4))
        resp = self._recv_exact(size)
        (corr,) = struct.unpack_from(">i", resp, 0)
        assert corr == self.correlation
        return resp[4:]   # response header v0: the correlation id only

    def init_producer_id(self, transactional_id: bytes | None = None) -> tuple[int, int, int]:
        """InitProducerId v1: (error, producer id, epoch)."""
        tid = struct.pack(">h", -1) if transactional_id is None else struct.pack(">h", len(transactional_id)) + transactional_id
        resp = self.call(INIT_PRODUCER_ID, 1, tid + struct.pack(">i", 60000))
        _throttle, err, pid, epoch = struct.unpack_from(">ihqh", resp, 0)
        return err, pid, epoch

    def produce(self, topic: str, partition: int, batch: bytes) -> tuple[int, int]:
        """Produce v3, acks=-1: (error, base offset) of the one partition."""
        name = topic.encode()
        body = struct.pack(">hhi", -1, -1, 30000)                         # no transactional id, acks, timeout
        body += struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
        body += struct.pack(">i", 1) + struct.pack(">ii", partition, len(batch)) + batch
        resp = self.call(PRODUCE, 3, body)
        pos = 0
        (topics,) = struct.unpack_from(">i", resp, pos)
        assert topics == 1
        (n,) = struct.unpack_from(">h", resp, pos + 4)
        pos += 6 + n
        (parts,) = struct.unpack_from(">i", resp, pos)
        assert parts == 1
        index, err, base, _append_time = struct.unpack_from(">ihqq", resp, pos + 4)
        assert index == partition
        return err, base


# ---------------------------------------------------------------- tests

def now_ms() -> int:
    return int(time.time() * 1000)


def test_init_producer_id_refuses_transactions(node):
    c = Connection(node.port)
    try:
        err, pid, epoch = c.init_producer_id()
        assert (err, epoch) == (NONE, 0) and pid >= 0
        err2, pid2, _ = c.init_producer_id()
        assert err2 == NONE and pid2 != pid, "every InitProducerId gets a fresh id"
        err, pid, _ = c.init_producer_id(b"my-transaction")
        assert (err, pid) == (INVALID_REQUEST, -1)
    finally:
        c.close()


def test_replay_gets_original_offsets(node):
    topic = "idem-raw-replay"
    create_topic(node, topic)
    c = Connection(node.port)
    try:
        err, pid, epoch = c.init_producer_id()
        assert err == NONE
        ts = now_ms()
        first = record_batch(pid, epoch, 0, [b"a", b"b", b"c"], ts)
        assert c.produce(topic, 0, first) == (NONE, 0)
        second = record_batch(pid, epoch, 3, [b"d"], ts)
        assert c.produce(topic, 0, second) == (NONE, 3)
        # The identical bytes again: success with the original offsets, nothing appended.
        assert c.produce(topic, 0, first) == (NONE, 0)
        assert c.produce(topic, 0, second) == (NONE, 3)
        assert c.produce(topic, 0, record_batch(pid, epoch, 9, [b"gap"], ts))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert c.produce(topic, 0, record_batch(pid, epoch, 4, [b"e"], ts)) == (NONE, 4)
        # A producer id nobody handed out.
        assert c.produce(topic, 0, record_batch(pid + 10_000_000, 0, 0, [b"x"], ts))[0] == UNKNOWN_PRODUCER_ID
    finally:
        c.close()
    got = consume_partitions(node, topic, [0], 5, timeout=30)[0]
    assert [m.value() for m in got] == [b"a", b"b", b"c", b"d", b"e"]
    assert [m.offset() for m in got] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("graceful", [True, False], ids=["clean-stop", "kill-9"])
def test_restart_between_batches_keeps_deduplication(node, graceful):
    topic = "idem-raw-restart"
    create_topic(node, topic)
    c = Connection(node.port)
    ts = now_ms()
    try:
        err, pid, epoch = c.init_producer_id()
        assert err == NONE
        batches = [record_batch(pid, epoch, 2 * i, [f"m{2 * i}".encode(), f"m{2 * i + 1}".encode()], ts) for i in range(4)]
        for i, b in enumerate(batches[:3]):
            assert c.produce(topic, 0, b) == (NONE, 2 * i)   # acks=-1: durable in the WAL
    finally:
        c.close()

    if graceful:
        assert node.stop() == 0
        node.start()
    else:
        node.kill()
        node.start(timeout=120)

    # The state came from the snapshot written at the clean stop, or (kill -9: no snapshot
    # yet) from replaying the three batches of the log.
    recovered = [line for line in node.log_text().splitlines() if "producer state recovered" in line]
    assert recovered, "no producer state recovery logged"
    assert f"replayedBatches={0 if graceful else 3}" in recovered[-1], recovered[-1]

    c = Connection(node.port)
    try:
        # Replays of earlier batches (one before the restart's last, and the last) are still deduplicated.
        assert c.produce(topic, 0, batches[0]) == (NONE, 0)
        assert c.produce(topic, 0, batches[2]) == (NONE, 4)
        # The next sequence is accepted, an out-of-order one refused, an old epoch stays valid here.
        assert c.produce(topic, 0, record_batch(pid, epoch, 9, [b"gap"], ts))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert c.produce(topic, 0, batches[3]) == (NONE, 6)
        assert c.produce(topic, 0, batches[3]) == (NONE, 6)
        # A bumped epoch fences the old one.
        assert c.produce(topic, 0, record_batch(pid, epoch + 1, 0, [b"bumped"], ts)) == (NONE, 8)
        assert c.produce(topic, 0, record_batch(pid, epoch, 8, [b"zombie"], ts))[0] == INVALID_PRODUCER_EPOCH
        # Ids handed out before the restart are never handed out again.
        err, pid2, _ = c.init_producer_id()
        assert err == NONE and pid2 > pid
    finally:
        c.close()
    got = consume_partitions(node, topic, [0], 9, timeout=60)[0]
    assert [m.value() for m in got] == [f"m{i}".encode() for i in range(8)] + [b"bumped"]
    assert [m.offset() for m in got] == list(range(9))
