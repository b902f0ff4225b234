"""The WAL on a block device, the way a user meets it (issue 15): a device smaller than the
default `s3.wal.capacity` is taken whole; a blank device is formatted; a device that fio (or
anything else) wrote to is refused with how to format it on purpose, `silt admin format-wal`,
after which the node starts. On loop devices over sparse files; needs root and losetup."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from silt_helpers import SILT_BIN, NodeError, free_port, prometheus_override, roundtrip, scrape_metrics

DEVICE_BYTES = 64 << 20
LOSETUP = "/usr/sbin/losetup"


@pytest.fixture
def loop_device(tmp_path):
    """A fresh loop device over a sparse (all-zero) file; always detached at teardown."""
    if os.geteuid() != 0 or not os.path.exists(LOSETUP):
        pytest.skip("needs root and losetup for a loop device")
    backing = tmp_path / "device.img"
    with open(backing, "wb") as f:
        f.truncate(DEVICE_BYTES)
    dev = subprocess.run([LOSETUP, "-f", "--show", str(backing)], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert dev.startswith("/dev/loop"), dev
    try:
        yield dev
    finally:
        subprocess.run([LOSETUP, "-d", dev], check=False)


def start_refused(node) -> tuple[int, str]:
    """Starts `node` expecting its WAL role to refuse the configuration: returns the exit
    code and the log."""
    with pytest.raises(NodeError):
        node.start(timeout=60)
    rc = node.proc.wait(60)
    return rc, node.log_text()


def test_a_device_smaller_than_the_default_capacity_is_taken_whole(node_factory, loop_device):
    metrics_port = free_port()
    n = node_factory({"s3.wal.path": loop_device, **prometheus_override(metrics_port)}, start=False)
    del n.overrides["s3.wal.capacity"]   # the default, 2 GiB: larger than the 64 MiB device
    n.start(timeout=60)
    log = n.log_text()
    assert "WAL takes the whole device: it is smaller than the default capacity" in log, log[-4000:]
    assert f"deviceBytes={DEVICE_BYTES}" in log, log[-4000:]
    assert scrape_metrics(metrics_port).need("silt_wal_capacity_bytes") == DEVICE_BYTES
    roundtrip(n, "on-a-small-device")
    # Restarted the same way: the same capacity, the data still there.
    assert n.stop() == 0
    n.start(timeout=60)
    roundtrip(n, "after-restart")
    assert n.stop() == 0

    # A capacity set explicitly is a promise the device cannot keep: refused, both sizes said.
    n.overrides["s3.wal.capacity"] = str(2 * DEVICE_BYTES)
    rc, log = start_refused(n)
    assert rc == 78, log[-4000:]
    reason = f"block device {loop_device} has {DEVICE_BYTES} bytes, capacity {2 * DEVICE_BYTES} configured"
    assert log.count(f"silt: role wal: {reason}") == 1, log[-4000:]


def test_a_device_fio_wrote_is_refused_until_formatted_on_purpose(node_factory, loop_device):
    fio = shutil.which("fio")
    if fio is None:
        pytest.skip("fio is not installed")
    subprocess.run([fio, "--name=before-silt", f"--filename={loop_device}", "--rw=write", "--bs=64k", "--size=4m",
                    "--direct=1", "--ioengine=psync", "--output=/dev/null"], check=True)

    n = node_factory({"s3.wal.path": loop_device}, start=False)
    del n.overrides["s3.wal.capacity"]   # the default: the whole device
    started = time.monotonic()
    rc, log = start_refused(n)
    assert rc == 78, log[-4000:]
    reason = (f"{loop_device} holds something other than a Silt WAL (no valid WAL header, and its first 8 KiB are "
              "not zero: a filesystem, fio's data, or a WAL whose headers were damaged); refusing to format it. If "
              f"nothing on it is needed, format it on purpose with `silt admin format-wal --path {loop_device}`, then "
              "start the node again")
    assert log.count(f"silt: role wal: {reason}") == 1, log[-4000:]
    assert "restarting role" not in log, log[-4000:]
    assert time.monotonic() - started < 45

    # What the message says to run.
    out = subprocess.run([str(SILT_BIN), "admin", "format-wal", "--path", loop_device], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (f"format-wal: {loop_device}: header slots erased (it held something other than "
                                  "a Silt WAL); the node formats it at its next start")
    n.start(timeout=60)
    assert "WAL formatted" in n.log_text()
    roundtrip(n, "after-format-wal")
    assert n.stop() == 0

    # Now it holds this node's WAL: format-wal refuses it without --force.
    out = subprocess.run([str(SILT_BIN), "admin", "format-wal", "--path", loop_device], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2, out.stdout
    assert out.stderr.strip() == (f"format-wal: {loop_device} holds the Silt WAL of node 0 (capacity {DEVICE_BYTES} "
                                  "bytes); its records may not all be in object storage yet. Stop that node with "
                                  "SIGTERM (its uploader empties the WAL) before erasing it, or add --force to erase "
                                  "it anyway")
    n.start(timeout=60)   # untouched: it still opens
    roundtrip(n, "still-there")
