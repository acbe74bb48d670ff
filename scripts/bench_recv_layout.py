"""Does the loader's memory layout change the kernel's cost? Plain Python readers, one run.

    .venv/bin/python scripts/bench_recv_layout.py                      # the first six modes
    .venv/bin/python scripts/bench_recv_layout.py floor-store,natural,naturalr64,chunks112,chunks112r64

One gateway (`farfeed serve`, 3,000 x 115 KB samples, page cache); 4 rounds of the
readers named (comma-separated; default below), CPU-s/GB of this process (getrusage) and
its voluntary context switches per GB, into one warm, cache-line-aligned 256 MiB arena:

- ``floor-store``: whole shards by GET, each body in its own place (`bench.cpu.floor`);
- ``natural``: batch-get requests of ~7 MiB of shuffled samples, each response received
  with ``recvmsg_into(..., MSG_WAITALL)`` over its frame headers and the samples back to
  back in the arena (the loader's layout);
- ``aligned64``: the same with every sample starting on a 64-byte boundary;
- ``offset16``: the same, 16 bytes past a cache line;
- ``in-order``: ``natural`` with the samples in shard order, not shuffled (the same bytes
  and requests; only the order of the ranges differs);
- ``contiguous``: ``natural``'s requests, each whole response (headers and payloads as they
  come) received ~4 MiB at a time into one buffer per call: what the kernel pays for the
  stream itself, without one buffer per frame header and per sample.
- ``file64`` / ``file4k``: ``natural`` with each sample placed at an arena offset congruent
  to its offset in the shard, modulo 64 / 4096 bytes (source and destination equally
  aligned for the kernel's copy);
- ``chunksN``: the shards in order, as ranges of N KiB, received as ``contiguous``;
- ``...rM`` (after ``natural`` or ``chunksN``): requests of M MiB instead of ~7 MiB;
- ``pipelinedK``: ``contiguous``, with K requests (default 1) sent ahead of the response
  being read, so the gateway never waits for the next request;
- ``loader``: one epoch of `farfeed.Dataset(decode="batch", batch_size=32)` in this process
  (after three warm-up epochs), for scale.
"""

import contextlib
import json
import resource
import socket
import statistics
import struct
import sys
from pathlib import Path

import numpy as np

from farfeed.bench.cpu.floor import aligned_buffer, read_shards
from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.format.sample_index import SampleIndex
from farfeed.server.process import GatewayProcess

FRAME = struct.Struct(">IQ")


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


root = Path("/tmp/farfeed-bench-blocking/root")
make_fixed_size_dataset(root / "ds", samples=3000, sample_bytes=115_000)
index = SampleIndex.load(root / "ds")
ARENA = 256 << 20
arena = aligned_buffer(ARENA)
arena[:] = bytes(ARENA)


def skip_head(sock):
    """Read one response's status line and headers off ``sock``."""
    while True:
        data = sock.recv(8192, socket.MSG_PEEK)
        if not data:
            raise ConnectionError("the gateway closed the connection")
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            break
    sock.recv(end + 4)


def receive_whole(sock, view):
    """Fill ``view`` from ``sock``, ~4 MiB per call."""
    left = len(view)
    while left:
        got = sock.recvmsg_into([view[: min(left, 4 << 20)]], 0, socket.MSG_WAITALL)[0]
        if not got:
            raise ConnectionError("the gateway closed the connection mid-response")
        view, left = view[got:], left - got


def chunked(step):
    """(shard, offset, length) ranges of ``step`` bytes over every shard, in order."""
    out = []
    for shard in shards:
        size = (root / "ds" / shard).stat().st_size
        out += [(shard, o, min(step, size - o)) for o in range(0, size, step)]
    return out


