"""confluent-kafka: 100,000 acks=all messages over 6 partitions, read back by an assign-based consumer."""
from __future__ import annotations

from silt_helpers import consume_partitions, create_topic, produce_all

N = 100_000
PARTITIONS = 6


def test_confluent_100k_six_partitions(node):
    topic = "cf-100k"
    create_topic(node, topic, partitions=PARTITIONS)
    msgs = []
    for i in range(N):
        key = f"k{i}".encode()
        value = (f"v{i:06d}:" + "x" * (i % 97)).encode()
        msgs.append((i % PARTITIONS, key, value, None))
    reports = produce_all(node, topic, msgs, timeout=180, **{"linger.ms": 10})

    # delivery reports: every partition got offsets 0..n-1, in produce order
    expected: dict[tuple[int, int], int] = {}
    per_part: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    for i, (p, off) in enumerate(reports):
        assert p == i % PARTITIONS, f"message {i} delivered to partition {p}"
        assert (p, off) not in expected, f"two messages acknowledged at {p}/{off}"
        expected[(p, off)] = i
        per_part[p].append(off)
    for p, offs in per_part.items():
        assert offs == list(range(len(offs))), f"partition {p}: acked offsets are not 0..n-1 in produce order"

    got = consume_partitions(node, topic, range(PARTITIONS), N, timeout=180)
    total = 0
    for p in range(PARTITIONS):
        ms = got[p]
        total += len(ms)
        offsets = [m.offset() for m in ms]
        assert offsets == per_part[p], f"partition {p}: consumed offsets differ from acknowledged ones"
        for m in ms:
            i = expected[(p, m.offset())]
            assert m.key() == msgs[i][1] and m.value() == msgs[i][2], \
                f"partition {p} offset {m.offset()}: expected message {i}, got key={m.key()!r}"
    assert total == N
