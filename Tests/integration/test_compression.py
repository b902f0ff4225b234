"""Compression in the broker (issue 16): every codec decoded and encoded by Silt, checked
against real clients and Python's reference codec bindings.

- test_confluent_round_trip: confluent-kafka produces with each codec into a topic that
  keeps the producer's codec and into one whose compression.type is another codec; a
  consumer reads every record back in order.
- test_kafka_python_round_trip: the same with kafka-python (its own snappy and lz4 framing).
- test_kcat_recompressed_round_trip: kcat -z <codec> into a topic with compression.type set
  to a different codec; kcat reads it back.
- test_topic_compression_type_oracle: batches produced raw (uncompressed, and compressed by
  Python's gzip/python-snappy (xerial and raw)/lz4/zstandard) into topics with each
  compression.type; the stored batches, fetched raw, carry the topic's codec and their
  records section decodes with Python's bindings to exactly the produced records.
- test_zip_bomb_is_refused: a 2 KiB zstd batch whose records inflate to 8 MiB, sent raw, is
  answered MESSAGE_TOO_LARGE with a message naming the cause; the partition stays empty and
  serves the next produce.
- test_keyless_records_in_a_compressed_batch_are_named, test_timestamps_in_a_compressed_batch_are_named:
  keys (compacted topic) and per-record timestamps are checked inside compressed batches, and
  the bad records named in KIP-467's record_errors; confluent-kafka then fails only the
  keyless records with INVALID_RECORD (librdkafka's test 0011).
- test_compacted_zstd_topic_keeps_one_value_per_key: a compacted topic written by a zstd
  producer (many records per batch) is cleaned: one value per key, the latest.

Run: .venv/bin/pytest -v Tests/integration/test_compression.py
"""
from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import time
import uuid

import pytest

from silt_helpers import (EnvNode, HOST, _Cursor, _crc32c, _kstr, _zigzag_varint, create_topic, produce_all,
                          raw_kafka_call, wait_until)

