"""CLI: `farfeed bench wan`, the emulator's own ceiling (docs/BENCHMARKS.md, WAN emulator).

farfeed bench wan --rtt-ms 0,15 --connections 1,16 --seconds 5 --repeats 3 --json bench-out/wan.json
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import typer

from farfeed.cli.lists import list_option, numbers, split
from farfeed.errors import ConfigError


def wan_bench(
    rtt_ms: list[str] = list_option(
        ["0", "15"], "--rtt-ms", help="Round-trip times to emulate, milliseconds."
    ),
    connections: list[str] = list_option(["1", "16"], "--connections", help="Parallel connections."),
    seconds: float = typer.Option(
        5.0, "--seconds", help="Seconds measured per run (after 1 s of warm-up)."
    ),
    repeats: int = typer.Option(
        3, "--repeats", help="Runs per configuration; figures are medians."
    ),
    window_mib: int = typer.Option(
        64, "--window-mib", help="Window per connection, MiB: large, so the emulator is the limit."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write every run and the medians to this JSON file."
    ),
) -> None:
    """Measure what the emulator carries (no bandwidth cap, large window) and its CPU
    seconds per GB, against the same load without it ("direct")."""
    from farfeed.bench.wan import format_ceilings, measure_ceilings

    rtts: list[float | None] = [None] + [ms / 1000 for ms in numbers(rtt_ms, "--rtt-ms")]
    conns = list(numbers(connections, "--connections", int, minimum=1))
    if repeats < 1 or seconds <= 0 or window_mib < 1:
        raise ConfigError(
            f"need connections >= 1, --repeats >= 1, --seconds > 0, --window-mib >= 1; got "
            f"{connections!r}, {repeats!r}, {seconds!r}, {window_mib!r}"
        )
    results = measure_ceilings(
        rtts=rtts, connections=conns, seconds=seconds, repeats=repeats, window=window_mib << 20
    )
    typer.echo(format_ceilings(results, repeats=repeats))
    if json_out is not None:
        report = {
            "command": (
                f"farfeed bench wan --rtt-ms {','.join(split(rtt_ms))} --connections {','.join(split(connections))} --seconds {seconds:g} "
                f"--repeats {repeats} --window-mib {window_mib} --json {json_out}"
            ),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "results": results,
        }
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add `farfeed bench wan` to the `farfeed bench` app."""
    app.command("wan")(wan_bench)
