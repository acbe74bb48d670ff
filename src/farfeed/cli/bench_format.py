"""CLI: `farfeed bench format`, pack throughput and index load time (docs/BENCHMARKS.md, Format).

farfeed bench format --samples 1281167 --pack-images 2000 --json bench-out/format.json
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import typer


def format_bench(
    samples: int = typer.Option(
        1_281_167,
        "--samples",
        help="Samples in the synthetic index whose load is timed (ImageNet train: 1,281,167; 2 members each, 1,000 shards).",
    ),
    pack_images: int = typer.Option(
        2000,
        "--pack-images",
        help="Sample JPEGs (~110 KB each) to make and pack; pack MB/s is the median of 3 packs.",
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the figures (and the command line) to this JSON file."
    ),
    work_dir: Path | None = typer.Option(
        None,
        "--work-dir",
        help="Scratch folder to keep (default: a temp folder, removed at the end).",
    ),
) -> None:
    """Measure pack throughput (MB/s of shards written) and index load time (median of 5)."""
    from farfeed.bench.format.harness import format_bench_summary, run_format_bench
    from farfeed.errors import ConfigError

    if samples <= 0 or pack_images <= 0:
        raise ConfigError(
            f"--samples and --pack-images must be positive, got {samples!r}, {pack_images!r}"
        )
    result = run_format_bench(samples=samples, pack_images_count=pack_images, work_dir=work_dir)
    typer.echo(format_bench_summary(result))
    if json_out is not None:
        result["command"] = (
            f"farfeed bench format --samples {samples} --pack-images {pack_images} --json {json_out}"
        )
        result["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add `farfeed bench format` to the `farfeed bench` app."""
    app.command("format")(format_bench)
