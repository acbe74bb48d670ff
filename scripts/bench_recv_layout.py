"""Does the loader's memory layout change the kernel's cost? Plain Python readers, one run.

    .venv/bin/python scripts/bench_recv_layout.py

One gateway (`farfeed serve`, 3,000 x 115 KB samples, page cache); 4 rounds of four
readers, CPU-s/GB of this process (getrusage), into one warm, cache-line-aligned 256 MiB
arena:

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
"""

import json
import resource
import socket
import statistics
import struct
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


def epoch(host, port, seed, align, base=0, shuffle=True, contiguous=False):
    ids = index.ids("train")
    if shuffle:
        ids = np.random.default_rng(seed).permutation(ids)
    total = 0
    pos = base
    with socket.create_connection((host, port)) as sock:
        k = 0
        while k < len(ids):
            items, size = [], 0
            while k < len(ids) and size < (7 << 20):
                shard, offset, length = index.span(int(ids[k]))
                items.append((f"ds/{shard}", offset, length))
                size += length
                k += 1
            body = json.dumps({"ranges": [list(i) for i in items]}).encode()
            sock.sendall(
                b"POST /_farfeed/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % len(body)
                + body
            )
            while True:
                data = sock.recv(8192, socket.MSG_PEEK)
                end = data.find(b"\r\n\r\n")
                if end >= 0:
                    break
            sock.recv(end + 4)
            whole = size + 12 * (len(items) + 1)  # the response body: frames and payloads
            if pos + whole + 64 * len(items) > ARENA:
                pos = base
            if contiguous:
                view, left = arena[pos : pos + whole], whole
                while left:
                    got = sock.recvmsg_into([view[: min(left, 4 << 20)]], 0, socket.MSG_WAITALL)[0]
                    view, left = view[got:], left - got
                pos += whole
                total += size
                continue
            hdrs = bytearray(12 * (len(items) + 1))
            hv = memoryview(hdrs)
            bufs = []
            for j, (_, _, length) in enumerate(items):
                bufs.append(hv[12 * j : 12 * j + 12])
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


shards = sorted(p.name for p in (root / "ds").glob("*.tar"))
res = {}
with GatewayProcess.start(root) as gw:
    host, port = gw.url.split("//")[1].split(":")
    port = int(port)
    for r in range(4):
        for mode in ("floor-store", "natural", "aligned64", "offset16", "in-order", "contiguous"):
            c0 = cpu()
            if mode == "floor-store":
                n = read_shards(
                    gw.url + "/ds", shards, connections=1, on_bytes=lambda n: None, into=arena
                )
            else:
                n = epoch(
                    host, port, r, align=mode in ("aligned64", "offset16"),
                    base=16 if mode == "offset16" else 0, shuffle=mode != "in-order",
                    contiguous=mode == "contiguous",
                )
            res.setdefault(mode, []).append((cpu() - c0) / (n / 1e9))
for k, v in res.items():
    print(f"{k:12s} {statistics.median(v):.2f}", [round(x, 2) for x in v])
