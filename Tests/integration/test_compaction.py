"""Log compaction (cleanup.policy=compact) on stream storage (issue 6), with confluent-kafka.

- test_compacted_topic_keeps_one_value_per_key: a compacted topic (created through the
  AdminClient with cleanup.policy=compact) gets many values for a few keys, next to a plain
  topic written at the same time (so both share stream set objects). Once uploaded and
  cleaned, a consumer from the beginning sees exactly one value per key, the latest, at the
  offset it was written at, offsets increasing, the end offset unchanged; a key deleted with
  a tombstone disappears after delete.retention.ms; the plain topic reads back in full.
- test_keyless_produce_to_compacted_topic_is_invalid_record: Kafka's INVALID_RECORD.
- test_max_compaction_lag_cleans_before_the_upload_interval: a topic with
  max.compaction.lag.ms=100 on a node with the default 60 s upload interval is cleaned
  within seconds (librdkafka's 0077 waits 20 s): the broker has the stream uploaded within
  the lag, and the cleaner cleans it whatever min.cleanable.dirty.ratio says.

Both run against the default file:// store and against moto (S3 with SigV4 enforced).

Run: .venv/bin/pytest -v Tests/integration/test_compaction.py
"""
from __future__ import annotations

import time
import uuid

import pytest

from silt_helpers import (EnvNode, create_topic, debug_objects, produce_all, producer, s3_bucket_override, s3_client,
                          s3_node_env, start_moto, stop_moto, wait_until)

# Uploads every 300 ms and a cleaner pass every 500 ms, so that cleaning happens within a test.
CLEANER_NODE = {
    "s3.wal.upload.interval.ms": "300",
    "log.cleaner.backoff.ms": "500",
    "s3.object.deletion.delay.ms": "1000",
    "s3.object.janitor.interval.ms": "500",
}
KEYS = [f"k{i}" for i in range(8)]
ROUNDS = 6                 # produce rounds, each flushed and uploaded: several objects per stream
PER_ROUND = 500            # messages per partition per round
DELETE_RETENTION_MS = 6000


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    env, pid_file = start_moto(tmp_path_factory.mktemp("moto"), ["silt-compaction-probe"])
    yield env
    stop_moto(pid_file)


@pytest.fixture(params=["file", "moto"])
def cleaner_node(request, tmp_path):
    """A started node with CLEANER_NODE timings, on the file store or a fresh moto bucket."""
    overrides, env = dict(CLEANER_NODE), {}
    if request.param == "moto":
        s3_env = request.getfixturevalue("moto")
        bucket = f"silt-compaction-{uuid.uuid4().hex[:8]}"
        s3_client(s3_env).create_bucket(Bucket=bucket)
        overrides.update(s3_bucket_override(bucket, s3_env["S3_ENDPOINT"]))
        env = s3_node_env(s3_env)
    n = EnvNode(tmp_path / "node", overrides, env=env)
    n.start(60)
    yield n
    failed = any(getattr(getattr(request.node, "rep_" + w, None), "failed", False) for w in ("setup", "call"))
    n.kill()
    if failed:
        print("\n" + n.log_tail(300))


