"""The latency breakdown (issue 15): every stage of a produce and of a fetch is observed once
per request (per batch for the WAL's stages), in the process that owns it, and the stages add
up to the end-to-end time; Benchmarks/latency-breakdown.py reports them for a run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from silt_helpers import HOST, create_topic, free_port, prometheus_override, raw_fetch, raw_produce, scrape_metrics, wait_until

PRODUCE_STAGES = ["decode", "validate", "append", "wal_pickup", "wal_submit", "device", "durable_notice", "ack",
                  "response_write"]
FETCH_STAGES = ["decode", "serve", "response_write"]
TOOL = Path(__file__).resolve().parents[2] / "Benchmarks" / "latency-breakdown.py"


def test_each_stage_is_observed_once_per_request_and_the_stages_add_up(node_factory):
    port = free_port()
    n = node_factory(prometheus_override(port))
    create_topic(n, "stages")
    url = f"http://{HOST}:{port}/metrics"
    saved = n.workdir / "before.json"
    subprocess.run([sys.executable, str(TOOL), "--metrics", url, "--save", str(saved)], check=True)
    before = scrape_metrics(port)

    produces, fetches = 50, 20
    for i in range(produces):   # one at a time: each request is its own WAL write
        assert raw_produce(HOST, n.port, "stages", 0, [b"v%d" % i], acks=-1)["error"] == 0
    for i in range(fetches):
        assert raw_fetch(HOST, n.port, "stages", 0, offset=i)["batches"][0] == (i, 1)
    # A response's observations follow its write: the client may read it a moment before.
    def settled():
        m = scrape_metrics(port)
        done = all(m.get(f"silt_{k}_total_seconds_count") - before.get(f"silt_{k}_total_seconds_count") >= want
                   for k, want in (("produce", produces), ("fetch", fetches)))
        return m if done else None
    after = wait_until(settled, 10, "the last responses' observations")

    def observed(name: str) -> tuple[float, float]:
        return (after.need(f"{name}_count") - before.get(f"{name}_count"),
                after.need(f"{name}_sum") - before.get(f"{name}_sum"))

    for kind, stages, requests in (("produce", PRODUCE_STAGES, produces), ("fetch", FETCH_STAGES, fetches)):
        total_count, total_s = observed(f"silt_{kind}_total_seconds")
        assert total_count == requests
        stage_s = 0.0
        for stage in stages:
            count, seconds = observed(f"silt_{kind}_{stage}_seconds")
            assert count == requests, f"{kind} {stage}: {count} observations for {requests} requests"
            assert seconds >= 0
            stage_s += seconds
        # The stages partition the request: their sum is the total less the small gaps
        # between them (leader lookup, encoding), never more (sums are kept in whole µs).
        assert 0.6 * total_s <= stage_s <= total_s + requests * len(stages) * 1e-6, (kind, stage_s, total_s)

    out = subprocess.run([sys.executable, str(TOOL), "--metrics", url, "--since", str(saved)], check=True,
                         capture_output=True, text=True).stdout
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert "produce: per-stage latency in ms (this run's observations)" in out, out
    assert lines["device"][1] == str(produces), out
    assert lines["serve"][1] == str(fetches), out
    assert "p99 held by: " in out, out
