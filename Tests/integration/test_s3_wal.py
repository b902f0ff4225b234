"""S3 WAL mode: `s3.wal.path=0@s3://bucket?region=..&endpoint=..` (AutoMQ's syntax). A produce is
acknowledged once its batch is in an object in the bucket; no WAL lives on a local disk.

- The five-node layout from generate-start-command (on moto, SigV4 enforced), each printed line
  plus `--override s3.wal.path=0@s3://silt-wal?...` and log.dirs:
  - no node has a WAL file, and each node's records are objects under silt-wal/<cluster>/<node>/;
  - kill -9 of broker-only node 4 under an idempotent acks=all load: every partition it led is
    led by a live broker and takes a write within broker.session.timeout.ms + 2 s (another
    node read node 4's WAL from the bucket and committed it); node 4 restarted rejoins leading
    none of them; every acknowledged record is read back at its offset, none twice.
- One node whose S3 WAL goes through a fault proxy (two fifths of the requests fail, are cut or are slowed):
  acknowledgements wait for the retried PUTs, and after kill -9 and a restart every acknowledged
  record is read back at its offset.
"""
from __future__ import annotations

import itertools
import time

import pytest

import test_cluster as tc
from silt_helpers import (EnvNode, FaultProxy, create_topic, produce_stream, raw_produce, read_back, s3_client,
                          s3_node_env, start_moto, stop_moto, verify_read_back, wait_until)

WAL_BUCKET = "silt-wal"
# One PUT per 20 ms at most per node (AutoMQ's default window is 250 ms).
BATCH_INTERVAL_MS = 20


def wal_override(endpoint: str, interval_ms: int = BATCH_INTERVAL_MS) -> str:
    return (f"s3.wal.path=0@s3://{WAL_BUCKET}?region=us-east-1&endpoint={endpoint}&pathStyle=true"
            f"&batchInterval={interval_ms}")


@pytest.fixture(scope="module")
def s3_cluster(tmp_path_factory):
    with tc.five_nodes(tmp_path_factory.mktemp("s3wal"), ["silt-data", "silt-ops", WAL_BUCKET],
                       extra=lambda _i, moto: dict([wal_override(moto["S3_ENDPOINT"]).split("=", 1)])) as (cluster, moto):
        cluster.moto = moto
        yield cluster


@pytest.fixture(autouse=True)
def logs_on_failure(request):
    yield
    if any(getattr(getattr(request.node, "rep_" + w, None), "failed", False) for w in ("setup", "call")) \
            and "s3_cluster" in request.fixturenames:
        for n in request.getfixturevalue("s3_cluster").nodes:
            print(f"\n===== node {n.node_id}\n{n.log_tail(60)}")


def wal_keys(moto: dict, cluster_id: str, node_id: int) -> list[str]:
    s3 = s3_client(moto)
    page = s3.list_objects_v2(Bucket=WAL_BUCKET, Prefix=f"silt-wal/{cluster_id}/{node_id}/")
    return [o["Key"] for o in page.get("Contents", [])]


def test_records_are_objects_and_no_node_has_a_wal_file(s3_cluster):
    topic = "s3wal-seed"
    tc.create_topic(topic)
    tc.wait_topic_led(s3_cluster, topic)
    acked = tc.produce_confluent(topic, 300, "seed")
    assert len(acked) == 300
    for n in s3_cluster.nodes:
        if "broker" not in n.roles:
            continue
        assert "S3 WAL opened" in n.log_text(), f"node {n.node_id} did not open an S3 WAL\n{n.log_tail(20)}"
        files = [p for p in n.data_dir.rglob("*") if p.is_file() and p.stat().st_size >= 1 << 20]
        assert not files, f"node {n.node_id} has big files under log.dirs: {files}"
        keys = wal_keys(s3_cluster.moto, s3_cluster.cluster_id, n.node_id)
        assert f"silt-wal/{s3_cluster.cluster_id}/{n.node_id}/head" in keys, keys


