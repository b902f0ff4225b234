"""A deliberately slow WAL (the fault point SILT_FAULT_WAL_WRITE_DELAY_MS: every WAL write
waits before it is submitted) proves that a produce waiting for the disk holds only its own
request: the event loop that read it answers a fetch and a metadata request from another
connection meanwhile. The broker runs one event loop (num.network.threads=1), so every
connection shares the stalled produce's loop. (Answers on one connection go out in request
order, as Kafka requires, so the other requests come on another connection.)"""
from __future__ import annotations

import threading
import time

from silt_helpers import HOST, EnvNode, create_topic, raw_fetch, raw_metadata, raw_produce

DELAY_MS = 1500


def test_a_stalled_produce_does_not_delay_a_fetch_or_a_metadata_request_on_its_event_loop(tmp_path):
    n = EnvNode(tmp_path / "node", {"num.network.threads": "1"},
                env={"SILT_FAULT_WAL_WRITE_DELAY_MS": str(DELAY_MS)})
    try:
        n.start(timeout=60)
        assert "fault point on: every WAL write is delayed" in n.log_text()
        create_topic(n, "slow")

        # The fault point is on: an acks=all produce waits for the slow write.
        started = time.monotonic()
        first = raw_produce(HOST, n.port, "slow", 0, [b"first"], acks=-1, timeout=10)
        assert first == {"error": 0, "base_offset": 0}
        assert time.monotonic() - started >= DELAY_MS / 1000 * 0.9

        # A second produce stalls on connection A ...
        stalled: dict = {}

        def produce_on_a():
            stalled["answer"] = raw_produce(HOST, n.port, "slow", 0, [b"second"], acks=-1, timeout=10)
            stalled["answered_at"] = time.monotonic()

        a = threading.Thread(target=produce_on_a)
        a.start()
        time.sleep(0.3)   # read, appended to the log buffer, waiting for the WAL

        # ... while connection B, on the same (only) event loop, is answered at once.
        t = time.monotonic()
        meta = raw_metadata(HOST, n.port, ["slow"])
        metadata_s = time.monotonic() - t
        t = time.monotonic()
        fetched = raw_fetch(HOST, n.port, "slow", 0, offset=0, max_wait_ms=0)
        fetch_s = time.monotonic() - t
        others_answered_at = time.monotonic()

        a.join(15)
        assert stalled.get("answer") == {"error": 0, "base_offset": 1}, stalled
        assert stalled["answered_at"] > others_answered_at, "the produce was not stalled while the others ran"
        assert meta["topics"]["slow"]["partitions"][0]["error"] == 0
        assert metadata_s < 0.5, f"metadata took {metadata_s:.3f} s behind a stalled produce"
        assert fetched["error"] == 0
        assert fetched["high_watermark"] == 1, "only the durable record is visible"
        assert fetched["batches"] == [(0, 1)]
        assert fetch_s < 0.5, f"fetch took {fetch_s:.3f} s behind a stalled produce"
    finally:
        n.kill()
