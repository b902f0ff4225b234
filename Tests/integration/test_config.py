"""Configuration errors: silt refuses to start and names the offending key."""
from __future__ import annotations

import subprocess

import pytest

from silt_helpers import HOST, SILT_BIN, admin, create_topic, free_ports, produce_all, producer, wait_for_topic


def run_server(tmp_path, extra: dict[str, str], timeout: float = 20.0):
    port, cport = free_ports(2)
    overrides = {
        "node.id": "0",
        "log.dirs": str(tmp_path / "data"),
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        **extra,
    }
    cmd = [str(SILT_BIN), "server"]
    for k, v in overrides.items():
        cmd += ["--override", f"{k}={v}"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"silt kept running for {timeout}s with a bad config {extra}; stderr:\n{err.decode(errors='replace')[-3000:]}")
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.parametrize("key,value", [("num.partitions", "abc")])
def test_bad_config_value_exits_nonzero(tmp_path, key, value):
    rc, out, err = run_server(tmp_path, {key: value})
    assert rc != 0, f"silt exited 0 with {key}={value}"
    assert key in err, f"stderr does not name {key}:\n{err[-3000:]}"


def test_override_later_wins_and_num_partitions(node_factory):
    """`--override num.partitions=...` given twice: the later one wins (seen via an auto-created topic)."""
    node = node_factory({"num.partitions": "5"}, extra_args=["--override", "num.partitions=2"])
    produce_all(node, "auto-later-wins", [(None, b"k", b"v", None)], timeout=30)
    t = wait_for_topic(node, "auto-later-wins", None)
    assert len(t.partitions) == 2


def test_auto_create_disabled(node_factory):
    node = node_factory({"auto.create.topics.enable": "false"})
    p = producer(node, **{"message.timeout.ms": 4000, "topic.metadata.propagation.max.ms": 1000})
    errors = []
    p.produce("no-auto-create", value=b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert len(errors) == 1 and errors[0] is not None, f"delivery to a missing topic did not fail: {errors}"
    assert "no-auto-create" not in admin(node).list_topics(timeout=10).topics


def test_message_max_bytes_enforced(node_factory):
    from confluent_kafka import KafkaError

    node = node_factory({"message.max.bytes": 10_000})
    create_topic(node, "big", partitions=1)
    p = producer(node, **{"message.timeout.ms": 10_000, "compression.type": "none"})
    results = []
    p.produce("big", value=b"x" * 20_000, partition=0, on_delivery=lambda err, msg: results.append(err))
    p.flush(15)
    assert len(results) == 1 and results[0] is not None, f"oversized batch was accepted: {results}"
    assert results[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, results[0]
    # small messages still go through, starting at offset 0
    assert produce_all(node, "big", [(0, None, b"small", None)], timeout=30) == [(0, 0)]


def test_socket_request_max_bytes_enforced(node_factory):
    import socket
    import struct

    node = node_factory({"socket.request.max.bytes": 4096})
    s = socket.create_connection((HOST, node.port), timeout=10)
    try:
        s.sendall(struct.pack(">i", 5000) + b"\x00\x12\x00\x00" + b"\x00" * 100)
        s.settimeout(10)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        assert data == b"", "server answered a frame larger than socket.request.max.bytes"
    except socket.timeout:
        raise AssertionError("server kept a connection open after a frame over socket.request.max.bytes")
    finally:
        s.close()
    produce_all(node, "after-big-frame", [(0, None, b"ok", None)], timeout=30)
