"""Gateway CPU-seconds per GB: batch-get vs whole-object GET (sendfile), plain HTTP and TLS.

    .venv/bin/python scripts/bench_batch_get.py --reps 7 --gb 2
    .venv/bin/python scripts/bench_batch_get.py --tls --reps 5 --gb 0.7

The figures behind docs/BENCHMARKS.md, "CPU per GB" (the gateway's batch-get alone, with a
client that costs almost nothing).

Starts `GatewayProcess` over ROOT/ds with 2 random 150 MB shards (read once so they are in
page cache), reads the gateway's utime+stime from /proc/PID/stat around each trial, and
drives it from a client in another process that reads every response over one keep-alive
plain (or TLS) socket into a preallocated buffer with recv_into. Trials alternate: one
whole-object GET trial, then one batch-get trial; medians are reported.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import socket
import ssl
import statistics
import subprocess
import time
from pathlib import Path

from farfeed.server.process import GatewayProcess

SHARD = 150 * 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")


def make_root(root: Path) -> list[str]:
    ds = root / "ds"
    ds.mkdir(parents=True, exist_ok=True)
    (root / "checkpoints").mkdir(exist_ok=True)
    (ds / "dataset.json").write_text('{"kind": "bench"}')
    names = []
    for i in range(2):
        p = ds / f"shard-{i}.bin"
        if not p.exists() or p.stat().st_size != SHARD:
            with open(p, "wb") as f:
                for _ in range(SHARD // (16 << 20)):
                    f.write(os.urandom(16 << 20))
                f.write(os.urandom(SHARD % (16 << 20)))
        with open(p, "rb") as f:  # into page cache
            while f.read(16 << 20):
                pass
        names.append(f"ds/shard-{i}.bin")
    return names


def make_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )
    return cert, key


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def client(port: int, tls: bool, requests: list[bytes], out: multiprocessing.Queue) -> None:
    """Send each request on one keep-alive connection; read each body into one buffer."""
    sock = socket.create_connection(("127.0.0.1", port))
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    buf = bytearray(256 << 20)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    for req in requests:
        sock.sendall(req)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        status = head.split(b" ", 2)[1]
        assert status == b"200", head
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        view[: len(rest)] = rest
        got = len(rest)
        while got < length:
            n = sock.recv_into(view[got:length])
            assert n, "connection closed mid-body"
            got += n
        total += length
    out.put((total, time.perf_counter() - t0))
    sock.close()


def get_request(path: str) -> bytes:
    return f"GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def batch_request(names: list[str], rng: random.Random, n: int = 400, size: int = 0) -> bytes:
    ranges = []
    for _ in range(n):
        name = rng.choice(names)
        length = size or rng.randrange(100_000, 130_000)
        ranges.append([name, rng.randrange(SHARD - length), length])
    body = json.dumps({"ranges": ranges}).encode()
    return b"POST /_farfeed/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + \
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def trial(gw: GatewayProcess, tls: bool, requests: list[bytes]) -> tuple[float, float, float]:
    """(gateway CPU-s per GB, GB moved, client MB/s)."""
    assert gw.pid is not None
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    before = cpu_seconds(gw.pid)
    p = ctx.Process(target=client, args=(gw.port, tls, requests, out))
    p.start()
    total, wall = out.get()
    p.join()
    time.sleep(0.05)
    used = cpu_seconds(gw.pid) - before
    return used / (total / 1e9), total / 1e9, total / wall / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="bench-out/batch-get/root")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gb", type=float, default=2.0, help="bytes per trial")
    ap.add_argument("--ranges", type=int, default=400, help="ranges per batch request")
    ap.add_argument("--range-bytes", type=int, default=0, help="bytes per range (default: 100,000-130,000)")
    args = ap.parse_args()
    root = Path(args.root)
    names = make_root(root)
    cert = key = None
    if args.tls:
        cert, key = make_cert(root)
    rng = random.Random(0)
    n_get = max(1, round(args.gb * 1e9 / SHARD))
    per_batch = args.ranges * (args.range_bytes or 115_000)
    n_batch = max(1, round(args.gb * 1e9 / per_batch))
    results: dict[str, list[tuple[float, float, float]]] = {"GET whole object": []}
    gws = {"repo": GatewayProcess.start(root, cert=cert, key=key)}
    results["batch-get repo"] = []
    try:
        for _ in range(args.reps):
            first = next(iter(gws.values()))
            results["GET whole object"].append(trial(first, args.tls, [get_request(names[i % 2]) for i in range(n_get)]))
            for name, gw in gws.items():
                reqs = [batch_request(names, rng, args.ranges, args.range_bytes) for _ in range(n_batch)]
                results[f"batch-get {name}"].append(trial(gw, args.tls, reqs))
    finally:
        for gw in gws.values():
            gw.stop()
    scheme = "https" if args.tls else "http"
    get_med = statistics.median(r[0] for r in results["GET whole object"])
    print(f"{scheme}, {args.reps} trials of ~{args.gb} GB each; gateway CPU-s/GB (median, [all]), client MB/s (median)")
    for label, rows in results.items():
        med = statistics.median(r[0] for r in rows)
        print(f"  {label:28s} {med:6.3f}  [{', '.join(f'{r[0]:.3f}' for r in rows)}]  "
              f"{statistics.median(r[2] for r in rows):7.0f} MB/s  ratio to GET {med / get_med:5.2f}x")


if __name__ == "__main__":
    main()
