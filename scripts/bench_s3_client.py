"""CPU of the direct S3 read path, against ``rclone serve s3``, and the gateway in the same run.

    .venv/bin/python scripts/bench_s3_client.py --samples 3000 --sample-bytes 115000

Packs (or reuses) a dataset of fixed-size random samples in ``--work``/bucket/ds, serves
that folder with ``rclone serve s3`` and with ``farfeed serve``, and reads the dataset
in-process with ``farfeed.Dataset(decode="raw")``: ``--epochs`` epochs over S3, then the
same over the gateway. The first epoch of each warms up (connections, page cache, first
touch) and is left out; the figures are the later epochs': CPU seconds of this process
and of the server process per GB delivered, and CPU milliseconds per S3 range GET (GETs
counted at `S3Store.read`, after coalescing). To compare S3 clients, run it from another
checkout's ``src`` (``PYTHONPATH=OLD/src``): the script uses whichever farfeed it imports.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from farfeed.bench.cpu.procstat import snapshot, tree_delta
from farfeed.bench.io import data as data_module
from farfeed.bench.io.data import make_fixed_size_dataset
from farfeed.loader import Dataset
from farfeed.store.s3 import S3Store
from farfeed.store.testing import serve_s3


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _epochs(
    url: str, epochs: int, server_pid: int, options: dict[str, Any], shuffle_block: int = 1
) -> dict[str, Any]:
    """Read ``epochs`` epochs of ``url``; the figures of all but the first."""
    calls = [0]
    # the method every GET goes through: today's `_range_get`; `read` in older checkouts
    name = "_range_get" if hasattr(S3Store, "_range_get") else "read"
    original = getattr(S3Store, name)

    async def counted(self: S3Store, *args: Any) -> Any:
        calls[0] += 1
        return await original(self, *args)

    setattr(S3Store, name, counted)
    try:
        block = {"shuffle_block": shuffle_block} if shuffle_block != 1 else {}  # older checkouts
        ds = Dataset(url, decode="raw", seed=0, store_options=options, **block)
        first_sample = None
        measured = {"bytes": 0, "samples": 0}
        for epoch in range(epochs):
            ds.set_epoch(epoch)
            if epoch == 1 or epochs == 1:
                t0, cpu0, srv0, calls0 = time.monotonic(), _self_cpu(), snapshot([server_pid]), calls[0]
            t_epoch = time.monotonic()
            for sample in ds:
                if first_sample is None:
                    first_sample = time.monotonic() - t_epoch
                if epoch >= 1 or epochs == 1:
                    measured["bytes"] += len(sample["bin"])
                    measured["samples"] += 1
        wall, cpu, srv = time.monotonic() - t0, _self_cpu() - cpu0, snapshot([server_pid])
        gets = calls[0] - calls0
    finally:
        setattr(S3Store, name, original)
    gb = measured["bytes"] / 1e9
    server_cpu = tree_delta(srv0, srv)
    return {
        "samples": measured["samples"],
        "MB": round(measured["bytes"] / 1e6, 1),
        "wall_s": round(wall, 2),
        "first_sample_s_epoch0": round(first_sample or 0.0, 3),
        "client_cpu_s": round(cpu, 2),
        "client_cpu_s_per_gb": round(cpu / gb, 2),
        "server_cpu_s_per_gb": round(server_cpu / gb, 2),
        "s3_gets": gets,
        "client_cpu_ms_per_get": round(cpu * 1000 / gets, 3) if gets else None,
        "server_cpu_ms_per_get": round(server_cpu * 1000 / gets, 3) if gets else None,
    }


def _first_batch(root: Path, workers: int, rtt_ms: float | None, batch: int) -> dict[str, Any]:
    """Seconds to the first batch of a `DataLoader` with ``workers`` processes over S3, on
    a fresh ``rclone serve s3`` (nothing touched yet), behind ``farfeed wan`` at
    ``rtt_ms`` when given; and the CPU rclone spent until then."""
    from contextlib import ExitStack

    from farfeed.loader import DataLoader
    from farfeed.wan import Link, WanProcess

    with ExitStack() as stack:
        s3 = stack.enter_context(serve_s3(root))
        pid = _child("rclone")
        options = s3.store_options()
        if rtt_ms is not None:
            host, port = s3.endpoint_url.split("//")[1].split(":")
            link = Link(rtt=rtt_ms / 1000, bandwidth=12.5e9)
            wan = stack.enter_context(WanProcess.start(upstream=(host, int(port)), link=link))
            options["s3_endpoint_url"] = wan.url
        ds = Dataset("s3://bucket/ds", decode="raw", seed=0, batch_size=batch,
                     store_options=options)  # fmt: skip
        loader = DataLoader(ds, batch_size=batch, num_workers=workers)
        srv0, t0 = snapshot([pid]), time.monotonic()
        it = iter(loader)
        next(it)
        first = time.monotonic() - t0
        srv_first = tree_delta(srv0, snapshot([pid]))
        for _ in it:
            pass
        epoch = time.monotonic() - t0
        return {
            "workers": workers,
            "rtt_ms": rtt_ms,
            "first_batch_s": round(first, 3),
            "rclone_cpu_s_to_first_batch": round(srv_first, 2),
            "epoch_s": round(epoch, 2),
            "rclone_cpu_s_epoch": round(tree_delta(srv0, snapshot([pid])), 2),
        }


def _child(name: str) -> int:
    """The pid of this process's child whose command line starts with ``name``'s binary."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            if Path(argv0.decode()).name == name:
                return int(pid)
    raise RuntimeError(f"no child process {name!r} found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--sample-bytes", type=int, default=115_000)
    parser.add_argument("--epochs", type=int, default=2, help="the first one is warm-up")
    parser.add_argument("--work", type=Path, default=Path("/tmp/farfeed-bench-s3"))
    parser.add_argument("--no-gateway", action="store_true", help="skip the gateway row")
    parser.add_argument(
        "--first-batch", type=int, metavar="WORKERS", default=None,
        help="instead: time to the first batch with WORKERS DataLoader workers (fresh rclone)",
    )  # fmt: skip
    parser.add_argument("--rtt-ms", type=float, default=None, help="with --first-batch: "
                        "put farfeed wan at this round trip in front of rclone")  # fmt: skip
    parser.add_argument("--shuffle-block", type=int, default=1, help="Dataset(shuffle_block=): "
                        "shuffle runs of this many neighbours (1: single samples)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--shard-mb", type=int, default=64, help="shard size when packing")
    args = parser.parse_args()
    from farfeed.server.process import GatewayProcess

    root = args.work / "root"
    data_module.SHARD_BYTES = args.shard_mb * 2**20
    make_fixed_size_dataset(root / "bucket" / "ds", samples=args.samples,
                            sample_bytes=args.sample_bytes)  # fmt: skip
    for shard in (root / "bucket" / "ds").rglob("*"):
        if shard.is_file():
            shard.read_bytes()  # into the page cache: the servers' disk reads are not measured
    import farfeed

    report: dict[str, Any] = {
        "farfeed": str(Path(farfeed.__file__).parent),
        "loadavg_before": os.getloadavg(),
    }
    if args.first_batch is not None:
        report["first_batch"] = _first_batch(root, args.first_batch, args.rtt_ms, args.batch)
        report["loadavg_after"] = os.getloadavg()
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    with serve_s3(root) as s3:
        pid = _child("rclone")
        report["s3"] = _epochs(
            "s3://bucket/ds", args.epochs, pid, s3.store_options(), args.shuffle_block
        )
    if not args.no_gateway:
        with GatewayProcess.start(root / "bucket") as gateway:
            assert gateway.pid is not None
            report["gateway"] = _epochs(f"{gateway.url}/ds", args.epochs, gateway.pid, {})
    report["loadavg_after"] = os.getloadavg()
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
