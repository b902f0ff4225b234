"""Kafka's client tools in bin/ (kafka-console-producer.sh, kafka-console-consumer.sh,
kafka-consumer-groups.sh) and the broker's Kafka-named metrics, against one node (shared
by the module, with its Prometheus endpoint on). Tool output is checked line by line; the
exposition is parsed by the Prometheus Python client's own parser."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from silt_helpers import HOST, REPO_ROOT, SILT_BIN, Node, free_port, prometheus_override, wait_until

BIN = REPO_ROOT / "bin"
PRODUCER = BIN / "kafka-console-producer.sh"
CONSUMER = BIN / "kafka-console-consumer.sh"
GROUPS = BIN / "kafka-consumer-groups.sh"
TOPICS = BIN / "kafka-topics.sh"


@pytest.fixture(scope="module")
def tnode(tmp_path_factory):
    port = free_port()
    n = Node(tmp_path_factory.mktemp("tools") / "node", prometheus_override(port))
    n.metrics_port = port
    n.start()
    yield n
    n.kill()
    sys.stdout.write("\n" + n.log_tail(100) + "\n")


def tool(script, *args: str, stdin: str | None = None, ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, SILT_BIN=str(SILT_BIN))
    r = subprocess.run([str(script), *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
    if ok:
        assert r.returncode == 0, f"{script.name} {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    else:
        assert r.returncode == 1, f"{script.name} {' '.join(args)} should have failed\n{r.stdout}\n{r.stderr}"
    return r


def murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2, as a signed 32-bit int."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    n = len(data) // 4
    for i in range(n):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = data[4 * n:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h ^= rest[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def table(stdout: str) -> list[list[str]]:
    """kafka-consumer-groups' table: a blank line, the header, rows; split on runs of spaces."""
    lines = stdout.split("\n")
    assert lines[0] == "", stdout
    return [line.split() for line in lines[1:] if line.strip()]