def read_partition(node, topic: str, partition: int, end: int, timeout: float = 60.0) -> list[tuple[int, str | None, str | None]]:
    """(offset, key, value) of every record from the beginning of the partition up to `end`."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": node.bootstrap, "broker.address.family": "v4", "group.id": f"g-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": True})
    out: list[tuple[int, str | None, str | None]] = []
    try:
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, f"{topic}-{partition}: read only up to {out[-1:] } of {end} within {timeout}s"
            for m in c.consume(num_messages=10000, timeout=0.5):
                if m.error():
                    if m.error().code() == -191:   # _PARTITION_EOF
                        if c.position([TopicPartition(topic, partition)])[0].offset >= end:
                            return out
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                out.append((m.offset(), m.key().decode() if m.key() is not None else None,
                            m.value().decode() if m.value() is not None else None))
    finally:
        c.close()


def watermarks(node, topic: str, partition: int) -> tuple[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": node.bootstrap, "broker.address.family": "v4", "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def test_compacted_topic_keeps_one_value_per_key(cleaner_node):
    node = cleaner_node
    compacted, plain = "compacted", "plain"
    create_topic(node, compacted, partitions=2, config={"cleanup.policy": "compact",
                                                        "delete.retention.ms": str(DELETE_RETENTION_MS)})
    create_topic(node, plain, partitions=1)

    # latest[partition][key] = (offset, value); plain_values: everything written to the plain topic.
    latest: dict[int, dict[str, tuple[int, str | None]]] = {0: {}, 1: {}}
    plain_values: list[str] = []
    seq = 0
    for r in range(ROUNDS):
        msgs, plain_msgs = [], []
        for p in (0, 1):
            for i in range(PER_ROUND):
                key = KEYS[(i * 7 + r) % len(KEYS)]
                msgs.append((p, key.encode(), f"{key}-p{p}-{seq}".encode(), None))
                seq += 1
        for i in range(PER_ROUND):
            plain_msgs.append((0, None, f"plain-{r}-{i}".encode(), None))
        if r == ROUNDS - 1:
            # Partition 0: k3 deleted with a tombstone, then one more value for k0 so the
            # tombstone is not the partition's last record.
            msgs.append((0, b"k3", None, None))
            msgs.append((0, b"k0", b"k0-final", None))
        reports = produce_all(node, compacted, msgs)
        plain_values += [m[2].decode() for m in plain_msgs]
        produce_all(node, plain, plain_msgs)
        for (p, key, value, _), (rp, offset) in zip(msgs, reports):
            assert rp == p
            latest[p][key.decode()] = (offset, value.decode() if value is not None else None)
        time.sleep(0.5)   # an upload round in between: the streams span several objects
    ends = {p: watermarks(node, compacted, p)[1] for p in (0, 1)}
    assert ends == {0: ROUNDS * PER_ROUND + 2, 1: ROUNDS * PER_ROUND}

    def one_per_key(p: int, allow_tombstone: bool) -> bool:
        got = read_partition(node, compacted, p, ends[p])
        offsets = [o for o, _, _ in got]
        assert offsets == sorted(set(offsets)), f"offsets not strictly increasing: {offsets[:20]}"
        keys = [k for _, k, _ in got]
        if len(keys) != len(set(keys)):
            return False                       # not cleaned yet
        want = {k: v for k, v in latest[p].items() if v[1] is not None or allow_tombstone}
        have = {k: (o, v) for o, k, v in got}
        if not allow_tombstone and any(v is None for _, v in have.values()):
            return False                       # the tombstone is not due yet
        if allow_tombstone and "k3" in want and p == 0 and "k3" not in have:
            want.pop("k3")                     # already expired and cleaned away: also fine
        assert have == want, f"partition {p}: {have} != {want}"
        return True

    for p in (0, 1):
        wait_until(lambda p=p: one_per_key(p, allow_tombstone=True), timeout=60, what=f"partition {p} cleaned")
    # The end offset never moves, and the controller still covers every offset [0, end).
    assert {p: watermarks(node, compacted, p) for p in (0, 1)} == {p: (0, ends[p]) for p in (0, 1)}
    streams = {(s["topic"], s["partition"]): s for s in debug_objects(node)["streams"]}
    for p in (0, 1):
        assert (streams[(compacted, p)]["start"], streams[(compacted, p)]["end"]) == (0, ends[p])

    # After delete.retention.ms the tombstone goes too, with no new data written.
    wait_until(lambda: one_per_key(0, allow_tombstone=False), timeout=DELETE_RETENTION_MS / 1000 + 30,
               what="the tombstone of k3 removed")
    assert "k3" not in {k for _, k, _ in read_partition(node, compacted, 0, ends[0])}

    # The plain topic, which shared stream set objects with the compacted one, is whole.
    got = read_partition(node, plain, 0, len(plain_values))
    assert [o for o, _, _ in got] == list(range(len(plain_values)))
    assert [v for _, _, v in got] == plain_values


def test_keyless_produce_to_compacted_topic_is_invalid_record(cleaner_node):
    from confluent_kafka import KafkaError

    node = cleaner_node
    create_topic(node, "keyed", partitions=1, config={"cleanup.policy": "compact"})
    p = producer(node, retries=0)
    results = []
    # Two flushes: in one batch, the keyless record would take the keyed one down with it.
    p.produce("keyed", value=b"no key", on_delivery=lambda err, msg: results.append(err))
    assert p.flush(30) == 0
    p.produce("keyed", key=b"k", value=b"keyed", on_delivery=lambda err, msg: results.append(err))
    assert p.flush(30) == 0
    assert results[0] is not None and results[0].code() == KafkaError.INVALID_RECORD, results
    assert results[1] is None, results
    assert watermarks(node, "keyed", 0) == (0, 1), "only the keyed record was written"


def test_max_compaction_lag_cleans_before_the_upload_interval(tmp_path):
    """KIP-354 on stream storage. Without max.compaction.lag.ms nothing would be uploaded (and
    so nothing cleaned) for s3.wal.upload.interval.ms (60 s by default); with it, a consumer
    from the beginning sees one value per key within 20 s, as librdkafka's 0077 expects."""
    node = EnvNode(tmp_path / "node", {"log.cleaner.backoff.ms": "500"})
    node.start(60)
    try:
        create_topic(node, "lagged", partitions=1, config={
            "cleanup.policy": "compact", "max.compaction.lag.ms": "100", "min.cleanable.dirty.ratio": "0.99"})
        latest: dict[str, tuple[int, str]] = {}
        for r in range(3):
            msgs = [(0, k.encode(), f"{k}-{r}".encode(), None) for k in KEYS]
            for (_, key, value, _), (_, offset) in zip(msgs, produce_all(node, "lagged", msgs)):
                latest[key.decode()] = (offset, value.decode())
        end = 3 * len(KEYS)
        assert watermarks(node, "lagged", 0) == (0, end)

        def cleaned() -> bool:
            got = read_partition(node, "lagged", 0, end)
            if len(got) != len(KEYS):
                return False
            assert {k: (o, v) for o, k, v in got} == latest
            return True

        started = time.monotonic()
        wait_until(cleaned, timeout=20, what="the max.compaction.lag.ms topic cleaned before the 60 s upload interval")
        assert time.monotonic() - started < 20
        assert watermarks(node, "lagged", 0) == (0, end), "offsets never move"
    finally:
        node.kill()
