"""kcat (librdkafka 2.0 CLI) produce/consume round trips with every compression codec."""
from __future__ import annotations

import random
import shutil
import subprocess
import zlib
from collections import defaultdict

import pytest

from silt_helpers import create_topic

N = 10_000
HEADER_ARGS = ["-H", "h1=v", "-H", "trace-id=abc-123 xyz"]
HEADERS_FMT = "h1=v,trace-id=abc-123 xyz"  # how kcat's %h prints them
# Safe alphabet: no ':' (key delimiter), tab/newline (output delimiters), ',' or '='.
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&()*+/;<>?@[]^{|}~ "

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (run tools/setup)")


def make_messages(seed: int) -> list[tuple[str, str]]:
    rnd = random.Random(seed)
    msgs = []
    for i in range(N):
        key = f"key-{i:05d}-{rnd.randrange(1 << 30):x}"
        # mix of compressible (repeated) and random content, variable size
        word = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 12)))
        tail = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 200)))
        value = f"value-{i:05d}|" + word * rnd.randint(0, 30) + tail
        msgs.append((key, value))
    return msgs


def kcat_produce(node, topic, codec, msgs, tmp_path):
    src = tmp_path / f"{topic}.in"
    src.write_bytes("".join(f"{k}:{v}\n" for k, v in msgs).encode())
    with open(src, "rb") as f:
        r = subprocess.run(
            ["kcat", "-P", "-b", node.bootstrap, "-t", topic, "-z", codec, "-K:", *HEADER_ARGS,
             "-X", "acks=all", "-X", "broker.address.family=v4"],
            stdin=f, capture_output=True, timeout=120)
    assert r.returncode == 0, f"kcat -P failed rc={r.returncode}: {r.stderr.decode(errors='replace')[-3000:]}"


def kcat_consume(node, topic):
    r = subprocess.run(
        ["kcat", "-C", "-b", node.bootstrap, "-t", topic, "-e", "-o", "beginning", "-q",
         "-X", "broker.address.family=v4",
         "-f", r"%p\t%o\t%k\t%s\t%h\n"],
        capture_output=True, timeout=120)
    assert r.returncode == 0, f"kcat -C failed rc={r.returncode}: {r.stderr.decode(errors='replace')[-3000:]}"
    out = r.stdout.decode()
    assert out.endswith("\n") or out == ""
    rows = []
    for line in out[:-1].split("\n") if out else []:
        fields = line.split("\t")
        assert len(fields) == 5, f"unparseable kcat line: {line!r}"
        p, o, k, v, h = fields
        rows.append((int(p), int(o), k, v, h))
    return rows, r.stderr.decode(errors="replace")


def check(rows, msgs, partitions):
    assert len(rows) == len(msgs), f"consumed {len(rows)} messages, produced {len(msgs)}"
    index = {k: i for i, (k, _) in enumerate(msgs)}
    by_part = defaultdict(list)
    for p, o, k, v, h in rows:
        assert k in index, f"unknown key {k!r} at partition {p} offset {o}"
        i = index[k]
        assert v == msgs[i][1], f"value mismatch for {k!r} at {p}/{o}"
        assert h == HEADERS_FMT, f"headers mismatch for {k!r}: {h!r}"
        by_part[p].append((o, i))
    assert len({k for _, _, k, _, _ in rows}) == len(msgs), "duplicate keys consumed"
    assert set(by_part) <= set(range(partitions))
    if partitions > 1:
        assert len(by_part) == partitions, f"keys landed on partitions {sorted(by_part)} only"
    for p, items in by_part.items():
        offsets = [o for o, _ in items]
        assert offsets == list(range(len(items))), f"partition {p}: offsets not 0..n-1 in order"
        idx = [i for _, i in items]
        assert idx == sorted(idx), f"partition {p}: produce order not preserved"


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_roundtrip_single_partition(node, codec, tmp_path):
    topic = f"kcat-{codec}"
    msgs = make_messages(zlib.crc32(codec.encode()))
    kcat_produce(node, topic, codec, msgs, tmp_path)  # auto-created, num.partitions=1
    rows, _ = kcat_consume(node, topic)
    check(rows, msgs, 1)


def test_kcat_roundtrip_three_partitions_autocreated(node_factory, tmp_path):
    node = node_factory({"num.partitions": 3})
    msgs = make_messages(3)
    kcat_produce(node, "kcat-auto3", "lz4", msgs, tmp_path)
    rows, _ = kcat_consume(node, "kcat-auto3")
    check(rows, msgs, 3)


def test_kcat_roundtrip_three_partitions_admin_created(node, tmp_path):
    create_topic(node, "kcat-admin3", partitions=3)
    msgs = make_messages(4)
    kcat_produce(node, "kcat-admin3", "zstd", msgs, tmp_path)
    rows, _ = kcat_consume(node, "kcat-admin3")
    check(rows, msgs, 3)
