"""CLI: `farfeed bench cpu`, throughput and CPU-seconds per GB against the kernel's floor.

farfeed bench cpu --links none,tokyo-fukuoka --repeats 3 --out bench-out/cpu/results.json
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from farfeed.bench.cpu.config import DEFAULT_MODES
from farfeed.cli.lists import list_option, names
from farfeed.wan import PRESETS


def cpu_bench(
    links: list[str] = list_option(
        ["none", "tokyo-fukuoka"],
        "--links",
        "--link",
        help="'none' (loopback straight to the gateway, no emulator) and/or `farfeed wan` in "
        f"front: a preset ({', '.join(PRESETS)}) or an RTT like 5ms (100 Gb/s, 4 MiB window).",
    ),
    modes: list[str] = list_option(
        list(DEFAULT_MODES),
        "--modes",
        help="Client modes: floor, floor-store, \\[batch-]in-process, \\[batch-]workers-N.",
    ),
    size: str | None = typer.Option(
        None,
        "--size",
        help="Dataset size with a unit, e.g. 300MB or 1GiB (default 300MB; 30MB with --quick).",
    ),
    samples: int | None = typer.Option(
        None, "--samples", help="Number of samples instead of --size."
    ),
    sample_bytes: int = typer.Option(
        114_660, "--sample-bytes", help="Bytes per sample (114,660: an ImageNet JPEG, as MLPerf)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Samples per batch."),
    repeats: int | None = typer.Option(
        None,
        "--repeats",
        help="Runs per link and mode, interleaved; figures are medians (default 3; 1 with --quick).",
    ),
    warmup: float = typer.Option(
        0.1, "--warmup", help="Fraction of the last epoch left out before the window opens."
    ),
    epochs: int = typer.Option(
        3,
        "--epochs",
        help="Epochs each loader run reads (one DataLoader, set_epoch between); the window "
        "is in the last one, as in a job that runs many. The in-process arena grows to its "
        "working size over the first two (its pages are faulted in then, once per job).",
    ),
    connections: int = typer.Option(
        4,
        "--floor-connections",
        help="Keep-alive connections of the floor (socket) reader (curl and floor-store use one).",
    ),
    floor_passes: int | None = typer.Option(
        None,
        "--floor-passes",
        help="The floors read every shard this many times, so their windows are long enough to "
        "time (default 3; 1 with --quick).",
    ),
    curl: bool = typer.Option(
        True, "--curl/--no-curl", help="Also a curl floor row (when curl is on PATH)."
    ),
    quick: bool = typer.Option(False, "--quick", help="Smoke test: 30 MB, 1 repeat, 1 floor pass."),
    workdir: Path = typer.Option(
        Path("bench-out/cpu"), "--workdir", help="Folder for the dataset (made once, reused)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="JSON report, and a Markdown table beside it (default WORKDIR/results.json).",
    ),
) -> None:
    """Throughput AND cost: MB/s and CPU-seconds per GB of the client process tree (trainer + DataLoader workers) and of the gateway, for each way of reading a dataset, against two floors measured in the same run.

    Two floors: "floor" reads every body into one reused 1 MiB buffer that stays in the CPU cache, so it never pays for writing the bytes to memory (the kernel's copy alone); "floor-store" is the same reader storing each body in its own place of a warm 256 MiB arena, which any loader must pay at least (each sample needs memory of its own until the training step uses it).

    Loopback, page cache, bytes only (no image decoding), with and without `farfeed wan` in front. Each client run is a fresh process that reads --epochs epochs; its window leaves out the first --warmup of the last epoch (start-up, first batches) and ends when the last sample arrives.

    Modes (rows):
    - floor (socket): a plain Python socket reader GETting whole shards (keep-alive, recv_into one buffer; the gateway answers with sendfile). The kernel's own copy: the bar.
    - floor (curl): curl -s -o /dev/null of every shard in turn (one connection), when curl is on PATH; its window is its transfers' own time, its start-up CPU is taken off.
    - floor (storing): floor-store, the same reader over one connection, each body stored in its own place of a 256 MiB arena written once before the window (no page faults counted): a loader's reused arena.
    - in-process: farfeed.Dataset(decode="raw") iterated in the training process, no DataLoader: a dict of bytes per sample.
    - workers-N: the same through farfeed.loader.DataLoader with N workers and torch's default collate (lists of bytes pickled through the workers' pipes).
    - batch-in-process, batch-workers-N: decode="batch": whole batches as one farfeed.loader.Batch tensor each (from workers: the bytes land in the worker's shared arena; offsets cross, not the bytes).

    Columns:
    - MB/s: bytes delivered in the window / its seconds (sample bytes; shard bytes for the floors).
    - client CPU-s/GB: CPU seconds of the client tree per 10^9 bytes delivered (2.0 = two busy cores per GB/s).
    - gateway CPU-s/GB: the same for the gateway (`farfeed serve`) process.
    - x floor: that figure over the floor (socket) row's, same link, same run.
    - x storing floor: the client's over the floor (storing) row's, same link, run by run (median of the per-repeat ratios).
    - wan CPU-s/GB: the emulator's, neither site's.
    - cores @12.5 GB/s: CPU-s/GB x 12.5, the busy cores that side needs to fill a 100 Gb/s line at this cost.

    Medians of --repeats. The load average before and after is printed under the table: a busy machine inflates CPU-s/GB too.
    """
    from rich.console import Console

    from farfeed.bench.cpu import CpuBenchConfig, rich_table, run_cpu_bench, write_cpu_report
    from farfeed.format.meta import parse_size

    settings: dict[str, Any] = {
        "links": names(links, "--links"),
        "modes": names(modes, "--modes"),
        "samples": samples,
        "sample_bytes": sample_bytes,
        "batch_size": batch_size,
        "warmup": warmup,
        "epochs": epochs,
        "connections": connections,
        "curl": curl,
        "workdir": workdir,
    }
    if size is not None:
        settings["size"] = parse_size(size)
    if repeats is not None:
        settings["repeats"] = repeats
    if floor_passes is not None:
        settings["floor_passes"] = floor_passes
    cfg = CpuBenchConfig.quick_defaults(**settings) if quick else CpuBenchConfig(**settings)
    command = "farfeed " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = run_cpu_bench(cfg, command=command, say=typer.echo)
    console = Console()
    if not console.is_terminal:  # piped or logged: do not squeeze the table into 80 columns
        console = Console(width=max(console.width, 140))
    console.print(rich_table(report))
    path = out if out is not None else workdir / "results.json"
    table = write_cpu_report(report, path)
    typer.echo(f"wrote {path} and {table}")


def register(app: typer.Typer) -> None:
    """Add `farfeed bench cpu` to the `farfeed bench` app."""
    app.command("cpu")(cpu_bench)
