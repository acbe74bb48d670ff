"""CLI: `farfeed bench checkpoint`, checkpoints across the link (docs/BENCHMARKS.md).

farfeed bench checkpoint --rtt-ms 15,100 --size-mb 1024 --bandwidth-mbit 400 --json bench-out/checkpoint.json
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import typer

from farfeed.cli.lists import list_option, numbers, split


def checkpoint_bench(
    rtt_ms: list[str] = list_option(["15", "100"], "--rtt-ms", help="Round-trip times to emulate, milliseconds."),
    size_mb: int = typer.Option(1024, "--size-mb", help="Checkpoint size, MB (10^6 bytes) of float32 tensors (default 1024)."),
    bandwidth_mbit: float = typer.Option(
        400.0, "--bandwidth-mbit", help="Emulated link bandwidth, Mbit/s (scaled to this machine; default 400)."
    ),
    window_kib: int = typer.Option(
        4096, "--window-kib", help="TCP-like window per connection, KiB (default 4096: Linux's send cap)."
    ),
    tensors: int = typer.Option(32, "--tensors", help="Number of tensors the checkpoint is split into."),
    repeats: int = typer.Option(3, "--repeats", help="Save + load rounds per RTT; figures are medians."),
    stall_repeats: int = typer.Option(
        15, "--stall-repeats", help="Saves timed for the stall figure, each paired with a bare copy (default 15)."
    ),
    ceiling_seconds: float = typer.Option(
        3.0, "--ceiling-seconds", help="Seconds the emulator's own ceiling is measured per RTT (default 3)."
    ),
    root: Path | None = typer.Option(
        None, "--root", help="Folder for the gateway's root (default: a temp folder in /dev/shm)."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write every run and the medians to this JSON file."),
) -> None:
    """Upload and download goodput of farfeed.checkpoint through the emulated link (vs its
    bandwidth), the emulator's headroom at each RTT, and the training stall per checkpoint
    (time save() blocks) vs the bare host-memory snapshot time."""
    from farfeed.bench.checkpoint import CheckpointBench, format_report, run_checkpoint_bench

    rtts = numbers(rtt_ms, "--rtt-ms")
    cfg = CheckpointBench(
        rtts_ms=rtts,
        size_mb=size_mb,
        bandwidth_mbit=bandwidth_mbit,
        window_kib=window_kib,
        tensors=tensors,
        repeats=repeats,
        stall_repeats=stall_repeats,
        ceiling_seconds=ceiling_seconds,
        root=root,
    )
    result = run_checkpoint_bench(cfg, say=lambda line: typer.echo(line, err=True))
    typer.echo(format_report(result))
    if json_out is not None:
        result["command"] = (
            f"farfeed bench checkpoint --rtt-ms {','.join(split(rtt_ms))} --size-mb {size_mb} --bandwidth-mbit {bandwidth_mbit:g} "
            f"--window-kib {window_kib} --tensors {tensors} --repeats {repeats} --stall-repeats {stall_repeats} "
            f"--ceiling-seconds {ceiling_seconds:g} --json {json_out}"
        )
        result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1, default=str))


def register(app: typer.Typer) -> None:
    """Add `farfeed bench checkpoint` to the `farfeed bench` app."""
    app.command("checkpoint")(checkpoint_bench)
