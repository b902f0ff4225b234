"""Malformed input on raw sockets: the server drops bad connections and keeps serving others."""
from __future__ import annotations

import socket
import struct
import time

import pytest

from silt_helpers import HOST, roundtrip

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35


def connect(node, timeout=10.0):
    s = socket.create_connection((HOST, node.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def request(api_key, api_version, correlation_id, body=b"", client_id=b"silt-it", flexible=False):
    """Request header v1 (v2 if flexible: + empty tagged fields) followed by body, length-prefixed."""
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    if flexible:
        header += b"\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_response(s):
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    assert 0 < size < 10_000_000, f"implausible response size {size}"
    return recv_exact(s, size)


def assert_closed_by_server(s, timeout=10.0):
    """The server closes the connection (EOF or reset) within `timeout` seconds."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            return
        except socket.timeout:
            raise AssertionError(f"server kept the connection open for {timeout}s")
        if not data:
            return
        if time.monotonic() > deadline:
            raise AssertionError("server kept sending data and did not close the connection")


def parse_api_versions_v0(resp):
    corr, err, n = struct.unpack_from(">ihi", resp, 0)
    pos = 10
    apis = {}
    for _ in range(n):
        k, lo, hi = struct.unpack_from(">hhh", resp, pos)
        apis[k] = (lo, hi)
        pos += 6
    return corr, err, apis, resp[pos:]


def test_truncated_frame_dropped(node):
    s = connect(node)
    s.sendall(struct.pack(">i", 100) + b"\x00\x12\x00\x00abcdef")  # 10 of 100 bytes
    s.shutdown(socket.SHUT_WR)
    assert_closed_by_server(s)
    s.close()
    roundtrip(node, "after-truncated")


def test_huge_length_prefix_closed(node):
    s = connect(node)
    s.sendall(struct.pack(">i", 0x7FFFFFF0) + b"\x00\x12\x00\x00\x00\x00\x00\x01")
    assert_closed_by_server(s)
    s.close()
    roundtrip(node, "after-huge")


def test_negative_length_prefix_closed(node):
    s = connect(node)
    s.sendall(struct.pack(">i", -5) + b"\x00" * 8)
    assert_closed_by_server(s)
    s.close()
    roundtrip(node, "after-negative")


def test_unknown_api_key_closed(node):
    s = connect(node)
    s.sendall(request(9999, 0, 7))
    assert_closed_by_server(s)
    s.close()
    roundtrip(node, "after-unknown-api")


def test_api_versions_v0(node):
    s = connect(node)
    try:
        s.sendall(request(API_VERSIONS, 0, 42))
        corr, err, apis, rest = parse_api_versions_v0(read_response(s))
    finally:
        s.close()
    assert corr == 42
    assert err == 0
    assert apis, "empty api list"
    assert rest == b"", f"{len(rest)} trailing bytes after a v0 ApiVersions body"
    assert API_VERSIONS in apis and apis[API_VERSIONS][0] == 0 and apis[API_VERSIONS][1] >= 3, apis
    for key in (0, 1, 3):  # Produce, Fetch, Metadata
        assert key in apis, f"api {key} missing from ApiVersions: {sorted(apis)}"
        lo, hi = apis[key]
        assert 0 <= lo <= hi


def test_api_versions_v3_flexible(node):
    """What librdkafka and the Java client send first: ApiVersions v3 with header v2 and a flexible body."""
    body = b"\x08silt-it" + b"\x041.0" + b"\x00"  # compact client_software_name/version, tagged fields
    s = connect(node)
    try:
        s.sendall(request(API_VERSIONS, 3, 43, body=body, flexible=True))
        resp = read_response(s)
    finally:
        s.close()
    corr, err = struct.unpack_from(">ih", resp, 0)  # ApiVersions responses always use header v0
    assert corr == 43 and err == 0
    n = resp[6] - 1  # compact array length (small enough for one varint byte)
    assert n > 0


def test_api_versions_unsupported_version(node):
    body = b"\x08silt-it" + b"\x041.0" + b"\x00"
    s = connect(node)
    try:
        s.sendall(request(API_VERSIONS, 99, 44, body=body, flexible=True))
        corr, err, apis, rest = parse_api_versions_v0(read_response(s))
    finally:
        s.close()
    assert corr == 44
    assert err == UNSUPPORTED_VERSION
    assert rest == b"", "response body is not in v0 format"
    assert API_VERSIONS in apis, f"ApiVersions range missing: {apis}"
    assert apis[API_VERSIONS][0] == 0 and apis[API_VERSIONS][1] >= 3


def test_api_versions_unsupported_then_supported_same_connection(node):
    """Like Kafka, the connection stays open after UNSUPPORTED_VERSION so the client can retry lower."""
    body = b"\x08silt-it" + b"\x041.0" + b"\x00"
    s = connect(node)
    try:
        s.sendall(request(API_VERSIONS, 99, 46, body=body, flexible=True))
        corr, err, _, _ = parse_api_versions_v0(read_response(s))
        assert (corr, err) == (46, UNSUPPORTED_VERSION)
        s.sendall(request(API_VERSIONS, 0, 47))
        corr2, err2, apis2, _ = parse_api_versions_v0(read_response(s))
    finally:
        s.close()
    assert (corr2, err2) == (47, 0) and apis2
