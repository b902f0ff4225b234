"""Topic configs and data lifecycle (issue 6, part 4) with confluent-kafka's AdminClient.

- test_configs_alter_describe_and_persist: IncrementalAlterConfigs / AlterConfigs on a topic
  and on the broker (node and cluster default), DescribeConfigs sources and synonyms, produce
  obeying a dynamic broker limit, and all of it after a node restart.
- test_config_bad_input: unknown key, bad value, unknown topic, another broker id, a static
  broker key, APPEND on a non-list key: each gets Kafka's error.
- test_retention_by_time / test_retention_by_size: the earliest offset moves to the end of the
  expired ranges and their objects leave the bucket.
- test_delete_records: DeleteRecords (also beyond the uploaded data) moves the earliest
  offset, a consumer at offset 0 is reset to it, bad offsets get OFFSET_OUT_OF_RANGE, and the
  trim survives a restart.
- test_retention_on_moto: time retention with the objects in S3 (moto, SigV4).
- test_delete_records_is_prompt: with the default 60 s upload interval, DeleteRecords on a
  topic written a moment ago answers within 1 s, and a DeleteGroups sent behind it on the
  same connection is not held up; also with a 0 operation timeout.

Run: .venv/bin/pytest -v Tests/integration/test_lifecycle.py
"""
from __future__ import annotations

import socket
import struct
import time
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType

from silt_helpers import (DataBucket, EnvNode, admin, consumer, create_topic, debug_objects, producer,
                          s3_bucket_override, s3_client, s3_node_env, start_moto, stop_moto, wait_until)

# Short timings: uploads every 300 ms, a retention check every 500 ms, dead objects deleted
# 500 ms after they die; compaction off so that each upload stays one object.
LIFECYCLE = {
    "s3.wal.upload.interval.ms": "300",
    "log.retention.check.interval.ms": "500",
    "s3.object.janitor.interval.ms": "300",
    "s3.object.deletion.delay.ms": "500",
    "s3.stream.set.object.compaction.interval.ms": "3600000",
    "s3.stream.object.compaction.interval.ms": "3600000",
}
TIMEOUT = 30


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def describe(a, rtype, name: str) -> dict:
    res = ConfigResource(rtype, name)
    return a.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)


def incremental(a, rtype, name: str, ops: list[tuple[str, AlterConfigOpType, str | None]]):
    res = ConfigResource(rtype, name, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=op) for k, op, v in ops])
    return a.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)


def alter_error(fut) -> KafkaError:
    with pytest.raises(KafkaException) as e:
        fut.result(timeout=TIMEOUT)
    return e.value.args[0]


def produce(node, topic: str, count: int, size: int, timestamp_ms: int | None = None, **conf) -> None:
    p = producer(node, **conf)
    errors = []
    for i in range(count):
        kw = {"timestamp": timestamp_ms} if timestamp_ms is not None else {}
        p.produce(topic, value=bytes([i % 251]) * size, key=str(i).encode(), partition=0,
                  on_delivery=lambda err, msg: errors.append(err) if err else None, **kw)
    assert p.flush(TIMEOUT) == 0, "messages still in flight"
    assert not errors, f"delivery errors: {errors[:3]}"


def watermarks(node, topic: str) -> tuple[int, int]:
    c = consumer(node)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def wait_committed(node, topic: str) -> int:
    """Wait until partition 0's data is all in objects (committed end == high watermark)."""
    _, high = watermarks(node, topic)

    def done():
        streams = [s for s in debug_objects(node)["streams"] if s["topic"] == topic and s["partition"] == 0]
        return streams and streams[0]["end"] == high
    wait_until(done, TIMEOUT, f"{topic} was not uploaded up to {high}")
    return high


def objects_of(node, topic: str) -> set[int]:
    d = debug_objects(node)
    ids = {s["id"] for s in d["streams"] if s["topic"] == topic}
    return {o["id"] for o in d["objects"] if any(r["stream"] in ids for r in o["ranges"])}


