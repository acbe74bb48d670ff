"""Two gateway processes vs one: MB/s and CPU-seconds per GB of `farfeed.Dataset(spread=True)`.

    .venv/bin/python scripts/bench_spread.py --size 300MB --repeats 3
    .venv/bin/python scripts/bench_spread.py --decode batch --workers 1 --repeats 3

The figures behind issue 10, part 5 ("more than one storage node"), in its CPU-bound case:
loopback, no emulator, page cache, bytes only. By default `farfeed.Dataset(decode="raw")`
iterated in the training process; with ``--decode batch``, `decode="batch"` batches of
``--batch-size`` through `farfeed.loader.DataLoader` with ``--workers`` workers (0: in the
training process). Two `GatewayProcess`es (one worker each) serve
the same dataset folder (the one `farfeed bench cpu` makes, reused). Modes, interleaved per
repeat, each run in a fresh Python:

- ``floor``: a plain socket reader GETting every shard whole from gateway A (sendfile):
  the same run's floor, for the "× floor" column.
- ``one``: ``Dataset(url_a)``: one gateway.
- ``two``: ``Dataset(url_a, replicas=[url_b], spread=True)``: both at once.

Each run's window leaves out the first --warmup of the epoch and ends when the last sample
arrives; the client reads its own CPU and both gateways' from /proc at both ends
(`farfeed.bench.cpu.procstat`). Columns: MB/s of sample bytes delivered; CPU-s/GB of the
client and of the gateways (both together); each gateway's share of the bytes sent (from
its /metrics). Medians of --repeats. On a 2-core box the client alone needs about a core
at these rates, so a second gateway can add little: the point is that it does not cost
more CPU per GB, and that it takes half the bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MODES = ("floor", "one", "two")
LABELS = {"floor": "floor: whole shards by GET from A", "one": "1 (`Dataset(url)`)",
          "two": "2 (`replicas=[b], spread=True`)"}  # fmt: skip


def floor(args: dict[str, Any]) -> dict[str, Any]:
    """The floor of the same run: every shard GET whole from gateway A (sendfile) by a plain
    socket reader into one reused buffer (`farfeed.bench.cpu.floor`), all of it timed."""
    from farfeed.bench.cpu.floor import read_shards
    from farfeed.bench.cpu.procstat import snapshot, tree_delta

    pids = args["gateway_pids"]
    start = (time.monotonic(), snapshot([os.getpid()]), snapshot(pids))
    nbytes = read_shards(args["urls"][0], args["shards"], connections=1, on_bytes=lambda n: None)
    end = (time.monotonic(), snapshot([os.getpid()]), snapshot(pids))
    return {"window_bytes": nbytes, "window_s": end[0] - start[0], "startup_s": 0.0,
            "client_cpu_s": tree_delta(start[1], end[1]), "gateway_cpu_s": tree_delta(start[2], end[2]),
            "retries": 0}  # fmt: skip


def client(args: dict[str, Any]) -> dict[str, Any]:
    """One epoch in this process; the window's bytes, seconds and CPU (client, gateways)."""
    from farfeed.bench.cpu.procstat import snapshot, tree_delta
    from farfeed.loader import DataLoader, Dataset

    urls, pids, batch = args["urls"], args["gateway_pids"], args["batch_size"]
    t0 = time.monotonic()
    spread = {} if args["mode"] == "one" else {"replicas": urls[1:], "spread": True}
    ds = Dataset(urls[0], seed=args["seed"], decode=args["decode"], batch_size=batch, **spread)
    total = len(ds)
    start_at = math.ceil(args["warmup"] * total)
    n = nbytes = 0
    mark: tuple[float, int, Any, Any] | None = None

    def sizes() -> Iterator[tuple[int, int]]:
        """(samples, bytes) of each sample or batch, as the reader delivers them."""
        if args["decode"] == "raw":
            return ((1, len(sample["bin"])) for sample in ds)
        loader = DataLoader(ds, batch_size=batch, num_workers=args["workers"])
        return ((len(b), int(b.members["bin"][:, 1].sum())) for b in loader)

    for count, size in sizes():
        n += count
        nbytes += size
        if mark is None and n >= start_at:
            mark = (time.monotonic(), nbytes, snapshot([os.getpid()]), snapshot(pids))
    end = (time.monotonic(), nbytes, snapshot([os.getpid()]), snapshot(pids))
    assert mark is not None and n == total
    return {
        "window_bytes": end[1] - mark[1],
        "window_s": end[0] - mark[0],
        "startup_s": mark[0] - t0,
        "client_cpu_s": tree_delta(mark[2], end[2]),
        "gateway_cpu_s": tree_delta(mark[3], end[3]),
        "retries": ds.stats()["retries"],
    }