CODECS = ["gzip", "snappy", "lz4", "zstd"]
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
MESSAGE_TOO_LARGE = 10


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def consume_all(node, topic: str, partitions: int, expected: int, timeout: float = 60.0) -> list[tuple[int, int, bytes, bytes]]:
    """(partition, offset, key, value) of `expected` records read from the beginning."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": node.bootstrap, "broker.address.family": "v4", "group.id": f"g-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    out = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(out) < expected:
            assert time.monotonic() < deadline, f"{topic}: read {len(out)} of {expected} within {timeout}s"
            for m in c.consume(num_messages=1000, timeout=0.5):
                assert not m.error(), m.error()
                out.append((m.partition(), m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return out


# ------------------------------------------------------------------ real clients

@pytest.mark.parametrize("codec", CODECS)
def test_confluent_round_trip(node, codec):
    other = {"gzip": "zstd", "snappy": "lz4", "lz4": "gzip", "zstd": "snappy"}[codec]
    for topic_codec in ("producer", other, "uncompressed"):
        topic = topic_name(f"cf-{codec}-{topic_codec}")
        create_topic(node, topic, 2, config={"compression.type": topic_codec})
        msgs = [(i % 2, f"k{i}".encode(), (f"value {i} " * (i % 40 + 1)).encode(), None) for i in range(3000)]
        produce_all(node, topic, msgs, **{"compression.type": codec, "linger.ms": 20})
        got = consume_all(node, topic, 2, len(msgs))
        for p in (0, 1):
            want = [(k, v) for mp, k, v, _ in msgs if mp == p]
            have = [(k, v) for gp, _, k, v in sorted(got) if gp == p]
            assert have == want, f"{codec} into compression.type={topic_codec}: partition {p} differs"


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (run tools/setup)")
@pytest.mark.parametrize("codec", CODECS)
def test_kcat_recompressed_round_trip(node, codec, tmp_path):
    other = {"gzip": "lz4", "snappy": "zstd", "lz4": "snappy", "zstd": "gzip"}[codec]
    topic = topic_name(f"kcat-{codec}")
    create_topic(node, topic, 1, config={"compression.type": other})
    lines = [f"key{i}:{'payload-%d ' % i * (i % 25 + 1)}" for i in range(2000)]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    with open(src, "rb") as f:
        r = subprocess.run(["kcat", "-P", "-b", node.bootstrap, "-t", topic, "-z", codec, "-K:", "-X", "acks=all",
                            "-X", "broker.address.family=v4"], stdin=f, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    r = subprocess.run(["kcat", "-C", "-b", node.bootstrap, "-t", topic, "-e", "-o", "beginning", "-q",
                        "-X", "broker.address.family=v4", "-f", r"%k:%s\n"], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    assert r.stdout.decode().split("\n")[:-1] == lines


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_round_trip(node, codec):
    """kafka-python has its own codec framing (its xerial snappy and lz4 frames): what it
    writes is decoded and re-encoded by the broker, and what the broker writes it decodes."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    other = {"gzip": "snappy", "snappy": "gzip", "lz4": "zstd", "zstd": "lz4"}[codec]
    for topic_codec in ("producer", other):
        topic = topic_name(f"kp-{codec}-{topic_codec}")
        create_topic(node, topic, 1, config={"compression.type": topic_codec})
        prod = KafkaProducer(bootstrap_servers=node.bootstrap, acks="all", linger_ms=20, compression_type=codec)
        msgs = [(f"k{i}".encode(), (f"kafka-python {i} " * (i % 20 + 1)).encode()) for i in range(500)]
        futures = [prod.send(topic, key=k, value=v, partition=0) for k, v in msgs]
        prod.flush(30)
        assert [f.get(30).offset for f in futures] == list(range(len(msgs)))
        prod.close()
        cons = KafkaConsumer(bootstrap_servers=node.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
        cons.assign([TopicPartition(topic, 0)])
        got, deadline = [], time.monotonic() + 30
        while len(got) < len(msgs) and time.monotonic() < deadline:
            for records in cons.poll(timeout_ms=500).values():
                got += [(m.key, m.value) for m in records]
        cons.close()
        assert got == msgs, f"{codec} into compression.type={topic_codec}"


# ------------------------------------------------------------------ raw protocol: the oracle

def xerial(data: bytes, chunk: int = 32 * 1024) -> bytes:
    """snappy-java's framing (what Kafka's Java client sends) around python-snappy's blocks."""
    import snappy

    out = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    for i in range(0, len(data), chunk):
        block = snappy.compress(data[i:i + chunk])
        out += struct.pack(">i", len(block)) + block
    return out


def unxerial(data: bytes) -> bytes:
    """snappy-java's framing, or one raw block (librdkafka's form)."""
    import snappy

    if data[:8] != b"\x82SNAPPY\x00":
        return snappy.uncompress(data)
    out, at = b"", 16
    while at < len(data):
        (n,) = struct.unpack_from(">i", data, at)
        out += snappy.uncompress(data[at + 4:at + 4 + n])
        at += 4 + n
    return out


def encode(codec: str, data: bytes) -> bytes:
    import lz4.frame
    import snappy
    import zstandard

    return {"none": lambda d: d, "gzip": gzip.compress, "snappy": xerial, "snappy-raw": snappy.compress,
            "lz4": lz4.frame.compress, "zstd": lambda d: zstandard.ZstdCompressor().compress(d)}[codec](data)


def decode(codec_id: int, data: bytes) -> bytes:
    import lz4.frame
    import zstandard

    return {0: lambda d: d, 1: gzip.decompress, 2: unxerial, 3: lz4.frame.decompress,
            4: lambda d: zstandard.ZstdDecompressor().decompressobj().decompress(d)}[codec_id](data)


def records_section(values: list[tuple[bytes, bytes]], timestamp_ms: int) -> bytes:
    out = b""
    for i, (k, v) in enumerate(values):
        body = (b"\x00" + _zigzag_varint(0) + _zigzag_varint(i) + _zigzag_varint(len(k)) + k + _zigzag_varint(len(v)) + v
                + _zigzag_varint(0))
        out += _zigzag_varint(len(body)) + body
    return out


def batch(records: bytes, count: int, codec: str, timestamp_ms: int) -> bytes:
    body = encode(codec, records)
    attributes = CODEC_IDS["snappy" if codec == "snappy-raw" else codec]
    after_crc = struct.pack(">hiqqqhii", attributes, count - 1, timestamp_ms, timestamp_ms, -1, -1, -1, count) + body
    tail = struct.pack(">ibI", -1, 2, _crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(tail)) + tail


def produce_v8(node, topic: str, records: bytes, record_errors: list | None = None) -> tuple[int, str | None]:
    """Produce v8 (error_message, KIP-467) of one batch to partition 0: (error code, message);
    the record_errors, (batch index, message) each, are appended to `record_errors`."""
    body = (_kstr(None) + struct.pack(">hi", -1, 10_000) + struct.pack(">i", 1) + _kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">ii", 0, len(records)) + records)
    c = _Cursor(raw_kafka_call(HOST, node.port, 0, 8, body, 15))
    c.int32(), c.string(), c.int32(), c.int32()   # topics, name, partitions, index
    error = c.int16()
    c.take(">q"), c.take(">q"), c.take(">q")       # base offset, log append time, log start offset
    for _ in range(max(0, c.int32())):            # record_errors
        index, message = c.int32(), c.string()
        if record_errors is not None:
            record_errors.append((index, message))
    return error, c.string()