def test_console_producer_and_consumer(tnode):
    bs = ["--bootstrap-server", tnode.bootstrap]
    tool(TOPICS, *bs, "--create", "--topic", "cp", "--partitions", "3")
    lines = [f"k{i}:value {i}" for i in range(30)]
    r = tool(PRODUCER, *bs, "--topic", "cp", "--property", "parse.key=true", "--property", "key.separator=:",
             "--producer-property", "compression.type=zstd", "--producer-property", "linger.ms=1",
             stdin="\n".join(lines) + "\n")
    assert r.stdout == "" and "ignores producer properties linger.ms" in r.stderr
    tool(PRODUCER, *bs, "--topic", "cp", stdin="no key 1\nno key 2")   # the last line needs no newline

    # Every record, keys printed; per partition in offset order, keyed ones where Kafka's partitioner puts them.
    r = tool(CONSUMER, *bs, "--topic", "cp", "--from-beginning", "--max-messages", "32",
             "--property", "print.key=true", "--property", "key.separator=|", "--property", "print.partition=true")
    got = r.stdout.splitlines()
    assert len(got) == 32 and "Processed a total of 32 messages" in r.stderr
    rows = [line.split("|") for line in got]
    assert sorted(v for _, k, v in rows if k != "null") == sorted(f"value {i}" for i in range(30))
    assert {(k, v) for _, k, v in rows if k == "null"} == {("null", "no key 1"), ("null", "no key 2")}
    for p, k, v in rows:
        if k != "null":
            assert v == f"value {k[1:]}"
    by_key = {}
    for p, k, _ in rows:
        by_key.setdefault(k, set()).add(p)
    assert all(len(ps) == 1 for k, ps in by_key.items() if k != "null"), "one partition per key"
    # Kafka's default partitioner (murmur2, computed here independently) picked each keyed record's partition.
    for p, k, _ in rows:
        if k != "null":
            assert int(p.removeprefix("Partition:")) == (murmur2(k.encode()) & 0x7FFFFFFF) % 3, k

    # --partition/--offset, and --timeout-ms on an idle partition (Kafka's exit 0 with the total).
    p0 = [row for row in rows if row[0] == "Partition:0"]
    r = tool(CONSUMER, *bs, "--topic", "cp", "--partition", "0", "--offset", "1", "--timeout-ms", "1500")
    assert r.stdout.splitlines() == [v for _, _, v in p0][1:]
    assert "TimeoutException" in r.stderr and f"Processed a total of {len(p0) - 1} messages" in r.stderr

    # Without a limit it runs until SIGINT, then prints the total and exits 0, as Kafka's does.
    env = dict(os.environ, SILT_BIN=str(SILT_BIN))
    proc = subprocess.Popen([str(CONSUMER), *bs, "--topic", "cp", "--partition", "0", "--offset", "earliest"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        out, err = proc.stdout.read(), proc.stderr.read()   # not communicate(): readline() buffered the rest
    finally:
        proc.kill()
    assert proc.returncode == 0 and [first.rstrip("\n")] + out.splitlines() == [v for _, _, v in p0], (out, err)
    assert f"Processed a total of {len(p0)} messages" in err

    # Flags Silt does not take, and bad combinations, are refused clearly.
    r = tool(CONSUMER, *bs, "--topic", "cp", "--group", "g", "--partition", "0", ok=False)
    assert "group and partition cannot be specified together" in r.stderr
    r = tool(PRODUCER, *bs, "--topic", "cp", "--line-reader", "x", ok=False)
    assert "--line-reader is not supported" in r.stderr


def test_consumer_groups(tnode):
    bs = ["--bootstrap-server", tnode.bootstrap]
    tool(TOPICS, *bs, "--create", "--topic", "cg", "--partitions", "2")
    tool(PRODUCER, *bs, "--topic", "cg", stdin="".join(f"m{i}\n" for i in range(10)))

    # A console consumer in a group commits what it printed.
    r = tool(CONSUMER, *bs, "--topic", "cg", "--group", "tools-g", "--from-beginning", "--max-messages", "10")
    assert sorted(r.stdout.splitlines()) == sorted(f"m{i}" for i in range(10))
    assert "tools-g" in tool(GROUPS, *bs, "--list").stdout.splitlines()

    rows = table(tool(GROUPS, *bs, "--describe", "--group", "tools-g").stdout)
    assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
    body = sorted(rows[1:], key=lambda r: r[2])
    assert [r[:3] for r in body] == [["tools-g", "cg", "0"], ["tools-g", "cg", "1"]]
    assert sum(int(r[3]) for r in body) == 10 and all(r[3] == r[4] and r[5] == "0" for r in body)
    assert all(r[6:] == ["-", "-", "-"] for r in body), "no active members after the consumer left"

    # More records: LAG shows them.
    tool(PRODUCER, *bs, "--topic", "cg", stdin="".join(f"n{i}\n" for i in range(4)))
    body = table(tool(GROUPS, *bs, "--describe", "--group", "tools-g").stdout)[1:]
    assert sum(int(r[5]) for r in body) == 4 and all(int(r[5]) == int(r[4]) - int(r[3]) for r in body)

    # Reset: dry run changes nothing; --execute moves the offsets.
    r = tool(GROUPS, *bs, "--reset-offsets", "--group", "tools-g", "--topic", "cg", "--to-earliest", "--dry-run")
    rows = table(r.stdout)
    assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"] and sorted(rows[1:]) == [
        ["tools-g", "cg", "0", "0"], ["tools-g", "cg", "1", "0"]]
    body = table(tool(GROUPS, *bs, "--describe", "--group", "tools-g").stdout)[1:]
    assert sum(int(r[5]) for r in body) == 4
    ends = {r[2]: int(r[4]) for r in body}
    assert sorted(ends.values()) == [0, 14], "keyless lines stick to one partition per chunk read"
    full, empty = sorted(ends, key=ends.get, reverse=True)
    tool(GROUPS, *bs, "--reset-offsets", "--group", "tools-g", "--topic", f"cg:{full}", "--to-offset", "3", "--execute")
    # An offset past the end is moved to the end, as Kafka does.
    r = tool(GROUPS, *bs, "--reset-offsets", "--group", "tools-g", "--topic", f"cg:{empty}", "--to-offset", "5", "--execute")
    assert table(r.stdout)[1:] == [["tools-g", "cg", empty, "0"]]
    body = {r[2]: r for r in table(tool(GROUPS, *bs, "--describe", "--group", "tools-g").stdout)[1:]}
    assert body[full][3:6] == ["3", "14", "11"] and body[empty][3:6] == ["0", "0", "0"]
    r = tool(CONSUMER, *bs, "--topic", "cg", "--group", "tools-g", "--timeout-ms", "3000")
    assert r.stdout.splitlines() == [f"m{i}" for i in range(3, 10)] + [f"n{i}" for i in range(4)]
    r = tool(GROUPS, *bs, "--reset-offsets", "--group", "tools-g", "--all-topics", "--to-latest")
    assert "--execute option is missing" in r.stderr

    # A group with a live member can be neither reset nor deleted.
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": tnode.bootstrap, "group.id": "tools-live", "auto.offset.reset": "earliest",
                  "client.id": "live-client"})
    c.subscribe(["cg"])
    try:
        wait_until(lambda: c.poll(0.5) is not None or bool(c.assignment()), 30, "the live consumer's assignment")
        rows = table(tool(GROUPS, *bs, "--describe", "--group", "tools-live").stdout)[1:]
        assert {r[8] for r in rows} == {"live-client"} and all(r[6].startswith("live-client") for r in rows)
        members = table(tool(GROUPS, *bs, "--describe", "--group", "tools-live", "--members").stdout)
        assert members[0] == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
        assert len(members) == 2 and members[1][0] == "tools-live" and members[1][3:] == ["live-client", "2"]
        state = tool(GROUPS, *bs, "--describe", "--group", "tools-live", "--state").stdout.split("\n")
        assert state[1].split() == ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"]
        assert state[2].split() == ["tools-live", tnode.bootstrap, "(0)", "range", "Stable", "1"]
        r = tool(GROUPS, *bs, "--reset-offsets", "--group", "tools-live", "--topic", "cg", "--to-earliest", "--execute", ok=False)
        assert "can only be reset if the group 'tools-live' is inactive, but the current state is Stable" in r.stderr
        r = tool(GROUPS, *bs, "--delete", "--group", "tools-live", ok=False)
        assert "Group 'tools-live' could not be deleted due to: NON_EMPTY_GROUP" in r.stderr
    finally:
        c.close()

    r = tool(GROUPS, *bs, "--delete", "--group", "tools-g")
    assert r.stdout == "Deletion of requested consumer groups ('tools-g') was successful.\n"
    assert "tools-g" not in tool(GROUPS, *bs, "--list").stdout.splitlines()
    assert "does not exist" in tool(GROUPS, *bs, "--describe", "--group", "tools-g").stderr
    r = tool(GROUPS, *bs, "--reset-offsets", "--group", "g", "--all-topics", "--to-datetime", "x", ok=False)
    assert "--to-datetime is not supported" in r.stderr