def epoch(host, port, seed, align, base=0, shuffle=True, contiguous=False, congruent=0, step=0, request=7 << 20):
    ids = index.ids("train")
    spans = chunked(step) if step else None
    if spans:
        ids = range(len(spans))
    if shuffle:
        ids = np.random.default_rng(seed).permutation(ids)
    total = 0
    pos = base
    with socket.create_connection((host, port)) as sock:
        k = 0
        while k < len(ids):
            items, size = [], 0
            while k < len(ids) and size < request:
                shard, offset, length = spans[k] if spans else index.span(int(ids[k]))
                items.append((f"ds/{shard}", offset, length))
                size += length
                k += 1
            body = json.dumps({"ranges": [list(i) for i in items]}).encode()
            sock.sendall(
                b"POST /_farfeed/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % len(body)
                + body
            )
            skip_head(sock)
            whole = size + 12 * (len(items) + 1)  # the response body: frames and payloads
            if pos + whole + max(64, congruent) * len(items) > ARENA:
                pos = base
            if contiguous:
                receive_whole(sock, arena[pos : pos + whole])
                pos += whole
                total += size
                continue
            hdrs = bytearray(12 * (len(items) + 1))
            hv = memoryview(hdrs)
            bufs = []
            for j, (_, offset, length) in enumerate(items):
                bufs.append(hv[12 * j : 12 * j + 12])
                if congruent:
                    pos += (offset - pos) % congruent
                bufs.append(arena[pos : pos + length])
                pos = ((pos + length + 63) & ~63) + base if align else pos + length
            bufs.append(hv[12 * len(items) :])
            while bufs:
                got = sock.recvmsg_into(bufs[:1024], 0, socket.MSG_WAITALL)[0]
                while got:
                    if got >= len(bufs[0]):
                        got -= len(bufs[0])
                        bufs.pop(0)
                    else:
                        bufs[0] = bufs[0][got:]
                        got = 0
            total += size
    return total


def pipelined(host, port, seed, request=7 << 20, ahead=1):
    """``contiguous``, with ``ahead`` requests always sent before their responses are read."""
    ids = np.random.default_rng(seed).permutation(index.ids("train"))
    reqs, k = [], 0
    while k < len(ids):
        items, size = [], 0
        while k < len(ids) and size < request:
            shard, offset, length = index.span(int(ids[k]))
            items.append([f"ds/{shard}", offset, length])
            size += length
            k += 1
        body = json.dumps({"ranges": items}).encode()
        head = b"POST /_farfeed/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        reqs.append((head + body, size + 12 * (len(items) + 1), size))
    total = pos = 0
    with socket.create_connection((host, port)) as sock:
        for i in range(min(ahead, len(reqs))):
            sock.sendall(reqs[i][0])
        for i, (_, whole, size) in enumerate(reqs):
            if i + ahead < len(reqs):
                sock.sendall(reqs[i + ahead][0])
            skip_head(sock)
            if pos + whole > ARENA:
                pos = 0
            receive_whole(sock, arena[pos : pos + whole])
            pos += whole
            total += size
    return total


@contextlib.contextmanager
def gateway_log_on_error(gw):
    """Print the gateway's log when it closed a connection a reader still needed."""
    try:
        yield
    except ConnectionError:
        print(gw.log_text()[-3000:], file=sys.stderr)
        raise


MODES = sys.argv[1].split(",") if len(sys.argv) > 1 else (
    "floor-store", "natural", "aligned64", "offset16", "in-order", "contiguous")
shards = sorted(p.name for p in (root / "ds").glob("*.tar"))
res, sw = {}, {}
with GatewayProcess.start(root) as gw, gateway_log_on_error(gw):
    host, port = gw.url.split("//")[1].split(":")
    port = int(port)
    if "loader" in MODES:
        from farfeed.loader import Dataset
        ds = Dataset(gw.url + "/ds", decode="batch", batch_size=32, seed=0)
        for _ in range(3):  # the arena grows to its working size
            for _batch in ds:
                pass
    for r in range(4):
        for mode in MODES:
            print(f"round {r + 1}: {mode}", file=sys.stderr, flush=True)
            c0 = cpu()
            v0 = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
            if mode == "floor-store":
                n = read_shards(
                    gw.url + "/ds", shards, connections=1, on_bytes=lambda n: None, into=arena
                )
            elif mode == "loader":
                n = 0
                ds.set_epoch(r + 10)
                for b in ds:
                    n += b.nbytes
            elif mode.startswith("pipelined"):
                n = pipelined(host, port, r, ahead=int(mode[9:] or 1))
            else:
                n = epoch(
                    host, port, r, align=mode in ("aligned64", "offset16"),
                    base=16 if mode == "offset16" else 0, shuffle=mode != "in-order" and not mode.startswith("chunks"),
                    contiguous=mode == "contiguous" or mode.startswith("chunks"),
                    congruent={"file64": 64, "file4k": 4096}.get(mode, 0),
                    step=int(mode[6:].split("r")[0]) << 10 if mode.startswith("chunks") else 0,
                    request=(int(mode.split("r")[-1]) << 20) if "r" in mode[6:] else 7 << 20,
                )
            res.setdefault(mode, []).append((cpu() - c0) / (n / 1e9))
            sw.setdefault(mode, []).append((resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - v0) / (n / 1e9))
for k, v in res.items():
    print(f"{k:12s} {statistics.median(v):.2f}", [round(x, 2) for x in v], "wake-ups/GB", round(statistics.median(sw[k])))
