"""Durability: every acknowledged message survives SIGKILL and SIGTERM restarts, at the same offset."""
from __future__ import annotations

import pytest

from silt_helpers import consume_partitions, create_topic, produce_all

N = 20_000
PARTITIONS = 3


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_restart_keeps_acknowledged(node, how):
    topic = f"restart-{how}"
    create_topic(node, topic, partitions=PARTITIONS)
    msgs = [(i % PARTITIONS, f"k{i}".encode(), f"{how}-{i}-".encode() * 8, [("n", str(i).encode())])
            for i in range(N)]
    acked = produce_all(node, topic, msgs, timeout=120)

    if how == "sigkill":
        node.kill()
    else:
        rc = node.stop()
        assert rc == 0, f"silt exited with {rc} after SIGTERM (expected a clean 0)"
    node.start()

    got = consume_partitions(node, topic, range(PARTITIONS), N, timeout=120)
    at = {(p, m.offset()): m for p, ms in got.items() for m in ms}
    assert len(at) == N, f"expected {N} messages after restart, found {len(at)}"
    for i, (p, off) in enumerate(acked):
        m = at.get((p, off))
        assert m is not None, f"acknowledged message {i} at {p}/{off} lost after {how} restart"
        assert (m.key(), m.value()) == (msgs[i][1], msgs[i][2]), f"message {i} at {p}/{off} differs after restart"
        assert m.headers() == msgs[i][3], f"message {i} headers differ after restart"

    # the log keeps growing from where it was: new offsets continue after the old ones
    end = {p: max(o for pp, o in acked if pp == p) + 1 for p in range(PARTITIONS)}
    more = [(p, b"after", f"after-restart-{p}".encode(), None) for p in range(PARTITIONS)]
    acked2 = produce_all(node, topic, more, timeout=30)
    assert acked2 == [(p, end[p]) for p in range(PARTITIONS)], f"offsets after restart {acked2}, expected {end}"


def test_restart_twice_and_topics_survive(node):
    """Topic metadata (partition count) survives restarts; a SIGKILL right after a SIGTERM restart is fine."""
    create_topic(node, "survivor", partitions=4)
    acked = produce_all(node, "survivor", [(p, None, f"m{p}".encode(), None) for p in range(4)], timeout=30)
    node.kill()
    node.start()
    node.stop()
    node.start()
    got = consume_partitions(node, "survivor", range(4), 4, timeout=30)
    assert sorted((p, m.offset(), m.value()) for p, ms in got.items() for m in ms) == \
        sorted((p, o, f"m{p}".encode()) for p, o in acked)


def test_sigkill_while_producing_loses_nothing_acknowledged(node):
    """SIGKILL in the middle of a stream of acks=all produces: every message whose delivery
    report succeeded is there after restart, at the reported offset."""
    from confluent_kafka import TopicPartition

    from silt_helpers import consumer, producer

    topic = "kill-midstream"
    create_topic(node, topic, partitions=PARTITIONS)
    acked: dict[tuple[int, int], bytes] = {}
    failed = [0]

    def cb(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            failed[0] += 1

    p = producer(node, **{"message.timeout.ms": 3000, "linger.ms": 2, "retries": 0})
    killed = False
    for i in range(200_000):
        while True:
            try:
                p.produce(topic, value=f"midstream-{i}".encode(), partition=i % PARTITIONS, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
        if not killed and len(acked) >= 20_000:
            node.kill()
            killed = True
            break
    assert killed, f"only {len(acked)} acks for 200k produced messages"
    p.flush(10)
    n_acked = len(acked)
    node.start()

    c = consumer(node)
    try:
        highs = {q: c.get_watermark_offsets(TopicPartition(topic, q), timeout=10, cached=False)[1]
                 for q in range(PARTITIONS)}
    finally:
        c.close()
    total = sum(highs.values())
    got = consume_partitions(node, topic, range(PARTITIONS), total, timeout=60)
    at = {(q, m.offset()): m.value() for q, ms in got.items() for m in ms}
    missing = [k for k in acked if k not in at]
    assert not missing, f"{len(missing)} of {n_acked} acknowledged messages lost, e.g. {sorted(missing)[:5]}; highs={highs}"
    wrong = [k for k, v in acked.items() if at[k] != v]
    assert not wrong, f"{len(wrong)} acknowledged offsets hold other data, e.g. {wrong[:5]}"
    for q in range(PARTITIONS):
        offs = sorted(o for (qq, o) in at if qq == q)
        assert offs == list(range(highs[q])), f"partition {q}: log has holes"