def bucket_ids(bucket: DataBucket) -> set[int]:
    return {bucket.object_id(k) for k in bucket.keys()}


def first_consumed_offset(node, topic: str) -> int:
    """A consumer that starts at offset 0 (below the log start) is reset to the earliest."""
    c = consumer(node, **{"group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            return m.offset()
        raise AssertionError("no message consumed")
    finally:
        c.close()


# -------------------------------------------- raw protocol for the BROKER resource ""
# Neither confluent-kafka nor kafka-python accept the resource name "" (cluster-wide broker
# defaults), and confluent-kafka keeps one synonym per name; these speak the non-flexible
# versions directly: IncrementalAlterConfigs v0 and DescribeConfigs v1.

def _str(v: str | None) -> bytes:
    return struct.pack(">h", -1) if v is None else struct.pack(">h", len(v.encode())) + v.encode()


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        v = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return v


def _call(node, api_key: int, version: int, body: bytes) -> _Reader:
    header = struct.pack(">hhi", api_key, version, 7) + _str("lifecycle-raw")
    with socket.create_connection(("127.0.0.1", node.port), timeout=TIMEOUT) as s:
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            buf += chunk
    r = _Reader(buf[4:])
    assert r.take(">i") == 7   # correlation id
    return r


def raw_incremental_alter(node, rtype: int, name: str, ops: list[tuple[str, int, str | None]]) -> tuple[int, str | None]:
    body = struct.pack(">i", 1) + struct.pack(">b", rtype) + _str(name) + struct.pack(">i", len(ops))
    for key, op, value in ops:
        body += _str(key) + struct.pack(">b", op) + _str(value)
    r = _call(node, 44, 0, body + b"\x00")
    r.take(">i")   # throttle
    assert r.take(">i") == 1
    return r.take(">h"), r.string()


def raw_describe(node, rtype: int, name: str) -> dict[str, tuple[str | None, int, list[tuple[str, str | None, int]]]]:
    body = struct.pack(">i", 1) + struct.pack(">b", rtype) + _str(name) + struct.pack(">i", -1) + b"\x01"
    r = _call(node, 32, 1, body)
    r.take(">i")   # throttle
    assert r.take(">i") == 1
    code, message = r.take(">h"), r.string()
    assert code == 0, message
    r.take(">b"), r.string()
    out = {}
    for _ in range(r.take(">i")):
        key, value = r.string(), r.string()
        r.take(">b")   # read only
        source = r.take(">b")
        r.take(">b")   # sensitive
        synonyms = [(r.string(), r.string(), r.take(">b")) for _ in range(r.take(">i"))]
        out[key] = (value, source, synonyms)
    return out


# ------------------------------------------------------------------ configs

def test_configs_alter_describe_and_persist(node_factory):
    node = node_factory(LIFECYCLE)
    topic = topic_name("cfg")
    create_topic(node, topic, 1, config={"retention.ms": "86400000"})
    a = admin(node)

    incremental(a, ResourceType.TOPIC, topic, [("retention.bytes", AlterConfigOpType.SET, "123456"),
                                               ("cleanup.policy", AlterConfigOpType.APPEND, "compact")])
    d = describe(a, ResourceType.TOPIC, topic)
    assert d["retention.ms"].value == "86400000" and d["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert d["retention.bytes"].value == "123456"
    assert d["cleanup.policy"].value == "delete,compact"

    # Legacy AlterConfigs replaces every override: the others return to their defaults.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.bytes": "1048576"})
    a.alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    d = describe(a, ResourceType.TOPIC, topic)
    assert d["segment.bytes"].value == "1048576"
    assert d["retention.ms"].value == "604800000" and d["retention.ms"].is_default
    assert d["cleanup.policy"].value == "delete"

    # Dynamic broker configs: the cluster default (resource ""), then this node, each
    # shadowing the next; DescribeConfigs lists every layer as a synonym, most specific first.
    assert raw_incremental_alter(node, 4, "", [("log.retention.bytes", 0, "5000000")]) == (0, None)
    incremental(a, ResourceType.BROKER, "0", [("log.retention.bytes", AlterConfigOpType.SET, "7000000"),
                                              ("message.max.bytes", AlterConfigOpType.SET, "2000")])
    rb = describe(a, ResourceType.TOPIC, topic)["retention.bytes"]
    assert rb.value == "7000000" and rb.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert raw_describe(node, 2, topic)["retention.bytes"] == ("7000000", 2, [
        ("log.retention.bytes", "7000000", 2), ("log.retention.bytes", "5000000", 3), ("log.retention.bytes", "-1", 5)])
    incremental(a, ResourceType.BROKER, "0", [("log.retention.bytes", AlterConfigOpType.DELETE, None)])
    rb = describe(a, ResourceType.TOPIC, topic)["retention.bytes"]
    assert rb.value == "5000000" and rb.source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    incremental(a, ResourceType.BROKER, "0", [("log.retention.bytes", AlterConfigOpType.SET, "7000000")])
    b = describe(a, ResourceType.BROKER, "0")
    assert b["message.max.bytes"].value == "2000"
    assert b["message.max.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert b["log.dirs"].is_read_only
    assert raw_describe(node, 4, "") == {"log.retention.bytes": ("5000000", 3, [("log.retention.bytes", "5000000", 3)])}
    code, message = raw_incremental_alter(node, 4, "", [("num.io.threads", 0, "9")])
    assert code == KafkaError.INVALID_CONFIG and "dynamically" in message

    # Produce obeys the dynamic broker limit (max.message.bytes inherits message.max.bytes).
    p = producer(node)
    errs = []
    p.produce(topic, value=b"x" * 5000, partition=0, on_delivery=lambda err, msg: errs.append(err))
    p.flush(TIMEOUT)
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errs

    # validateOnly changes nothing.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res], validate_only=True, request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    assert describe(a, ResourceType.TOPIC, topic)["retention.ms"].value == "604800000"

    node.restart()
    a = admin(node)
    d = describe(a, ResourceType.TOPIC, topic)
    assert d["segment.bytes"].value == "1048576"
    assert d["retention.bytes"].value == "7000000"
    assert raw_describe(node, 4, "")["log.retention.bytes"][0] == "5000000"
    assert describe(a, ResourceType.BROKER, "0")["message.max.bytes"].value == "2000"


def test_config_bad_input(node_factory):
    node = node_factory(LIFECYCLE)
    topic = topic_name("bad")
    create_topic(node, topic, 1)
    a = admin(node)

    def inc(rtype, name, key, value, op=AlterConfigOpType.SET) -> KafkaError:
        res = ConfigResource(rtype, name, incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])
        return alter_error(a.incremental_alter_configs([res], request_timeout=TIMEOUT)[res])

    e = inc(ResourceType.TOPIC, topic, "no.such.config", "1")
    assert e.code() == KafkaError.INVALID_CONFIG and "no.such.config" in e.str()
    e = inc(ResourceType.TOPIC, topic, "retention.ms", "yesterday")
    assert e.code() == KafkaError.INVALID_CONFIG and "retention.ms" in e.str()
    e = inc(ResourceType.TOPIC, topic, "cleanup.policy", "shred")
    assert e.code() == KafkaError.INVALID_CONFIG
    e = inc(ResourceType.TOPIC, topic, "retention.ms", "5", op=AlterConfigOpType.APPEND)
    assert e.code() == KafkaError.INVALID_CONFIG
    e = inc(ResourceType.TOPIC, "no-such-topic", "retention.ms", "1")
    assert e.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    # (librdkafka sends a BROKER resource to that broker, so another id goes raw to this node.)
    code, message = raw_incremental_alter(node, 4, "5", [("log.retention.ms", 0, "1")])
    assert code == KafkaError.INVALID_REQUEST and "Unexpected broker id" in message
    e = inc(ResourceType.BROKER, "0", "log.dirs", "/tmp/elsewhere")
    assert e.code() == KafkaError.INVALID_CONFIG and "dynamically" in e.str()
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "-7"})
    e = alter_error(a.alter_configs([res], request_timeout=TIMEOUT)[res])
    assert e.code() == KafkaError.INVALID_CONFIG
    # Nothing of it was applied.
    d = describe(a, ResourceType.TOPIC, topic)
    assert all(v.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value for v in d.values())


# ------------------------------------------------------------------ retention

def _retention_by_time(node, bucket: DataBucket) -> None:
    topic = topic_name("ret-time")
    create_topic(node, topic, 1)
    a = admin(node)
    hour_ago = int(time.time() * 1000) - 3600_000
    produce(node, topic, 50, 1000, timestamp_ms=hour_ago)   # old records (CreateTime)
    old_end = wait_committed(node, topic)
    old_objects = objects_of(node, topic)
    assert old_objects and old_objects <= bucket_ids(bucket), f"{old_objects} not all in {bucket}"
    produce(node, topic, 30, 1000)                           # recent records, a later object
    end = wait_committed(node, topic)
    assert watermarks(node, topic) == (0, end)

    incremental(a, ResourceType.TOPIC, topic, [("retention.ms", AlterConfigOpType.SET, str(30 * 60_000))])
    wait_until(lambda: watermarks(node, topic)[0] == old_end, TIMEOUT,
               lambda: f"earliest offset {watermarks(node, topic)} never became {old_end}")
    assert first_consumed_offset(node, topic) == old_end
    wait_until(lambda: not (old_objects & bucket_ids(bucket)), TIMEOUT,
               lambda: f"expired objects {old_objects & bucket_ids(bucket)} still in {bucket}")
    assert objects_of(node, topic), "the recent records' object must stay"
    assert watermarks(node, topic) == (old_end, end)


def test_retention_by_time(node_factory):
    node = node_factory(LIFECYCLE)
    _retention_by_time(node, DataBucket.local(node.data_dir / "objects"))


def test_retention_by_size(node_factory):
    node = node_factory(LIFECYCLE)
    bucket = DataBucket.local(node.data_dir / "objects")
    topic = topic_name("ret-size")
    create_topic(node, topic, 1)
    a = admin(node)
    ends, objects = [], []
    for _ in range(3):   # three uploads of ~100 KB each, in objects of their own
        before = objects_of(node, topic)
        produce(node, topic, 20, 5000)
        ends.append(wait_committed(node, topic))
        objects.append(objects_of(node, topic) - before)
    assert ends == [20, 40, 60] and all(objects), (ends, objects)

    # 160 KB: dropping the first upload leaves ~200 KB, dropping (even half of) the second
    # would leave less than 160 KB.
    incremental(a, ResourceType.TOPIC, topic, [("retention.bytes", AlterConfigOpType.SET, "160000")])
    wait_until(lambda: watermarks(node, topic)[0] == 20, TIMEOUT,
               lambda: f"earliest offset {watermarks(node, topic)} never became 20")
    wait_until(lambda: not (objects[0] & bucket_ids(bucket)), TIMEOUT, "the first object stayed in the bucket")
    time.sleep(1.5)   # three more retention checks: nothing more goes
    assert watermarks(node, topic) == (20, 60)
    assert (objects[1] | objects[2]) <= bucket_ids(bucket)
    assert first_consumed_offset(node, topic) == 20


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    env, pid_file = start_moto(tmp_path_factory.mktemp("moto"), ["silt-lifecycle-probe"])
    yield env
    stop_moto(pid_file)


def test_retention_on_moto(moto, tmp_path):
    bucket_name = f"silt-lifecycle-{uuid.uuid4().hex[:8]}"
    s3_client(moto).create_bucket(Bucket=bucket_name)
    ov = dict(LIFECYCLE)
    ov.update(s3_bucket_override(bucket_name, moto["S3_ENDPOINT"]))
    node = EnvNode(tmp_path / "node", ov, env=s3_node_env(moto))
    try:
        node.start(60)
        _retention_by_time(node, DataBucket.s3(moto, bucket_name))
    finally:
        node.kill()


# ------------------------------------------------------------------ DeleteRecords

def test_delete_records(node_factory):
    # A slow uploader (5 s): the DeleteRecords offset is still in the log buffer, so the
    # broker waits for the upload before it trims.
    node = node_factory({**LIFECYCLE, "s3.wal.upload.interval.ms": "5000"})
    topic = topic_name("delrec")
    create_topic(node, topic, 1)
    a = admin(node)
    produce(node, topic, 100, 100)
    assert watermarks(node, topic) == (0, 100)

    t0 = time.monotonic()
    fs = a.delete_records([TopicPartition(topic, 0, 40)], request_timeout=TIMEOUT, operation_timeout=TIMEOUT)
    low = list(fs.values())[0].result(timeout=TIMEOUT).low_watermark
    assert low == 40
    print(f"\nDeleteRecords answered after {time.monotonic() - t0:.1f} s")
    assert watermarks(node, topic) == (40, 100)
    assert first_consumed_offset(node, topic) == 40

    def delete_error(offset: int) -> KafkaError:
        f = a.delete_records([TopicPartition(topic, 0, offset)], request_timeout=TIMEOUT, operation_timeout=TIMEOUT)
        return alter_error(list(f.values())[0])
    assert delete_error(101).code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert delete_error(-3).code() == KafkaError.OFFSET_OUT_OF_RANGE
    # (An unknown topic never reaches the broker: librdkafka finds no leader for it. The
    # broker's UNKNOWN_TOPIC_OR_PARTITION is covered by DeleteRecordsTests.)

    # An offset below the start changes nothing; -1 means the high watermark.
    f = a.delete_records([TopicPartition(topic, 0, 10)], request_timeout=TIMEOUT, operation_timeout=TIMEOUT)
    assert list(f.values())[0].result(timeout=TIMEOUT).low_watermark == 40
    f = a.delete_records([TopicPartition(topic, 0, -1)], request_timeout=TIMEOUT, operation_timeout=TIMEOUT)
    assert list(f.values())[0].result(timeout=TIMEOUT).low_watermark == 100
    assert watermarks(node, topic) == (100, 100)

    produce(node, topic, 5, 100)
    node.restart()
    assert watermarks(node, topic) == (100, 105), "the trim survives a restart"
    assert first_consumed_offset(node, topic) == 100


def test_delete_records_is_prompt(node_factory):
    # The default upload interval (60 s): the offset lies in data no object holds yet. The
    # broker asks the uploader for that stream at once instead of waiting for the interval.
    node = node_factory({k: v for k, v in LIFECYCLE.items() if k != "s3.wal.upload.interval.ms"})
    topic = topic_name("delrec-prompt")
    create_topic(node, topic, 1)
    a = admin(node)
    for round_ in range(3):
        produce(node, topic, 50, 100)
        t0 = time.monotonic()
        # The last round with operation_timeout 0, as librdkafka's test 0081 sends it: Kafka
        # answers a single-replica partition at once, and so does Silt.
        fs = a.delete_records([TopicPartition(topic, 0, 50 * round_ + 30)], request_timeout=TIMEOUT,
                              operation_timeout=0 if round_ == 2 else TIMEOUT)
        groups = a.delete_consumer_groups([f"no-such-group-{round_}"], request_timeout=TIMEOUT)
        low = list(fs.values())[0].result(timeout=TIMEOUT).low_watermark
        elapsed = time.monotonic() - t0
        print(f"\nDeleteRecords answered in {elapsed * 1000:.0f} ms")
        assert low == 50 * round_ + 30
        assert elapsed < 1.0, f"DeleteRecords took {elapsed:.2f} s"
        with pytest.raises(KafkaException):   # GROUP_ID_NOT_FOUND, answered, not timed out
            list(groups.values())[0].result(timeout=TIMEOUT)
        assert time.monotonic() - t0 < 1.5, "DeleteGroups was held up behind DeleteRecords"
        assert watermarks(node, topic) == (50 * round_ + 30, 50 * (round_ + 1))