def test_consumer_groups_show_a_consumer_protocol_group(tnode):
    """A KIP-848 group (group.protocol=consumer) is listed next to a classic one and described
    from ConsumerGroupDescribe: its member, assignment, server assignor, state and LAG."""
    from confluent_kafka import Consumer, TopicPartition

    bs = ["--bootstrap-server", tnode.bootstrap]
    tool(TOPICS, *bs, "--create", "--topic", "cg848", "--partitions", "2")
    from silt_helpers import produce_all
    produce_all(tnode, "cg848", [(i % 2, None, b"v%d" % i, None) for i in range(10)])
    tool(CONSUMER, *bs, "--topic", "cg848", "--group", "tools-classic", "--from-beginning", "--max-messages", "10")
    c = Consumer({"bootstrap.servers": tnode.bootstrap, "group.id": "tools-848", "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "client.id": "kip848-client"})
    c.subscribe(["cg848"])
    try:
        got = []
        wait_until(lambda: got.extend(m for m in c.consume(10, 0.5) if not m.error()) or len(got) == 10, 30, "10 records read")
        c.commit(offsets=[TopicPartition("cg848", p, 5) for p in (0, 1)], asynchronous=False)
        produce_all(tnode, "cg848", [(0, None, b"late", None)])
        member_id = c.memberid()
        assert member_id

        listed = tool(GROUPS, *bs, "--list").stdout.splitlines()
        assert "tools-848" in listed and "tools-classic" in listed, listed

        rows = table(tool(GROUPS, *bs, "--describe", "--group", "tools-848").stdout)
        assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
        body = {r[2]: r for r in rows[1:]}
        assert body["0"][:6] == ["tools-848", "cg848", "0", "5", "6", "1"] and body["1"][:6] == ["tools-848", "cg848", "1", "5", "5", "0"]
        assert all(r[6] == member_id and r[8] == "kip848-client" for r in body.values()), body

        members = table(tool(GROUPS, *bs, "--describe", "--group", "tools-848", "--members").stdout)
        assert members[1:] == [["tools-848", member_id, members[1][2], "kip848-client", "2"]], members
        state = tool(GROUPS, *bs, "--describe", "--group", "tools-848", "--state").stdout.split("\n")
        assert state[2].split() == ["tools-848", tnode.bootstrap, "(0)", "uniform", "Stable", "1"], state
        r = tool(GROUPS, *bs, "--reset-offsets", "--group", "tools-848", "--topic", "cg848", "--to-earliest", "--execute", ok=False)
        assert "can only be reset if the group 'tools-848' is inactive, but the current state is Stable" in r.stderr
    finally:
        c.close()
    # Left: Empty, no members; its offsets and lag still print, and a reset goes through.
    r = tool(GROUPS, *bs, "--describe", "--group", "tools-848")
    assert "has no active members" in r.stderr
    assert all(row[6:] == ["-", "-", "-"] for row in table(r.stdout)[1:])
    r = tool(GROUPS, *bs, "--reset-offsets", "--group", "tools-848", "--topic", "cg848", "--to-earliest", "--execute")
    assert sorted(table(r.stdout)[1:]) == [["tools-848", "cg848", "0", "0"], ["tools-848", "cg848", "1", "0"]]


def test_kafka_metrics_parse_and_count(tnode):
    """After the tools above (and a few more records), Kafka's series exist with sane values."""
    from prometheus_client.parser import text_string_to_metric_families

    bs = ["--bootstrap-server", tnode.bootstrap]
    tool(TOPICS, *bs, "--create", "--topic", "mt", "--partitions", "1")
    payload = "".join(f"record-{i:04d}\n" for i in range(100))
    tool(PRODUCER, *bs, "--topic", "mt", stdin=payload)
    tool(CONSUMER, *bs, "--topic", "mt", "--group", "mt-g", "--from-beginning", "--max-messages", "60")
    tool(PRODUCER, *bs, "--topic", "mt", stdin="late\n")

    def scrape():
        with urllib.request.urlopen(f"http://{HOST}:{tnode.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}   # raises on a malformed exposition
        return families

    def sample(families, family, suffix="", **labels):
        # A family with no series yet (lag before its first refresh) is not in the exposition.
        for s in (families[family].samples if family in families else []):
            if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        return None

    # Consumer lag is refreshed every 5 s: 101 records, 60 committed.
    wait_until(lambda: sample(scrape(), "kafka_consumergroup_lag", consumergroup="mt-g", topic="mt", partition="0") == 41,
               20, "kafka_consumergroup_lag for mt-g to be 41")
    f = scrape()
    # The parser strips _total from counter family names.
    assert f["kafka_server_brokertopicmetrics_messagesin"].type == "counter"
    assert sample(f, "kafka_server_brokertopicmetrics_messagesin", "_total", topic="mt") == 101
    bytes_in = sample(f, "kafka_server_brokertopicmetrics_bytesin", "_total", topic="mt")
    assert len(payload) < bytes_in < len(payload) + 2000, bytes_in   # record batches: payload plus framing
    bytes_out = sample(f, "kafka_server_brokertopicmetrics_bytesout", "_total", topic="mt")
    assert len(payload) * 0.6 <= bytes_out, bytes_out
    assert sample(f, "kafka_server_brokertopicmetrics_messagesin", "_total", topic="cp") == 32
    assert sample(f, "kafka_consumergroup_current_offset", consumergroup="mt-g", topic="mt", partition="0") == 60

    produce = sample(f, "kafka_network_requestmetrics_requests", "_total", request="Produce")
    fetch = sample(f, "kafka_network_requestmetrics_requests", "_total", request="Fetch")
    assert produce >= 6 and fetch >= 5, (produce, fetch)   # one Produce per chunk the producers read
    assert sample(f, "kafka_network_requestmetrics_errors", "_total", request="Produce") == 0
    assert sample(f, "kafka_network_requestmetrics_errors", "_total", request="Metadata") is not None
    h = f["kafka_network_requestmetrics_totaltimems"]
    assert h.type == "histogram"
    count = sample(f, "kafka_network_requestmetrics_totaltimems", "_count", request="Produce")
    assert count == produce
    assert sample(f, "kafka_network_requestmetrics_totaltimems", "_bucket", request="Produce", le="+Inf") == count
    assert 0 < sample(f, "kafka_network_requestmetrics_totaltimems", "_sum", request="Produce") < count * 30_000
    # Silt's own series are still there, next to Kafka's.
    assert "silt_wal_capacity_bytes" in f
