#!/usr/bin/env python3
"""An HTTP/1.1 fault-injecting proxy in front of an S3 endpoint (stdlib only).

    tools/s3-fault-proxy.py --upstream http://127.0.0.1:5000 [--port 0] [--fault-rate 0.2]
                            [--seed N] [--faults latency,500,503,reset,truncate]
                            [--stats-file F] [--max-latency-ms 300]

Listens on 127.0.0.1; prints "LISTENING <port>" on stdout once ready. Requests are
forwarded byte for byte (the Host header stays as the client sent it, so a SigV4
signature made for the proxy's host:port verifies upstream, which checks the Host value
it receives). With probability --fault-rate a request gets one fault, chosen uniformly
among --faults:
  latency   sleep up to --max-latency-ms, then forward normally
  500       answer 500 InternalError (S3 error XML) without forwarding
  503       answer 503 SlowDown (S3 error XML) without forwarding
  reset     close the client connection without a response (RST), without forwarding
  truncate  forward, then send the response head with its real Content-Length but only
            half of the body, and close (bodiless responses get a reset instead)
Counts per fault kind and requests are written as JSON to --stats-file after every
request and served at GET /__fault_stats (that path is never forwarded).
"""
import argparse
import json
import os
import random
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from urllib.parse import urlsplit

KINDS = ["latency", "500", "503", "reset", "truncate"]


class State:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.stats = {k: 0 for k in KINDS}
        self.stats["requests"] = 0
        self.stats["forwarded"] = 0
        self.kinds = [k for k in args.faults.split(",") if k]
        for k in self.kinds:
            if k not in KINDS:
                sys.exit(f"unknown fault kind {k}")
        u = urlsplit(args.upstream)
        self.upstream = (u.hostname, u.port or 80)

    def choose(self):
        with self.lock:
            self.stats["requests"] += 1
            if self.kinds and self.rng.random() < self.args.fault_rate:
                k = self.rng.choice(self.kinds)
                self.stats[k] += 1
                return k, self.rng.random()
            return None, self.rng.random()

    def count(self, key):
        with self.lock:
            self.stats[key] += 1

    def dump(self):
        # Written under the lock: two request threads dumping at once must not let the older
        # counts replace the newer ones (the file would then stay behind the last request).
        with self.lock:
            data = json.dumps(self.stats)
            if self.args.stats_file:
                tmp = self.args.stats_file + ".tmp"
                with open(tmp, "w") as f:
                    f.write(data)
                os.replace(tmp, self.args.stats_file)
        return data


def read_head(f):
    """Reads an HTTP head (start line + headers). Returns (raw bytes, start line, headers dict) or None at EOF."""
    lines = []
    raw = b""
    while True:
        line = f.readline(65537)
        if not line:
            return None
        raw += line
        if line in (b"\r\n", b"\n"):
            if not lines:
                raw = b""
                continue  # tolerate stray CRLF between requests
            break
        lines.append(line.decode("latin-1").rstrip("\r\n"))
    headers = {}
    for l in lines[1:]:
        name, _, value = l.partition(":")
        headers[name.strip().lower()] = value.strip()
    return raw, lines[0], headers


def read_body(f, headers, no_body=False):
    if no_body:
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = b""
        while True:
            size_line = f.readline()
            out += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = f.readline()
                    out += trailer
                    if trailer in (b"\r\n", b"\n", b""):
                        return out
            out += f.read(size + 2)
    n = int(headers.get("content-length", "0") or "0")
    return f.read(n) if n else b""


def s3_error(status, reason, code, message):
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f'<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>').encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


class Handler(socketserver.StreamRequestHandler):
    def setup(self):
        super().setup()
        self.up = None
        self.upf = None

    def upstream(self):
        if self.up is None:
            self.up = socket.create_connection(STATE.upstream, timeout=60)
            self.upf = self.up.makefile("rb")
        return self.up, self.upf

    def drop_upstream(self):
        if self.up is not None:
            try:
                self.up.close()
            except OSError:
                pass
        self.up = self.upf = None

    def reset_client(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()

    def forward(self, raw_request, method):
        for attempt in range(2):  # a pooled upstream connection may have been closed
            try:
                up, upf = self.upstream()
                up.sendall(raw_request)
                while True:
                    got = read_head(upf)
                    if got is None:
                        raise ConnectionError("upstream closed")
                    head_raw, status_line, headers = got
                    status = int(status_line.split()[1])
                    if not (100 <= status < 200):
                        break
                no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
                if not no_body and "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", ""):
                    body = upf.read()  # delimited by close
                    self.drop_upstream()
                else:
                    body = read_body(upf, headers, no_body)
                if headers.get("connection", "").lower() == "close":
                    self.drop_upstream()
                STATE.count("forwarded")
                return head_raw, headers, body, no_body
            except (OSError, ConnectionError, ValueError):
                self.drop_upstream()
                if attempt == 1:
                    raise
        raise ConnectionError("unreachable")

    def handle(self):
        try:
            while True:
                got = read_head(self.rfile)
                if got is None:
                    return
                raw, start, headers = got
                parts = start.split()
                method, target = parts[0], parts[1]
                if headers.get("expect", "").lower() == "100-continue":
                    # Answer the interim response ourselves; upstream 1xx replies are skipped.
                    self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    self.wfile.flush()
                body = read_body(self.rfile, headers)
                if target == "/__fault_stats":
                    data = STATE.dump().encode()
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                     + str(len(data)).encode() + b"\r\n\r\n" + data)
                    self.wfile.flush()
                    continue
                kind, r = STATE.choose()
                try:
                    if kind == "latency":
                        time.sleep(r * STATE.args.max_latency_ms / 1000.0)
                    if kind == "500":
                        self.wfile.write(s3_error(500, "Internal Server Error", "InternalError",
                                                  "We encountered an internal error. Please try again."))
                        self.wfile.flush()
                        continue
                    if kind == "503":
                        self.wfile.write(s3_error(503, "Slow Down", "SlowDown", "Please reduce your request rate."))
                        self.wfile.flush()
                        continue
                    if kind == "reset":
                        self.reset_client()
                        return
                    head_raw, rh, rbody, no_body = self.forward(raw + body, method)
                    if kind == "truncate":
                        if no_body or len(rbody) < 2 or "chunked" in rh.get("transfer-encoding", ""):
                            self.reset_client()
                            return
                        self.wfile.write(head_raw + rbody[: len(rbody) // 2])
                        self.wfile.flush()
                        self.reset_client()
                        return
                    self.wfile.write(head_raw + rbody)
                    self.wfile.flush()
                finally:
                    STATE.dump()
                if headers.get("connection", "").lower() == "close":
                    return
        except (OSError, ValueError, ConnectionError):
            return
        finally:
            self.drop_upstream()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global STATE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--faults", default=",".join(KINDS))
    ap.add_argument("--stats-file", default=None)
    ap.add_argument("--max-latency-ms", type=int, default=300)
    args = ap.parse_args()
    # A parent (e.g. a test runner) may have blocked signals: SIGTERM must stop the proxy.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    STATE = State(args)
    srv = Server(("127.0.0.1", args.port), Handler)
    STATE.dump()
    print(f"LISTENING {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