def fetch_raw(node, topic: str) -> bytes:
    """Fetch v4 of partition 0 from offset 0: the records bytes as stored."""
    body = (struct.pack(">iiiib", -1, 500, 1, 8 << 20, 0) + struct.pack(">i", 1) + _kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, 8 << 20))
    c = _Cursor(raw_kafka_call(HOST, node.port, 1, 4, body, 10))
    c.int32(), c.int32(), c.string(), c.int32()   # throttle, topics, name, partitions
    c.int32()
    assert c.int16() == 0, "fetch error"
    c.take(">q"), c.take(">q")                     # high watermark, last stable offset
    for _ in range(max(0, c.int32())):            # aborted transactions
        c.take(">q"), c.take(">q")
    n = c.int32()
    return c.data[c.pos:c.pos + n]


def stored_batches(data: bytes) -> list[tuple[int, int, bytes]]:
    """(codec id, record count, records section) of every batch in `data`, CRCs checked."""
    out, at = [], 0
    while at + 12 <= len(data):
        _, length = struct.unpack_from(">qi", data, at)
        b = data[at:at + 12 + length]
        if len(b) < 12 + length:
            break
        (crc,) = struct.unpack_from(">I", b, 17)
        assert crc == _crc32c(b[21:]), "stored batch CRC"
        (attributes,) = struct.unpack_from(">h", b, 21)
        (count,) = struct.unpack_from(">i", b, 57)
        out.append((attributes & 7, count, b[61:]))
        at += 12 + length
    return out


def test_topic_compression_type_oracle(node):
    now = int(time.time() * 1000)
    values = [(f"key-{i}".encode(), (f"value-{i} " * (i % 30 + 1)).encode()) for i in range(200)]
    records = records_section(values, now)
    for topic_codec in ["producer", "uncompressed", *CODECS]:
        for sent in ["none", "snappy-raw", *CODECS]:
            topic = topic_name(f"oracle-{topic_codec}-{sent}")
            create_topic(node, topic, 1, config={"compression.type": topic_codec})
            error, message = produce_v8(node, topic, batch(records, len(values), sent, now))
            assert error == 0, f"{sent} into compression.type={topic_codec}: {error} {message}"
            stored = stored_batches(fetch_raw(node, topic))
            assert len(stored) == 1
            codec_id, count, section = stored[0]
            want = {"producer": CODEC_IDS["snappy" if sent == "snappy-raw" else sent],
                    "uncompressed": 0}.get(topic_codec, CODEC_IDS.get(topic_codec))
            assert (codec_id, count) == (want, len(values)), f"{sent} into compression.type={topic_codec}"
            assert decode(codec_id, section) == records, f"{sent} into compression.type={topic_codec}: records differ"
            if topic_codec == "snappy" and sent != "snappy-raw":
                assert section[:8] == b"\x82SNAPPY\x00", "the broker writes snappy-java's xerial framing, as Kafka does"


