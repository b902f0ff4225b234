"""AutoMQ's operating commands against a real S3 server (moto, SigV4 enforced).

generate-s3-url pings the bucket in 8 steps; generate-start-command prints the start
lines; bin/kafka-server-start.sh starts a node from an s3url, which formats itself, binds
the ops bucket to its cluster, refuses another cluster id, and shows no secret in any argv.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from silt_helpers import HOST, SILT_BIN, Node, free_ports, roundtrip

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ROOT / "bin" / "automq-kafka-admin.sh"
START = ROOT / "bin" / "kafka-server-start.sh"
CHECKS = ["Write object", "RangeRead object", "Delete object", "CreateMultipartUpload", "UploadPart",
          "CompleteMultipartUpload", "UploadPartCopy", "Delete objects"]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """moto on loopback with SigV4 enforced and two buckets; yields its env."""
    d = tmp_path_factory.mktemp("moto")
    env_file, pid_file = d / "moto.env", d / "moto.pid"
    subprocess.run([str(ROOT / "tools" / "moto-server"), "--port", "0", "--env-file", str(env_file),
                    "--pid-file", str(pid_file), "--watch-pid", str(os.getpid()), "silt-data", "silt-ops"],
                   check=True, timeout=180, stdout=subprocess.DEVNULL)
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    yield env
    subprocess.run([str(ROOT / "tools" / "moto-server"), "--stop", "--pid-file", str(pid_file)], timeout=30)


def admin(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, SILT_BIN=str(SILT_BIN), **(env or {}))
    return subprocess.run([str(ADMIN), *args], capture_output=True, text=True, timeout=120, env=e)


def generate(moto: dict, secret: str | None = None, data_bucket: str = "silt-data") -> subprocess.CompletedProcess:
    return admin("generate-s3-url", f"--s3-access-key={moto['AWS_ACCESS_KEY_ID']}",
                 f"--s3-secret-key={secret or moto['AWS_SECRET_ACCESS_KEY']}", "--s3-region=us-east-1",
                 f"--s3-endpoint={moto['S3_ENDPOINT']}", f"--s3-data-bucket={data_bucket}",
                 "--s3-ops-bucket=silt-ops", "--s3-path-style=true")


def test_generate_s3_url_all_eight_checks_pass(moto):
    r = generate(moto)
    assert r.returncode == 0, r.stdout + r.stderr
    for check in CHECKS:
        assert f"[ OK ] {check}" in r.stdout, r.stdout
    assert "[ FAILED ]" not in r.stdout
    url = re.search(r"^(s3://\S+)$", r.stdout, re.M).group(1)
    assert re.search(r"cluster-id=[A-Za-z0-9_-]{22}$", url), url


def test_generate_s3_url_wrong_secret_fails_with_signature_advice(moto):
    r = generate(moto, secret="wrong" + moto["AWS_SECRET_ACCESS_KEY"][5:])
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "[ FAILED ] Write object" in out, out
    assert "SignatureDoesNotMatch" in out, out
    assert "wrong" + moto["AWS_SECRET_ACCESS_KEY"][5:] not in out, "the secret was printed"


def test_generate_s3_url_missing_bucket_gives_bucket_advice(moto):
    r = generate(moto, data_bucket="no-such-bucket-here")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "[ FAILED ]" in out
    assert "NoSuchBucket" in out and "no-such-bucket-here" in out, out


def start_line(url: str, port: int, cport: int) -> list[str]:
    r = admin("generate-start-command", f"--s3-url={url}", f"--controller-list={HOST}:{cport}",
              f"--broker-list={HOST}:{port}")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("bin/kafka-server-start.sh")]
    assert len(lines) == 1, r.stdout
    return lines[0]


def test_node_started_from_s3url_formats_binds_bucket_and_hides_secrets(moto, tmp_path):
    r = generate(moto)
    url = re.search(r"^(s3://\S+)$", r.stdout, re.M).group(1)
    port, cport = free_ports(2)
    line = start_line(url, port, cport)
    # The printed line, as a shell would run it, plus where to keep data on this machine.
    # (A combined node's PLAINTEXT port is AutoMQ's 9092; move it to a free one here.)
    line = line.replace(f"{HOST}:9092", f"{HOST}:{port}")
    data = tmp_path / "data"
    cmd = f"{line} --override log.dirs={data} --override s3.wal.capacity={64 << 20}"
    env = dict(os.environ, SILT_BIN=str(SILT_BIN))
    log = open(tmp_path / "node.log", "wb")
    proc = subprocess.Popen(["bash", "-c", f"cd {ROOT} && exec {cmd}"], stdout=log, stderr=log, env=env,
                            start_new_session=True)
    try:
        node = Node.__new__(Node)   # reuse the readiness check and client helpers on this process
        node.port, node.proc, node.log_path = port, proc, tmp_path / "node.log"
        node.wait_ready(60)
        meta = (data / "meta.properties").read_text()
        cluster = re.search(r"cluster-id=([A-Za-z0-9_-]+)", url).group(1)
        assert f"cluster.id={cluster}" in meta
        assert "clusterMarker=created" in (tmp_path / "node.log").read_text()
        roundtrip(node, "s3url-topic", 20)
        # No secret in any argv of the node's processes.
        secret = moto["AWS_SECRET_ACCESS_KEY"]
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert secret not in ps
        assert "role broker" in ps and "--s3-url=" in ps, "the node's processes are not where ps would show them"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(60)
        log.close()

    # Another cluster id against the same ops bucket is refused, with a clear message.
    other = re.sub(r"cluster-id=[A-Za-z0-9_-]+", "cluster-id=AAAAAAAAAAAAAAAAAAAAAA", url)
    r = subprocess.run(["bash", "-c", f'cd {ROOT} && bin/kafka-server-start.sh --s3-url="{other}" '
                        f"--override log.dirs={tmp_path / 'other'} --override s3.wal.capacity={64 << 20}"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0
    assert "belongs to cluster" in r.stderr and cluster in r.stderr, r.stderr