def test_killed_broker_partitions_are_writable_elsewhere_within_the_session_timeout(s3_cluster):
    cluster = s3_cluster
    topic = "s3wal-kill"
    victim = cluster.nodes[4]
    assert victim.roles == {"broker"}
    tc.create_topic(topic)
    before = tc.wait_topic_led(cluster, topic)
    mine = sorted(p for p, (l, _) in before.items() if l == victim.node_id)
    assert mine, f"node 4 leads no partition of {topic}: {before}"
    session_ms = int(cluster.broker_config("broker.session.timeout.ms") or tc.KAFKA_BROKER_SESSION_TIMEOUT_MS)
    survivors = [n for n in cluster.nodes if n is not victim]
    by_id = {n.node_id: n for n in cluster.nodes}
    load = tc.Load(topic).start()
    try:
        load.wait_acks(300, what="before the kill")
        killed_at = time.monotonic()
        victim.kill()
        writable: dict[int, float] = {}
        last: dict[int, object] = {}
        # Probe values Load.verify reads as negative sequence numbers, each written once.
        probes = itertools.count(1)

        def all_writable():
            leaders = cluster.leaders(topic, via=survivors[0])
            for p in mine:
                if p in writable:
                    continue
                leader = leaders.get(p, (-1, 0))[0]
                last[p] = leader
                if leader in by_id and leader != victim.node_id:
                    n = by_id[leader]
                    try:
                        r = raw_produce(n.host, n.port, topic, p, [b"seq--%d" % next(probes)], timeout=2)
                    except (OSError, EOFError) as e:
                        last[p] = repr(e)
                        continue
                    last[p] = (leader, r)
                    if r["error"] == 0:
                        writable[p] = time.monotonic() - killed_at
            return len(writable) == len(mine)
        wait_until(all_writable, session_ms / 1000 + 15, lambda: f"node 4's partitions {mine} writable elsewhere: "
                                                                  f"{writable}, last seen {last}", interval=0.05)
        worst = max(writable.values())
        print(f"node 4's partitions {mine} writable elsewhere after kill -9 (s): "
              f"{ {p: round(t, 2) for p, t in writable.items()} }; broker.session.timeout.ms={session_ms}")
        assert worst <= session_ms / 1000 + 2, f"a partition took {worst:.1f}s (> session {session_ms} ms + 2 s)"
        assert any("took over a dead broker's WAL" in n.log_text() and "wal=S3 WAL" in n.log_text() for n in survivors)
        load.wait_acks(200, partitions=mine, what="on node 4's old partitions at their new leaders")
        victim.start(tc.START_TIMEOUT_S)
        wait_until(lambda: sorted(cluster.metadata([], via=survivors[0])["brokers"]) == [0, 1, 2, 3, 4], 30,
                   "node 4 back in Metadata")
        led = cluster.leaders(topic, via=survivors[0])
        assert all(led[p][0] != victim.node_id for p in mine), f"node 4 took its old partitions back: {led}"
        load.wait_acks(100, what="after node 4 rejoined")
    finally:
        load.stop()
    load.verify()


def test_acknowledgements_wait_out_s3_faults_and_nothing_is_lost(tmp_path):
    moto, moto_pid = start_moto(tmp_path / "moto", [WAL_BUCKET])
    node = None
    try:
        with FaultProxy(moto["S3_ENDPOINT"], fault_rate=0.4, seed=11, max_latency_ms=200) as proxy:
            key, value = wal_override(proxy.endpoint, interval_ms=5).split("=", 1)
            node = EnvNode(tmp_path / "node", {key: value, "s3.wal.upload.interval.ms": "2000"},
                           env=s3_node_env(moto))
            node.start(60)
            topic = "s3wal-faults"
            create_topic(node, topic, 3)
            acks = produce_stream(node, topic, 3, 2 << 20, 1024)
            assert not acks.errors, f"{len(acks.errors)} delivery errors, first: {acks.errors[:3]}"
            node.kill()
            node.start(60)
            got = read_back(node, topic, {p: max(o) + 1 for p, o in acks.acked.items()})
            verify_read_back(acks, got)
            stats = proxy.stats()
            faults = sum(stats.get(k, 0) for k in ("500", "503", "reset", "truncate"))
            assert faults > 0, f"the proxy injected no failure, the test proved nothing: {stats}"
            print(f"\nfault proxy: {stats}")
    finally:
        if node is not None:
            node.kill()
        stop_moto(moto_pid)


def test_a_missing_wal_bucket_stops_the_node_once_with_the_reason(tmp_path):
    """An S3 WAL whose bucket does not exist is a configuration error: the WAL role says which
    bucket and exits once, and the node stops with EX_CONFIG instead of crash-looping."""
    from silt_helpers import NodeError

    moto, moto_pid = start_moto(tmp_path / "moto", ["some-other-bucket"])
    node = None
    try:
        key, value = wal_override(moto["S3_ENDPOINT"]).split("=", 1)
        node = EnvNode(tmp_path / "node", {key: value}, env=s3_node_env(moto))
        with pytest.raises(NodeError):
            node.start(60)
        rc = node.proc.wait(60)
        log = node.log_text()
        assert rc == 78, log[-4000:]
        assert "role wal" in log and "NoSuchBucket" in log and WAL_BUCKET in log, log[-4000:]
        assert "restarting role" not in log, log[-4000:]
    finally:
        if node is not None:
            node.kill()
        stop_moto(moto_pid)