def test_zip_bomb_is_refused(node):
    import zstandard

    topic = topic_name("bomb")
    create_topic(node, topic, 1)
    now = int(time.time() * 1000)
    # One record whose value is 8 MiB of zeros: far past max.message.bytes (1 MiB) once
    # inflated, about 300 bytes compressed.
    value = bytes(8 << 20)
    record = b"\x00" + _zigzag_varint(0) + _zigzag_varint(0) + _zigzag_varint(-1) + _zigzag_varint(len(value)) + value \
        + _zigzag_varint(0)
    section = _zigzag_varint(len(record)) + record
    compressed = zstandard.ZstdCompressor().compress(section)
    assert len(compressed) < 2048
    after_crc = struct.pack(">hiqqqhii", 4, 0, now, now, -1, -1, -1, 1) + compressed
    bomb = struct.pack(">qi", 0, 9 + len(after_crc)) + struct.pack(">ibI", -1, 2, _crc32c(after_crc)) + after_crc
    t0 = time.monotonic()
    error, message = produce_v8(node, topic, bomb)
    elapsed = time.monotonic() - t0
    assert error == MESSAGE_TOO_LARGE, (error, message)
    assert "inflate past max.message.bytes" in message and "zstd" in message, message
    print(f"\nzip bomb refused in {elapsed * 1000:.0f} ms: {message}")
    # Nothing was written and the partition serves the next produce.
    assert stored_batches(fetch_raw(node, topic)) == []
    ok = records_section([(b"k", b"v")], now)
    assert produce_v8(node, topic, batch(ok, 1, "zstd", now)) == (0, None)
    assert len(stored_batches(fetch_raw(node, topic))) == 1


# ------------------------------------------------------------------ compaction

INVALID_RECORD = 87


