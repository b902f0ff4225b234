#!/usr/bin/env python3
"""Where the time of a produce and a fetch goes, stage by stage, for one run (issue 15).

Reads the node's stage histograms (silt_produce_*_seconds, silt_fetch_*_seconds) from its
Prometheus endpoint (s3.telemetry.metrics.exporter.uri) before and after a run and prints,
for each stage, the observations of the run, mean, p50, p99 and p99.9, and each stage's p99
and p99.9 as a share of the end-to-end ones:

    Benchmarks/latency-breakdown.py --metrics http://127.0.0.1:9090/metrics -- <load command ...>
    Benchmarks/latency-breakdown.py --metrics URL --save before.json      # then, after a run:
    Benchmarks/latency-breakdown.py --metrics URL --since before.json [--json out.json]

Stages of a produce (acks=1/-1), in order; each is measured per request (per batch for the
WAL's), in the process that owns it, on one clock (CLOCK_MONOTONIC):

    decode          whole frame read ─▶ request decoded                     (broker, event loop)
    validate        batches validated: CRC, sizes, sequences                (broker, event loop)
    append          validated ─▶ in the log buffer (locks, a wait for room) (broker)
    wal_pickup      in the log buffer ─▶ picked up by the WAL writer        (broker ─▶ wal process)
    wal_submit      picked up ─▶ io_uring submit returned (frame, copy, CRC) (wal process)
    device          submitted ─▶ completion reaped                          (wal process)
    durable_notice  reaped ─▶ the broker's durable thread has the notice    (wal ─▶ broker)
    ack             notice ─▶ response encoded on the event loop            (broker)
    response_write  encoded ─▶ written (behind earlier answers of the connection)
    total           whole frame read ─▶ response written

Fetch: decode, serve (decoded ─▶ encoded, including max.wait.ms), response_write, total.

Percentiles come from the histogram buckets (5 µs … 1 s, 1-2-5 steps), interpolated linearly
inside a bucket: a figure is good to its bucket's width. Stage percentiles are each stage's
own: the p99 request of one stage is not the p99 request of another, so the shares need not
add up to 100 %; a stage whose p99 is close to the total's holds the tail.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request

PRODUCE = ["decode", "validate", "append", "wal_pickup", "wal_submit", "device", "durable_notice", "ack",
           "response_write", "total"]
FETCH = ["decode", "serve", "response_write", "total"]


def scrape(url: str) -> dict[str, dict]:
    """{histogram name: {"buckets": [(le, cumulative)], "sum": s, "count": n}} of the stage histograms."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out: dict[str, dict] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_labels, value = line.rsplit(" ", 1)
        name = name_labels.split("{", 1)[0]
        if not (name.startswith("silt_produce_") or name.startswith("silt_fetch_")):
            continue
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                break
        else:
            continue
        h = out.setdefault(base, {"buckets": [], "sum": 0.0, "count": 0})
        if suffix == "_bucket":
            le = name_labels.split('le="', 1)[1].split('"', 1)[0]
            if le != "+Inf":
                h["buckets"].append((float(le), int(float(value))))
        elif suffix == "_sum":
            h["sum"] = float(value)
        else:
            h["count"] = int(float(value))
    for h in out.values():
        h["buckets"].sort()
    return out


def diff(after: dict, before: dict) -> dict:
    """The observations made between two scrapes."""
    out = {}
    for name, a in after.items():
        b = before.get(name, {"buckets": [(le, 0) for le, _ in a["buckets"]], "sum": 0.0, "count": 0})
        assert [le for le, _ in a["buckets"]] == [le for le, _ in b["buckets"]], f"{name}: buckets changed"
        out[name] = {"buckets": [(le, ca - cb) for (le, ca), (_, cb) in zip(a["buckets"], b["buckets"])],
                     "sum": a["sum"] - b["sum"], "count": a["count"] - b["count"]}
    return out


def quantile(h: dict, q: float) -> float | None:
    """The q-quantile in seconds, interpolated inside its bucket; None without observations;
    inf when it lies beyond the last finite bound."""
    n = h["count"]
    if n <= 0:
        return None
    rank = q * n
    prev_le, prev_c = 0.0, 0
    for le, c in h["buckets"]:
        if c >= rank:
            inside = c - prev_c
            return prev_le + (le - prev_le) * ((rank - prev_c) / inside if inside else 1.0)
        prev_le, prev_c = le, c
    return float("inf")


def fmt_ms(s: float | None) -> str:
    if s is None:
        return "-"
    if s == float("inf"):
        return ">1000"
    return f"{s * 1000:.3f}"


def report(window: dict, kind: str, stages: list[str]) -> dict:
    rows = {}
    for stage in stages:
        h = window.get(f"silt_{kind}_{stage}_seconds")
        if h is None:
            continue
        rows[stage] = {"count": h["count"], "mean": h["sum"] / h["count"] if h["count"] else None,
                       "p50": quantile(h, 0.5), "p99": quantile(h, 0.99), "p999": quantile(h, 0.999)}
    total = rows.get("total", {})
    print(f"\n{kind}: per-stage latency in ms (this run's observations)")
    print(f"{'stage':<16}{'count':>9}{'mean':>10}{'p50':>10}{'p99':>10}{'p99.9':>10}{'p99 %':>8}{'p99.9 %':>9}")
    for stage, r in rows.items():
        def share(key):
            t, v = total.get(key), r[key]
            if not t or v is None or t == float("inf") or v == float("inf") or stage == "total":
                return "-"
            return f"{100 * v / t:.0f}"
        print(f"{stage:<16}{r['count']:>9}{fmt_ms(r['mean']):>10}{fmt_ms(r['p50']):>10}{fmt_ms(r['p99']):>10}"
              f"{fmt_ms(r['p999']):>10}{share('p99'):>8}{share('p999'):>9}")
    tail = sorted(((r["p99"] or 0, s) for s, r in rows.items() if s != "total"), reverse=True)[:3]
    if tail and total.get("p99"):
        print("p99 held by: " + ", ".join(f"{s} {fmt_ms(v)} ms" for v, s in tail)
              + f" (of {fmt_ms(total['p99'])} ms end to end)")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", required=True, help="the node's /metrics URL")
    ap.add_argument("--save", help="write the current histograms to this file and exit")
    ap.add_argument("--since", help="report the observations made since this --save file")
    ap.add_argument("--json", help="also write the report as JSON here")
    ap.add_argument("command", nargs="*", help="a load to run between two scrapes (after --)")
    a = ap.parse_args()
    if a.save:
        with open(a.save, "w") as f:
            json.dump(scrape(a.metrics), f)
        return 0
    if a.since:
        with open(a.since) as f:
            before = {k: {**v, "buckets": [tuple(b) for b in v["buckets"]]} for k, v in json.load(f).items()}
        rc = 0
    else:
        before = scrape(a.metrics)
        rc = subprocess.call(a.command) if a.command else 0
    window = diff(scrape(a.metrics), before)
    out = {"produce": report(window, "produce", PRODUCE), "fetch": report(window, "fetch", FETCH)}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