def sent(url: str) -> tuple[int, int]:
    """Bytes the gateway has sent, and the ``POST /_farfeed/batch`` requests it answered."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.search(r"^farfeed_bytes_sent_total (\d+)", text, re.M)
    requests = sum(int(n) for n in re.findall(r'^farfeed_requests_total\{endpoint="batch[^"]*",[^}]*\} (\d+)', text, re.M))
    return (int(found.group(1)) if found else 0), requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="300MB", help="dataset size (default 300MB)")
    parser.add_argument("--sample-bytes", type=int, default=114_660)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--decode", choices=("raw", "batch"), default="raw")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (--decode batch only)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-out/cpu"))
    parser.add_argument("--client", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.client:
        spec = json.loads(opts.client)
        print(json.dumps(floor(spec) if spec["mode"] == "floor" else client(spec)), flush=True)
        return

    from farfeed.bench.cpu.config import CpuBenchConfig
    from farfeed.bench.cpu.harness import prepare_dataset
    from farfeed.format.meta import parse_size
    from farfeed.server.process import GatewayProcess

    cfg = CpuBenchConfig(links=("none",), size=parse_size(opts.size), sample_bytes=opts.sample_bytes,
                         workdir=opts.workdir)  # fmt: skip
    folder, data = prepare_dataset(cfg)
    shards = sorted(p.name for p in folder.glob("*.tar"))
    print(f"dataset: {data['bytes'] / 1e6:.0f} MB, {data['samples']} samples, page cache; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    with GatewayProcess.start(folder.parent) as a, GatewayProcess.start(folder.parent) as b:
        gateways = [a, b]
        for repeat in range(opts.repeats):
            for mode in MODES:
                used = gateways[: 2 if mode == "two" else 1]
                before = [sent(g.url) for g in gateways]
                args = {"mode": mode, "urls": [f"{g.url}/{data['name']}" for g in used],
                        "gateway_pids": [g.pid for g in used], "warmup": opts.warmup, "seed": repeat,
                        "decode": opts.decode, "batch_size": opts.batch_size, "workers": opts.workers,
                        "shards": shards}  # fmt: skip
                out = subprocess.run([sys.executable, __file__, "--client", json.dumps(args)],
                                     capture_output=True, text=True, timeout=600)  # fmt: skip
                if out.returncode != 0:
                    raise SystemExit(f"{mode} run failed: {out.stderr[-2000:]}")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                after = [sent(g.url) for g in gateways]
                nbytes = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
                requests = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
                row["share_a"] = nbytes[0] / max(1, sum(nbytes))
                row["request_mb"] = sum(nbytes) / requests / 1e6 if requests else 0.0
                gb = row["window_bytes"] / 1e9
                row.update(mb_s=row["window_bytes"] / row["window_s"] / 1e6,
                           client_per_gb=row["client_cpu_s"] / gb, gateway_per_gb=row["gateway_cpu_s"] / gb)  # fmt: skip
                runs[mode].append(row)
                print(f"[{repeat + 1}/{opts.repeats}] {mode}: {row['mb_s']:.0f} MB/s, CPU-s/GB client "
                      f"{row['client_per_gb']:.2f}, gateways {row['gateway_per_gb']:.2f}, "
                      f"gateway A sent {row['share_a']:.0%}, {row['request_mb']:.1f} MB per batch-get", flush=True)  # fmt: skip
    floor_cpu = statistics.median(r["client_per_gb"] for r in runs["floor"])
    print("\n| gateways | MB/s | client CPU-s/GB | × floor | gateways CPU-s/GB | bytes from A / B | MB per batch-get |")
    print("|---|---|---|---|---|---|---|")
    for mode in MODES:
        med = {k: statistics.median(r[k] for r in runs[mode])
               for k in ("mb_s", "client_per_gb", "gateway_per_gb", "share_a", "request_mb")}  # fmt: skip
        print(f"| {LABELS[mode]} | {med['mb_s']:.0f} | {med['client_per_gb']:.2f} "
              f"| {med['client_per_gb'] / floor_cpu:.1f} | {med['gateway_per_gb']:.2f} "
              f"| {med['share_a']:.0%} / {1 - med['share_a']:.0%} | {med['request_mb']:.1f} |")  # fmt: skip
    print(f"\nmedians of {opts.repeats}; load average after {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