def test_keyless_records_in_a_compressed_batch_are_named(node):
    """0011 of librdkafka's suite: 100 records in one zstd batch, 10 of them keyless, to a
    compacted topic. As Kafka (KIP-467): INVALID_RECORD naming exactly the 10 in
    record_errors; the whole batch is refused."""
    topic = topic_name("keyless")
    create_topic(node, topic, 1, config={"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    keyless = set(range(5, 100, 10))
    out = b""
    for i in range(100):
        key = b"" if i in keyless else f"k{i}".encode()
        body = (b"\x00" + _zigzag_varint(0) + _zigzag_varint(i)
                + (_zigzag_varint(-1) if i in keyless else _zigzag_varint(len(key)) + key)
                + _zigzag_varint(1) + b"v" + _zigzag_varint(0))
        out += _zigzag_varint(len(body)) + body
    errors: list[tuple[int, str]] = []
    error, message = produce_v8(node, topic, batch(out, 100, "zstd", now), errors)
    assert error == INVALID_RECORD, (error, message)
    assert [i for i, _ in errors] == sorted(keyless)
    assert all(m == f"Compacted topic cannot accept message without key in topic partition {topic}-0." for _, m in errors)
    assert "rejected due to 10 record errors in total" in message, message
    assert stored_batches(fetch_raw(node, topic)) == [], "the whole batch is refused"


def test_confluent_producer_sees_which_records_were_keyless(node):
    """librdkafka's test 0011 with a compressing producer: 100 records in one batch, 10 of
    them keyless, to a compacted topic. With Kafka's record_errors librdkafka fails the 10
    with INVALID_RECORD and the other 90 with _INVALID_DIFFERENT_RECORD."""
    from confluent_kafka import KafkaError, Producer

    topic = topic_name("keyless-cf")
    create_topic(node, topic, 1, config={"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": node.bootstrap, "broker.address.family": "v4", "linger.ms": 500,
                  "compression.type": "zstd", "retries": 0, "batch.num.messages": 1000})
    results: dict[int, int | None] = {}
    for i in range(100):
        key = None if i % 10 == 3 else f"k{i}".encode()
        p.produce(topic, key=key, value=f"v{i}".encode(), partition=0,
                  on_delivery=lambda err, msg, i=i: results.__setitem__(i, err.code() if err else None))
    assert p.flush(30) == 0
    assert {i for i, code in results.items() if code == KafkaError.INVALID_RECORD} == {i for i in range(100) if i % 10 == 3}
    assert {code for i, code in results.items() if i % 10 != 3} == {KafkaError._INVALID_DIFFERENT_RECORD}


def test_timestamps_in_a_compressed_batch_are_named(node_factory):
    """Per-record timestamps inside an lz4 batch: with message.timestamp.before.max.ms=60000,
    the 3 records an hour old (base and max timestamps in range) are named in record_errors
    under INVALID_TIMESTAMP, as Kafka does."""
    node = node_factory({"log.message.timestamp.before.max.ms": "60000"})
    topic = topic_name("stale")
    create_topic(node, topic, 1)
    now = int(time.time() * 1000)
    stale = {3, 4, 7}
    out = b""
    for i in range(10):
        delta = -3_600_000 if i in stale else 0
        body = (b"\x00" + _zigzag_varint(delta) + _zigzag_varint(i) + _zigzag_varint(-1) + _zigzag_varint(1) + b"v"
                + _zigzag_varint(0))
        out += _zigzag_varint(len(body)) + body
    errors: list[tuple[int, str]] = []
    error, message = produce_v8(node, topic, batch(out, 10, "lz4", now), errors)
    assert error == 32, (error, message)   # INVALID_TIMESTAMP
    assert [i for i, _ in errors] == sorted(stale)
    assert errors[0][1].startswith(f"Timestamp {now - 3_600_000} of message with offset 3 is out of range."), errors[0]
    assert "rejected due to 3 record errors in total" in message, message


CLEANER_NODE = {
    "s3.wal.upload.interval.ms": "300",
    "log.cleaner.backoff.ms": "500",
    "s3.object.deletion.delay.ms": "1000",
    "s3.object.janitor.interval.ms": "500",
}


def test_compacted_zstd_topic_keeps_one_value_per_key(tmp_path):
    from confluent_kafka import Consumer, TopicPartition

    node = EnvNode(tmp_path / "node", CLEANER_NODE)
    node.start(60)
    try:
        topic = topic_name("compacted-zstd")
        create_topic(node, topic, 1, config={"cleanup.policy": "compact", "compression.type": "producer"})
        keys = [f"k{i}".encode() for i in range(10)]
        latest: dict[bytes, bytes] = {}
        for r in range(5):
            msgs = [(0, keys[i % len(keys)], f"{keys[i % len(keys)].decode()}-round{r}-{i}".encode(), None) for i in range(400)]
            produce_all(node, topic, msgs, **{"compression.type": "zstd", "linger.ms": 50, "batch.num.messages": 1000})
            latest.update({k: v for _, k, v, _ in msgs})
            time.sleep(0.5)   # an upload in between: the stream spans several objects
        end = 5 * 400

        def read() -> list[tuple[int, bytes, bytes]]:
            c = Consumer({"bootstrap.servers": node.bootstrap, "broker.address.family": "v4", "group.id": uuid.uuid4().hex,
                          "enable.auto.commit": False, "enable.partition.eof": True})
            out = []
            try:
                c.assign([TopicPartition(topic, 0, 0)])
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    for m in c.consume(num_messages=5000, timeout=0.5):
                        if m.error():
                            if m.error().code() == -191 and c.position([TopicPartition(topic, 0)])[0].offset >= end:
                                return out
                            continue
                        out.append((m.offset(), m.key(), m.value()))
                raise AssertionError(f"read only {len(out)} records")
            finally:
                c.close()

        def cleaned() -> bool:
            got = read()
            return len(got) == len(keys)
        wait_until(cleaned, timeout=60, what="the zstd-compressed compacted topic cleaned")
        got = read()
        assert {k: v for _, k, v in got} == latest, "one value per key, the latest"
        offsets = [o for o, _, _ in got]
        assert offsets == sorted(offsets) and offsets[-1] == end - 1
        # The cleaned batches are still zstd.
        codecs = {codec for codec, _, _ in stored_batches(fetch_raw(node, topic))}
        assert codecs == {CODEC_IDS["zstd"]}, codecs
    except BaseException:
        print("\n" + node.log_tail(200))
        raise
    finally:
        node.kill()
