"""CLI: `farfeed bench io`, the loader against an emulated accelerator (docs/BENCHMARKS.md, Loader).

farfeed bench io --rtt-ms 0,15,50,100 --demand 0.9 --scale 0.1 --json bench-out/io.json
farfeed bench io --paths gateway,gateway-s3,s3 --rtt-ms 0,15,100 --no-baseline --overload 0
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import typer

from farfeed.cli.lists import list_option, names, numbers


def io_bench(
    rtt_ms: list[str] = list_option(
        ["0", "15", "50", "100"],
        "--rtt-ms",
        help="Round-trip times to emulate, milliseconds; 0 (the local reference for AU "
        "relative) must be among them.",
    ),
    demand: float = typer.Option(
        0.9, "--demand", help="Accelerator demand as a fraction of the link bandwidth (0-1]."
    ),
    scale: float = typer.Option(
        0.1,
        "--scale",
        help="Shrink the profile's demand (samples per batch) and the link bandwidth together, "
        "to fit this machine: 0.1 = 40 samples per 0.224 s batch = 20.5 MB/s.",
    ),
    profile: str = typer.Option(
        "resnet50",
        "--profile",
        help="Accelerator profile: resnet50 = 114,660-byte samples, batch 400, 0.224 s per "
        "batch (MLPerf Storage, one H100).",
    ),
    batches: int = typer.Option(100, "--batches", help="Batches per trial, warm-up included."),
    warmup: int = typer.Option(20, "--warmup", help="Batches before AU is measured."),
    workers: int = typer.Option(2, "--workers", help="DataLoader workers for farfeed."),
    decode: str = typer.Option(
        "bytes",
        "--decode",
        help="What farfeed hands the training loop: bytes (a dict of bytes per sample, "
        "joined by a collate_fn) or batch (one farfeed.loader.Batch per batch, copy-free).",
    ),
    baseline_workers: int = typer.Option(
        8, "--baseline-workers", help="DataLoader workers for the one-GET-per-sample baseline."
    ),
    baseline: bool = typer.Option(
        True, "--baseline/--no-baseline", help="Also run the baseline at every RTT."
    ),
    memory_budget_mib: int = typer.Option(
        512, "--memory-budget-mib", help="farfeed's memory budget per rank, MiB."
    ),
    window_kib: int = typer.Option(
        4096, "--window-kib", help="Emulated TCP window per connection, KiB (Linux's default cap)."
    ),
    overload: float = typer.Option(
        2.0,
        "--overload",
        help="Demand / link for the saturation rows (delivered bytes/s vs the link); 0 skips them.",
    ),
    overload_rtt_ms: list[str] = list_option(
        ["15", "100"], "--overload-rtt-ms", help="RTTs of the saturation rows, milliseconds."
    ),
    paths: list[str] = list_option(
        ["gateway"],
        "--paths",
        help="Storage paths to compare: gateway (farfeed serve over local disk), gateway-s3 "
        "(farfeed serve s3://... in front of rclone serve s3, a cold cache each trial), s3 (the "
        "loader reading rclone serve s3 directly), s3-blocks (the same with "
        "Dataset(shuffle_block=16): runs of 16 neighbours, one range GET each). The baseline "
        "and the saturation rows run on gateway only.",
    ),
    cache_mib: int = typer.Option(
        1024, "--cache-mib", min=1, help="gateway-s3: the gateway's block cache, MiB."
    ),
    block_mib: float = typer.Option(
        8.0, "--block-mib", min=0.0625, help="gateway-s3: bytes per store read, MiB."
    ),
    repeats: int = typer.Option(
        1, "--repeats", help="Trials per configuration, interleaved; figures are medians."
    ),
    max_seconds: float = typer.Option(
        40.0,
        "--max-seconds",
        help="Stop measuring a trial after this many seconds (slow baselines).",
    ),
    work: Path = typer.Option(
        Path("bench-out/io"), "--work", help="Folder for the synthetic dataset (kept, reused)."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write the rows (a JSON list) to this file."
    ),
) -> None:
    """Feed an emulated accelerator (MLPerf Storage style: fixed compute per batch) from a
    gateway across `farfeed wan` at each RTT; print AU, AU relative to 0 ms, samples/s,
    stall, time to first batch and peak memory, for farfeed and a one-GET-per-sample
    PyTorch DataLoader. With --paths, also the gateway in front of an S3 store and the
    direct S3 path, with store requests per 1,000 samples and CPU-seconds per GB."""
    from farfeed.bench.io.harness import IoBenchConfig, format_table, run_io_bench

    cfg = IoBenchConfig(
        rtts_ms=numbers(rtt_ms, "--rtt-ms"),
        demand=demand,
        scale=scale,
        profile=profile,
        batches=batches,
        warmup=warmup,
        workers=workers,
        decode=decode,
        baseline=baseline,
        baseline_workers=baseline_workers,
        memory_budget=memory_budget_mib * 2**20,
        window=window_kib * 1024,
        overload=overload,
        overload_rtts_ms=numbers(overload_rtt_ms, "--overload-rtt-ms") if overload else (),
        repeats=repeats,
        max_seconds=max_seconds,
        work=work,
        paths=names(paths, "--paths"),
        cache_mib=cache_mib,
        block_mib=block_mib,
    )
    rows = run_io_bench(cfg, say=typer.echo)
    typer.echo(format_table(rows))
    if json_out is not None:
        machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
        for row in rows:
            row["machine"] = machine
            row["profile"], row["scale"] = profile, scale
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rows, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add `farfeed bench io` to the `farfeed bench` app."""
    app.command("io")(io_bench)
