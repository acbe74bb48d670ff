"""Can plain Python receive batch-get near the floor? An experiment for issue 10's CPU targets.

    .venv/bin/python scripts/bench_blocking_receive.py --repeats 5

One process, one gateway (`farfeed serve` over 3,000 x 115 KB samples, page cache), and
three readers run in turn, each over the same bytes, CPU from ``getrusage`` of this
process (the gateway's measured apart):

- ``floor``: whole shards by GET into one reused 1 MiB buffer (`bench.cpu.floor`);
- ``floor-store``: the same, each body stored in its own place of the arena below (the
  storing floor: what any reader that keeps the bytes pays);
- ``blocking``: batch-get requests of ~4 MiB of shuffled samples, each frame's payload
  received straight into its place in a 256 MiB arena with one blocking
  ``recv_into(..., MSG_WAITALL)`` (the GIL released), and its xxh64 checked against the
  index: what farfeed's loader does per sample, without the event loop
  (``blocking-nohash``: the same without the check);
- ``farfeed``: `farfeed.Dataset(decode="batch")` in-process over the same gateway.

The figures are CPU-s per GB of this process and the ratio to the floor in the same round.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import struct
import time
from pathlib import Path

import numpy as np
import xxhash

from farfeed.bench.cpu.floor import aligned_buffer, read_shards
from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.format.sample_index import SampleIndex
from farfeed.loader import Dataset
from farfeed.server.process import GatewayProcess

FRAME = struct.Struct(">IQ")
ARENA = 256 << 20
REQUEST = 4 << 20


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


_ARENA = aligned_buffer(ARENA)  # made once, as the loader's arena is (pages warm)


def blocking_epoch(
    host: str, port: int, name: str, index: SampleIndex, seed: int, verify: bool = True
) -> int:
    ids = np.random.default_rng(seed).permutation(index.ids("train"))
    arena = _ARENA
    head = bytearray(FRAME.size)
    hv = memoryview(head)
    total = pos = 0
    checksum = index.checksum
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        k = 0
        while k < len(ids):
            items, size = [], 0
            while k < len(ids) and size < REQUEST:
                shard, offset, length = index.span(int(ids[k]))
                items.append((int(ids[k]), f"{name}/{shard}", offset, length))
                size += length
                k += 1
            body = json.dumps({"ranges": [[p, o, n] for _, p, o, n in items]}).encode()
            sock.sendall(b"POST /_farfeed/batch HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            while True:  # peek until the head is in, then take exactly the head
                data = sock.recv(8192, socket.MSG_PEEK)
                end = data.find(b"\r\n\r\n")
                if end >= 0:
                    break
            status = sock.recv(end + 4)
            assert status.startswith(b"HTTP/1.1 200"), status[:80]
            if pos + size > ARENA:
                pos = 0
            for i, _, _, length in items:
                sock.recv_into(hv, FRAME.size, socket.MSG_WAITALL)
                dest = arena[pos : pos + length]
                got = 0
                while got < length:
                    got += sock.recv_into(dest[got:], length - got, socket.MSG_WAITALL)
                if verify and xxhash.xxh64_intdigest(dest) != int(checksum[i]):
                    raise RuntimeError(f"sample {i}: checksum mismatch")
                pos += length
                total += length
            sock.recv_into(hv, FRAME.size, socket.MSG_WAITALL)  # the trailer
    return total


def farfeed_epoch(url: str, seed: int) -> int:
    ds = Dataset(url, decode="batch", batch_size=40, seed=seed)
    total = 0
    for batch in ds:
        total += batch.nbytes
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/farfeed-bench-blocking"))
    args = parser.parse_args()
    root = args.work / "root"
    ds_dir = make_fixed_size_dataset(root / "ds", samples=3000, sample_bytes=115_000)
    shards = sorted(p.name for p in ds_dir.glob("*.tar"))
    for p in ds_dir.iterdir():
        p.read_bytes()
    index = SampleIndex.load(ds_dir)
    rows: dict[str, list[float]] = {"floor": [], "floor-store": [], "blocking": [],
                                    "blocking-nohash": [], "farfeed": []}  # fmt: skip
    mbs: dict[str, list[float]] = {k: [] for k in rows}
    with GatewayProcess.start(root) as gw:
        host, port = gw.url.split("//")[1].split(":")
        farfeed_epoch(f"{gw.url}/ds", 0)  # warm: imports, page cache
        for r in range(args.repeats):
            for mode in rows:
                c0, t0 = cpu(), time.monotonic()
                if mode.startswith("floor"):
                    into = _ARENA if mode == "floor-store" else None
                    n = read_shards(gw.url + "/ds", shards, connections=1, on_bytes=lambda n: None,
                                    into=into)  # fmt: skip
                elif mode.startswith("blocking"):
                    n = blocking_epoch(host, int(port), "ds", index, seed=r,
                                       verify=mode == "blocking")  # fmt: skip
                else:
                    n = farfeed_epoch(f"{gw.url}/ds", seed=r)
                rows[mode].append((cpu() - c0) / (n / 1e9))
                mbs[mode].append(n / 1e6 / (time.monotonic() - t0))
    floor = statistics.median(rows["floor"])
    for mode, values in rows.items():
        ratios = [v / f for v, f in zip(values, rows["floor"], strict=True)]
        print(f"{mode:>9}: CPU-s/GB median {statistics.median(values):.2f} "
              f"({', '.join(f'{v:.2f}' for v in values)}), x floor {statistics.median(ratios):.2f}, "
              f"MB/s median {statistics.median(mbs[mode]):.0f}")
    print(f"floor median {floor:.2f}")


if __name__ == "__main__":
    main()
