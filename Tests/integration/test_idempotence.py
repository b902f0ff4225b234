"""confluent-kafka with enable.idempotence=true survives injected request retries with no
duplicates: a TCP proxy in front of the broker (the only address the client knows, it is
the advertised listener) forwards some Produce requests but drops the connection before
their response reaches the client, so the client retries batches the broker already wrote."""
from __future__ import annotations

import socket
import struct
import threading
from collections import deque

from silt_helpers import HOST, consume_partitions, create_topic, free_port, produce_all

PRODUCE = 0


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _read_frame(sock: socket.socket) -> bytes | None:
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    body = _recv_exact(sock, struct.unpack(">i", head)[0])
    return None if body is None else head + body


class DroppingProxy:
    """Relays Kafka frames between clients and `upstream_port`. Every `every`-th Produce
    request (up to `drops_max`) reaches the broker, but once the broker's answer to it comes
    back the proxy closes both sides instead of relaying it."""

    def __init__(self, upstream_port: int, every: int = 4, drops_max: int = 6):
        self.upstream_port = upstream_port
        self.every = every
        self.drops_max = drops_max
        self.port = free_port()
        self.lock = threading.Lock()
        self.produce_seen = 0
        self.dropped = 0
        self.listener = socket.create_server((HOST, self.port))
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.upstream_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            # Correlation ids of requests in flight on this connection, in order, with the drop flag.
            pending: deque = deque()
            threading.Thread(target=self._requests, args=(client, upstream, pending), daemon=True).start()
            threading.Thread(target=self._responses, args=(client, upstream, pending), daemon=True).start()

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _requests(self, client, upstream, pending):
        try:
            while True:
                f = _read_frame(client)
                if f is None:
                    break
                api_key, _version, correlation = struct.unpack_from(">hhi", f, 4)
                drop = False
                if api_key == PRODUCE:
                    with self.lock:
                        self.produce_seen += 1
                        if self.produce_seen % self.every == 0 and self.dropped < self.drops_max:
                            self.dropped += 1
                            drop = True
                pending.append((correlation, drop))
                upstream.sendall(f)
        except OSError:
            pass
        self._close(client, upstream)

    def _responses(self, client, upstream, pending):
        try:
            while True:
                f = _read_frame(upstream)
                if f is None:
                    break
                (correlation,) = struct.unpack_from(">i", f, 4)
                expected, drop = pending.popleft()
                assert correlation == expected, "responses come back in request order"
                if drop:
                    break   # the broker wrote the batch; the client never hears of it
                client.sendall(f)
        except OSError:
            pass
        self._close(client, upstream)

    def stop(self):
        self.stopped = True
        self.listener.close()


def test_idempotent_producer_survives_dropped_responses(node_factory):
    node = node_factory(start=False)
    proxy = DroppingProxy(node.port, every=4, drops_max=6)
    try:
        # Clients learn the proxy's address from Metadata and talk only through it.
        node.overrides["advertised.listeners"] = f"PLAINTEXT://{HOST}:{proxy.port}"
        node.start()
        topic = "idem-retries"
        partitions = 3
        create_topic(node, topic, partitions=partitions)
        count = 3000
        messages = [(i % partitions, f"k{i}".encode(), f"v{i}".encode(), None) for i in range(count)]
        acked = produce_all(_ProxiedNode(proxy), topic, messages,
                            timeout=120, **{
                                "enable.idempotence": True,
                                "linger.ms": 2,
                                "batch.num.messages": 50,
                                "max.in.flight.requests.per.connection": 5,
                                "retry.backoff.ms": 50,
                            })
        assert proxy.dropped == 6, f"only {proxy.dropped} responses dropped ({proxy.produce_seen} produce requests)"
        got = consume_partitions(_ProxiedNode(proxy), topic, range(partitions), count, timeout=60)
        total = sum(len(v) for v in got.values())
        assert total == count, f"{total} messages in the log for {count} produced: duplicates or losses"
        for p in range(partitions):
            values = [m.value() for m in got[p]]
            assert values == [f"v{i}".encode() for i in range(p, count, partitions)], f"partition {p} out of order"
            assert [m.offset() for m in got[p]] == list(range(len(values)))
        # Every delivery report carries the offset the message really has.
        by_value = {m.value(): (p, m.offset()) for p in got for m in got[p]}
        for i, (p, off) in enumerate(acked):
            assert by_value[f"v{i}".encode()] == (p, off), f"message {i}: acked at {(p, off)}"
    finally:
        proxy.stop()


class _ProxiedNode:
    """What the client helpers need of a node, bootstrapping through the proxy."""

    def __init__(self, proxy: DroppingProxy):
        self.bootstrap = f"{HOST}:{proxy.port}"
