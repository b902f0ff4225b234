"""Stream storage on object storage (issue 5), against both data stores.

Every test runs against the default `file://<log.dirs>/objects` store and against moto (S3,
SigV4 enforced, a fresh bucket per test), except the fault-proxy test (S3 only).

- test_stream_storage_end_to_end walks the issue's main flow on one node: 200 MiB over 20
  partitions with acks=all -> stream set objects in the bucket -> the WAL trims -> a
  consumer from offset 0 reads every byte back through object storage -> compaction lowers
  the object count and a second read still matches -> graceful stop, log.dirs wiped but for
  the metadata (and the file store's objects), restart, and everything reads back again.
- test_s3_faults_lose_no_acknowledged_message: 20% of S3 requests fail or stall (fault proxy).
- test_deleted_topic_leaves_no_object: deleting the only topic empties the bucket.
- test_killed_uploader_leaves_no_orphan: kill -9 of the uploader mid-upload, repeatedly.

Run: .venv/bin/pytest -v Tests/integration/test_streams.py   (-k file / -k moto for one store)
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import threading
import time
import uuid

import pytest

from silt_helpers import (AckLog, DataBucket, EnvNode, FaultProxy, Metrics, admin, create_topic, debug_objects,
                          free_port, node_role_pids, produce_stream, prometheus_override, read_back,
                          s3_bucket_override, s3_client, s3_node_env, start_moto, stop_moto, verify_read_back,
                          wait_until)

MiB = 1 << 20
VALUE_SIZE = 4096
STOP_TIMEOUT = 90.0        # a graceful stop uploads everything pending first
START_TIMEOUT = 60.0

# Short timings so that uploads, compactions and the janitor happen within a test.
STREAM_DEFAULTS = {
    "s3.wal.cache.size": str(16 * MiB),            # a small log buffer: old reads go to object storage
    "s3.wal.upload.threshold": str(4 * MiB),
    "s3.wal.upload.interval.ms": "1000",
    "s3.stream.set.object.compaction.interval.ms": "3000",
    "s3.stream.object.compaction.interval.ms": "3000",
    "s3.object.prepare.ttl.ms": "10000",         # long enough for a compaction through moto
    "s3.object.janitor.interval.ms": "500",
    # Dead objects (compacted away, deleted topics) leave the bucket after 1 s, not 60.
    "s3.object.deletion.delay.ms": "1000",
}
NO_COMPACTION = {"s3.stream.set.object.compaction.interval.ms": "3600000",
                 "s3.stream.object.compaction.interval.ms": "3600000"}


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """moto on loopback with SigV4 enforced; yields its env (tests create their own buckets)."""
    env, pid_file = start_moto(tmp_path_factory.mktemp("moto"), ["silt-streams-probe"])
    yield env
    stop_moto(pid_file)


class Store:
    """Where a test node keeps its objects: kind "file" (the default file:// store under
    log.dirs) or "moto" (a fresh bucket of the module's moto server)."""

    def __init__(self, kind: str, s3_env: dict | None = None, bucket: str | None = None):
        self.kind, self.s3_env, self.bucket_name = kind, s3_env, bucket

    def overrides(self, endpoint: str | None = None) -> dict[str, str]:
        """The node's data-bucket override; `endpoint` replaces moto's (e.g. a fault proxy)."""
        if self.kind == "file":
            return {}
        return s3_bucket_override(self.bucket_name, endpoint or self.s3_env["S3_ENDPOINT"])

    def env(self) -> dict[str, str]:
        return s3_node_env(self.s3_env) if self.kind == "moto" else {}

    def bucket(self, node) -> DataBucket:
        if self.kind == "file":
            return DataBucket.local(node.data_dir / "objects")
        return DataBucket.s3(self.s3_env, self.bucket_name)


def _moto_store(request) -> Store:
    env = request.getfixturevalue("moto")
    name = f"silt-{request.node.name.split('[')[0][5:30].replace('_', '-')}-{uuid.uuid4().hex[:8]}".lower()
    s3_client(env).create_bucket(Bucket=name)
    return Store("moto", env, name)


@pytest.fixture(params=["file", "moto"])
def store(request) -> Store:
    return Store("file") if request.param == "file" else _moto_store(request)


@pytest.fixture
def moto_store(request) -> Store:
    return _moto_store(request)


@pytest.fixture
def stream_node(request, tmp_path):
    """make(store, overrides, endpoint=None) -> a started EnvNode with STREAM_DEFAULTS, the
    store's bucket and credentials, and a Prometheus endpoint (node.metrics_port).
    Nodes are killed at teardown; their stderr is printed when the test failed."""
    nodes: list[EnvNode] = []

    def make(store: Store, overrides: dict | None = None, endpoint: str | None = None) -> EnvNode:
        port = free_port()
        ov = dict(STREAM_DEFAULTS)
        ov.update(prometheus_override(port))
        ov.update(store.overrides(endpoint))
        ov.update({k: str(v) for k, v in (overrides or {}).items()})
        n = EnvNode(tmp_path / f"node{len(nodes)}", ov, env=store.env())
        n.metrics_port = port
        nodes.append(n)
        n.start(START_TIMEOUT)
        return n

    yield make
    failed = any(getattr(getattr(request.node, "rep_" + w, None), "failed", False) for w in ("setup", "call"))
    for n in nodes:
        n.kill()
        if failed:
            sys.stdout.write("\n" + n.log_tail(300) + "\n")


# ------------------------------------------------------------------ small steps

def metrics(node) -> Metrics:
    return Metrics.scrape(node.metrics_port)


def cluster_id(node) -> str:
    m = re.search(r"^cluster\.id=(\S+)$", (node.data_dir / "meta.properties").read_text(), re.M)
    assert m, f"no cluster.id in {node.data_dir / 'meta.properties'}"
    return m.group(1)


def wait_uploaded(node, timeout: float = 180.0, used_below: int | None = None) -> Metrics:
    """Wait until the WAL has nothing pending (everything acked is in objects) and, when
    given, its used bytes are below `used_below` (it was trimmed)."""
    last = {}

    def done():
        m = metrics(node)
        last["pending"] = m.need("silt_wal_pending_bytes")
        last["used"] = m.need("silt_wal_used_bytes")
        return m if last["pending"] == 0 and (used_below is None or last["used"] < used_below) else None

    return wait_until(done, timeout, lambda: f"WAL not drained: pending={last.get('pending')} bytes, "
                                             f"used={last.get('used')} bytes (want pending 0"
                                             + (f", used < {used_below})" if used_below else ")"))


def listed_keys(objs: dict) -> dict[str, dict]:
    return {o["key"]: o for o in objs["objects"]}


def assert_listing_matches_bucket(node, bucket: DataBucket) -> dict:
    """Every object `silt debug objects` lists exists in the bucket, and every object key in
    the bucket is a listed object or one awaiting deletion. Returns the listing."""
    objs = debug_objects(node)
    listed = listed_keys(objs)
    keys = bucket.keys()
    missing = sorted(set(listed) - keys)
    assert not missing, f"{len(missing)} committed objects have no key in {bucket}, e.g. {missing[:3]}"
    pending_delete = set(objs.get("awaitingDeletion", []))
    unknown = sorted(k for k in keys - set(listed) if bucket.object_id(k) not in pending_delete)
    assert not unknown, f"{len(unknown)} keys in {bucket} belong to no listed object, e.g. {unknown[:3]}"
    return objs


def read_and_verify(node, topic: str, acks: AckLog, exact: bool = True, timeout: float = 300.0) -> float:
    """Read every partition from 0 to its last acked offset and compare; returns seconds."""
    t0 = time.monotonic()
    got = read_back(node, topic, acks.ends(), timeout=timeout)
    verify_read_back(acks, got, exact=exact)
    return time.monotonic() - t0


def wipe_log_dirs(node, keep: set[str]) -> list[str]:
    """Delete everything in the node's log.dirs except the names in `keep`; returns what went."""
    gone = []
    for entry in node.data_dir.iterdir():
        if entry.name in keep:
            continue
        gone.append(entry.name)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return sorted(gone)


# ------------------------------------------------------------------ 1-6: the main flow

TOTAL_BYTES = 200 * MiB
PARTITIONS = 20


@pytest.mark.timeout(900)
def test_stream_storage_end_to_end(store, stream_node):
    """Issue 5's main flow on one node, steps in order:
    1. 200 MiB of 4 KiB incompressible values over 20 partitions, acks=all, are all acked;
    2. stream set objects appear in the data bucket, under `<4 hex>/<cluster id>/o/<id>`, and
       `silt debug objects` lists exactly the bucket's objects;
    3. the WAL trims: nothing pending, used bytes far below what was produced;
    4. a consumer from offset 0 reads every acked message back at its offset (ordered
       digests equal), and the reads went to object storage (fetch object reads, GET bytes);
    5. with compaction on (node restarted with 3 s intervals), the object count falls below
       the count after step 2, and a second full read still matches;
    6. after a graceful stop and a wipe of log.dirs except __cluster_metadata/, meta.properties
       and (file store) objects/ (so the WAL file goes too), a restarted node reads it all back
       from object storage alone.
    Compaction is held off (1 h intervals) during steps 1-4 so step 2's count is the
    uncompacted one."""
    node = stream_node(store, {**NO_COMPACTION, "s3.wal.upload.threshold": str(2 * MiB)})
    bucket = store.bucket(node)
    topic = "streams-e2e"
    create_topic(node, topic, PARTITIONS)
    assert bucket.count() == 0, f"{bucket} holds objects before anything was produced: {sorted(bucket.keys())[:5]}"

    # 1. produce
    t0 = time.monotonic()
    acks = produce_stream(node, topic, PARTITIONS, TOTAL_BYTES, VALUE_SIZE)
    produce_s = time.monotonic() - t0
    assert not acks.errors, f"{len(acks.errors)} delivery errors, first: {acks.errors[:3]}"
    sent = TOTAL_BYTES // VALUE_SIZE
    assert acks.count() == sent, f"{acks.count()} of {sent} messages acked"
    assert sorted(acks.acked) == list(range(PARTITIONS)), f"acks came from partitions {sorted(acks.acked)}"

    # 2. stream set objects in the bucket
    wait_until(lambda: bucket.count() > 0, 60, f"no object appeared in {bucket} within 60 s of the last ack")
    m = wait_uploaded(node, timeout=180)
    assert m.get("silt_objects_uploaded_total", kind="stream_set") > 0, "no stream set object was uploaded"
    keys = bucket.keys()
    key_re = re.compile(rf"^[0-9a-f]{{4}}/{re.escape(cluster_id(node))}/o/\d+$")
    bad = sorted(k for k in keys if not key_re.match(k))
    assert not bad, f"object keys not of the form <4 hex>/<cluster id>/o/<id>: {bad[:3]}"
    objs = assert_listing_matches_bucket(node, bucket)
    kinds = {o["kind"] for o in objs["objects"]}
    assert "stream_set" in kinds, f"no stream set object among the committed objects (kinds: {kinds})"
    covered = sum(r["end"] - r["start"] for o in objs["objects"] for r in o["ranges"])
    assert covered >= sent, f"committed objects cover {covered} offsets, {sent} were acked"
    streams = {(s["topic"], s["partition"]): s for s in objs["streams"]}
    for p, end in acks.ends().items():
        s = streams.get((topic, p))
        assert s is not None, f"no stream for {topic}-{p} in silt debug objects"
        assert s["end"] >= end, f"stream of {topic}-{p} ends at {s['end']}, acked up to {end}"
    objects_before_compaction = len(keys)
    # Compaction leaves at least about one stream object per partition (10 MiB each, above the
    # 8 MiB default split size), so a fall in the count needs more objects than partitions.
    assert objects_before_compaction > 2 * PARTITIONS, \
        f"only {objects_before_compaction} objects for 200 MiB at a 2 MiB upload threshold: too few to compact"

    # 3. the WAL trims
    wait_uploaded(node, timeout=60, used_below=TOTAL_BYTES // 10)

    # 4. everything reads back, through object storage
    before = metrics(node)
    read1_s = read_and_verify(node, topic, acks)
    after = metrics(node)
    object_reads = after.need("silt_fetch_object_reads_total") - before.get("silt_fetch_object_reads_total")
    assert object_reads > 0, "no fetch was served from object storage (silt_fetch_object_reads_total did not move)"
    get_bytes = after.need("silt_s3_get_bytes_total") - before.get("silt_s3_get_bytes_total")
    if store.kind == "moto":
        assert get_bytes >= TOTAL_BYTES // 2, \
            f"only {get_bytes} bytes were read from S3 for a {TOTAL_BYTES}-byte read-back with a 16 MiB log buffer"

    # 5. compaction
    node.stop(STOP_TIMEOUT)
    node.overrides.update({k: STREAM_DEFAULTS[k] for k in NO_COMPACTION})
    node.start(START_TIMEOUT)
    wait_until(lambda: bucket.count() < objects_before_compaction, 240,
               lambda: f"object count still {bucket.count()} (was {objects_before_compaction} before compaction)")
    m = metrics(node)
    assert m.need("silt_compactions_total") > 0, "the object count fell but silt_compactions_total is 0"
    read2_s = read_and_verify(node, topic, acks)
    objs = assert_listing_matches_bucket(node, bucket)
    objects_after_compaction = bucket.count()
    kinds_after = sorted(o["kind"] for o in objs["objects"])

    # 6. graceful stop, wipe all but metadata (and the file store's objects), restart
    rc = node.stop(STOP_TIMEOUT)
    assert rc == 0, f"graceful stop exited {rc}"
    keep = {"__cluster_metadata", "meta.properties"} | ({"objects"} if store.kind == "file" else set())
    gone = wipe_log_dirs(node, keep)
    left = {p.name for p in node.data_dir.iterdir()}
    assert {"__cluster_metadata", "meta.properties"} <= left <= keep, f"log.dirs after the wipe: {sorted(left)}"
    assert gone, "the wipe removed nothing: where is the WAL file?"
    node.start(START_TIMEOUT)
    read3_s = read_and_verify(node, topic, acks)
    m = metrics(node)
    assert m.need("silt_fetch_object_reads_total") > 0, \
        "after the wipe, nothing was read from object storage (silt_fetch_object_reads_total is 0)"
    print(f"\n[{store.kind}] produced {TOTAL_BYTES >> 20} MiB in {produce_s:.1f}s; objects: "
          f"{objects_before_compaction} -> {objects_after_compaction} after compaction ({kinds_after}); reads "
          f"{read1_s:.1f}s / {read2_s:.1f}s / {read3_s:.1f}s (after wiping {gone})")


# ------------------------------------------------------------------ 7: S3 faults

@pytest.mark.timeout(600)
def test_s3_faults_lose_no_acknowledged_message(moto_store, stream_node):
    """With 20% of the node's S3 requests failing (500, 503, reset, truncated body) or stalled
    (the fault proxy sits between node and moto), 20 MiB over 4 partitions with acks=all are
    all acked (the WAL, not S3, is what an ack waits for), uploaded in the end, and after a
    restart (cold caches: every old read goes through the faulty S3) every acked message is
    read at its acked offset, in order, with no gap."""
    partitions, total = 4, 20 * MiB
    with FaultProxy(moto_store.s3_env["S3_ENDPOINT"], fault_rate=0.2, seed=7, max_latency_ms=300) as proxy:
        node = stream_node(moto_store, endpoint=proxy.endpoint)
        topic = "streams-faults"
        create_topic(node, topic, partitions)
        acks = produce_stream(node, topic, partitions, total, VALUE_SIZE)
        assert not acks.errors, f"{len(acks.errors)} delivery errors under S3 faults, first: {acks.errors[:3]}"
        wait_uploaded(node, timeout=240)
        assert moto_store.bucket(node).count() > 0, "nothing reached the bucket through the fault proxy"
        node.stop(STOP_TIMEOUT)
        node.start(START_TIMEOUT)
        read_and_verify(node, topic, acks, exact=False)
        stats = proxy.stats()
        faults = sum(stats[k] for k in ("500", "503", "reset", "truncate"))
        assert faults > 0, f"the proxy injected no failure, the test proved nothing: {stats}"
        m = metrics(node)
        assert m.need("silt_fetch_object_reads_total") > 0, "the read-back did not go through object storage"
        print(f"\nfault proxy: {stats}")


# ------------------------------------------------------------------ 8: topic deletion

@pytest.mark.timeout(300)
def test_deleted_topic_leaves_no_object(store, stream_node):
    """A topic with a few MiB in objects is deleted (DeleteTopics); within 30 s the bucket
    holds no object again (it was the only topic) and `silt debug objects` lists no stream of
    it and no object."""
    node = stream_node(store)
    bucket = store.bucket(node)
    topic = "streams-doomed"
    create_topic(node, topic, 3)
    before = bucket.count()
    assert before == 0, f"{bucket} holds {before} objects before the only topic got data"
    acks = produce_stream(node, topic, 3, 8 * MiB, VALUE_SIZE)
    assert not acks.errors, f"{len(acks.errors)} delivery errors, first: {acks.errors[:3]}"
    wait_uploaded(node, timeout=120)
    wait_until(lambda: bucket.count() > before, 30, f"the topic's data never reached {bucket}")

    a = admin(node)  # held: a collected client cancels its futures
    fs = a.delete_topics([topic], operation_timeout=30, request_timeout=30)
    fs[topic].result(timeout=30)
    t0 = time.monotonic()
    wait_until(lambda: bucket.count() == before, 30,
               lambda: f"{bucket} still holds {bucket.count()} objects after deleting the only topic "
                       f"(expected {before}): {sorted(bucket.keys())[:5]}")
    gone_s = time.monotonic() - t0
    objs = debug_objects(node)
    left = [s for s in objs["streams"] if s["topic"] == topic]
    assert not left, f"streams of the deleted topic remain: {left}"
    assert not objs["objects"], f"objects remain listed after deleting the only topic: {objs['objects'][:3]}"
    print(f"\n[{store.kind}] objects gone {gone_s:.1f}s after DeleteTopics")


# ------------------------------------------------------------------ 9: killed uploader

@pytest.mark.timeout(600)
def test_killed_uploader_leaves_no_orphan(store, stream_node):
    """kill -9 of the `uploader` role while an upload is in flight (a prepared object id
    exists), three times during sustained acks=all production; afterwards: every acked
    message reads back with no gap, no prepared id survives the 3 s TTL plus the janitor,
    every object key in the bucket belongs to an object `silt debug objects` lists, and
    every listed object's key exists. On S3 the node talks to moto through the fault proxy
    adding up to 400 ms to every request, which keeps each upload in flight for a while."""
    partitions = 4
    overrides = {"s3.wal.upload.threshold": str(16 * MiB), "s3.wal.cache.size": str(64 * MiB),
                 "s3.object.part.size": str(5 * MiB), "s3.wal.upload.interval.ms": "5000"}
    proxy = None
    if store.kind == "moto":
        proxy = FaultProxy(store.s3_env["S3_ENDPOINT"], fault_rate=1.0, faults="latency", max_latency_ms=400, seed=9)
    try:
        node = stream_node(store, overrides, endpoint=proxy.endpoint if proxy else None)
        bucket = store.bucket(node)
        topic = "streams-kill-uploader"
        create_topic(node, topic, partitions)
        def uploader_other_than(old):
            def check():
                pid = node_role_pids(node).get("uploader")
                return pid if pid not in (None, old) else None
            return check

        uploader = wait_until(uploader_other_than(None), 30, "the uploader role is not running")

        acks = AckLog()
        stop = threading.Event()
        producer_failed: list[BaseException] = []

        def produce():
            try:
                produce_stream(node, topic, partitions, 160 * MiB, VALUE_SIZE, acks=acks,
                               rate_bytes_per_s=8 * MiB, until=stop)
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                producer_failed.append(e)

        t = threading.Thread(target=produce, daemon=True)
        t.start()
        kills = 0
        killed_prepared: set[int] = set()
        try:
            # A kill lands mid-upload when a prepared id (not one of an earlier kill) exists.
            while kills < 3 and t.is_alive():
                prepared = set(debug_objects(node)["prepared"]) - killed_prepared
                if not prepared:
                    time.sleep(0.02)
                    continue
                os.kill(uploader, signal.SIGKILL)
                kills += 1
                killed_prepared |= prepared
                uploader = wait_until(uploader_other_than(uploader), 30,
                                      f"the uploader (pid {uploader}) was not restarted after kill -9")
            time.sleep(2)   # some production after the last kill
        finally:
            stop.set()
            t.join(300)
        assert not t.is_alive(), "the producer did not finish within 300 s"
        assert not producer_failed, f"the producer failed: {producer_failed[0]!r}"
        assert kills == 3, \
            f"only {kills} of 3 kills landed while an upload was in flight (production ended first)"
        assert not acks.errors, f"{len(acks.errors)} delivery errors, first: {acks.errors[:3]}"
        assert acks.count() > 0, "nothing was acked"

        wait_uploaded(node, timeout=240)
        read_and_verify(node, topic, acks, exact=False)

        ttl_s = (int(STREAM_DEFAULTS["s3.object.prepare.ttl.ms"]) + int(STREAM_DEFAULTS["s3.object.janitor.interval.ms"])) / 1000
        wait_until(lambda: not debug_objects(node)["prepared"], ttl_s + 20,
                   lambda: f"prepared ids left {ttl_s:.1f}s+20s after the last kill: {debug_objects(node)['prepared']}")
        wait_until(lambda: not debug_objects(node)["awaitingDeletion"], 30,
                   lambda: f"objects still awaiting deletion: {debug_objects(node)['awaitingDeletion']}")

        def consistent():
            return set(listed_keys(debug_objects(node))) == bucket.keys()

        def diff():
            listed, keys = set(listed_keys(debug_objects(node))), bucket.keys()
            return (f"orphan keys (in {bucket}, not listed): {sorted(keys - listed)[:5]}; "
                    f"listed objects without a key: {sorted(listed - keys)[:5]}")

        wait_until(consistent, 30, diff)
        assert bucket.count() > 0, f"{bucket} is empty although {acks.count()} messages were acked"
        print(f"\n[{store.kind}] {kills} uploader kills mid-upload, {acks.count()} acked"
              + (f", pending multipart uploads: {bucket.pending_multipart_uploads()}" if store.kind == "moto" else ""))
    finally:
        if proxy:
            proxy.stop()
