"""The demo's report: the headline (what the distance cost each job, measured where it acts),
the data-bound job's table, and the machine's load, in Markdown (report.md) and for the
terminal. The training jobs' PoC-shaped tables follow them (`farfeed.bench.train.report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from farfeed.bench.demo.load import describe
from farfeed.bench.train.figures import measurable
from farfeed.bench.train.headline import (
    HEADER,
    headline_markdown,
    poc_cell,
    stall_cell,
    wall_cell,
)
from farfeed.bench.train.report import job_name

#: File name of the data-bound job's plot.
AU_PLOT = "data-bound-au-vs-rtt.png"

HOW_HEADLINE = (
    "Per training job, **cost from stalls** first: remote's extra wait for data over near's "
    "(near: the same gateway and emulator at 0 ms), step by step, over near's time: what the "
    "distance does to the training loop. Then the **wall time** remote/near - 1 with its "
    "noise band, what a stopwatch sees (a neighbour's load included). A cost is shown with a "
    "sign only when it is larger than its noise band (the larger of twice the standard error "
    "of the paired per-step differences and half the range of the per-round figures); "
    'otherwise the cell says "no difference measurable at ±X %".'
)


def _rtts(rows: Sequence[dict[str, Any]]) -> list[float]:
    return sorted({r["rtt_ms"] for r in rows})


def _cell(rows: Sequence[dict[str, Any]], loader: str, rtt: float, *, short: bool = False) -> str:
    """AU, and at RTT > 0 its change vs 0 ms, signed only when larger than its noise."""
    row = next((r for r in rows if r["loader"] == loader and r["rtt_ms"] == rtt), None)
    if row is None:
        return "-"
    if rtt == 0:
        return f"{row['au']:.3f}"
    change = measurable(
        row["au_relative"] - 1, row.get("au_relative_noise", float("nan")), short=short
    )
    return f"{row['au']:.3f}: {change}"


def bound_loaders(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Loaders in the rows, baseline first."""
    return sorted({r["loader"] for r in rows}, key=lambda name: name != "baseline")


def loader_name(loader: str, setup: dict[str, Any]) -> str:
    """What each loader is, in a few words."""
    workers = setup.get("workers", "?")
    if loader == "baseline":
        return f"one GET per file (ImageFolder over HTTP, torch DataLoader, {workers} workers)"
    return f"farfeed (Dataset + DataLoader, {workers} workers)"


def bound_markdown(rows: Sequence[dict[str, Any]], setup: dict[str, Any]) -> str:
    """The data-bound job in one table: AU (and AU relative to 0 ms) per loader and RTT."""
    rtts = _rtts(rows)
    head = ["loader"] + [f"AU at {r:g} ms" + (": change vs 0 ms" if r else "") for r in rtts]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for loader in bound_loaders(rows):
        cells = [loader_name(loader, setup)] + [_cell(rows, loader, r) for r in rtts]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bound_detail(rows: Sequence[dict[str, Any]]) -> str:
    """Every figure of every trial."""
    lines = [
        "| loader | RTT ms | AU (±band) | AU rel. (±band) | samples/s | MB/s | link used | stall s "
        "| measured s (batches) | 1st batch s | cores loader/gateway/wan |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['loader']} | {r['rtt_ms']:g} | {r['au']:.3f} ±{r['au_noise']:.3f} "
            f"| {r['au_relative']:.3f} ±{r['au_relative_noise']:.3f} "
            f"| {r['samples_per_s']:.0f} | {r['mb_per_s']:.1f} | {r['link_utilisation']:.2f} "
            f"| {r['stall_s']:.2f} | {r['measured_s']:.1f} ({r['measured_batches']}) "
            f"| {r['first_batch_s']:.2f} "
            f"| {r['loader_cores']:.2f}/{r['gateway_cores']:.2f}/{r['wan_cores']:.2f} |"
        )
    return "\n".join(lines)


def how_bound(setup: dict[str, Any]) -> str:
    """How the data-bound job was measured, with its numbers."""
    return (
        f"An emulated accelerator (MLPerf Storage style: a fixed {setup['compute_s']} s of "
        f"compute per batch of {setup['batch_size']}, MLPerf Storage's ResNet-50 on one H100 "
        f"x {setup['scale']:g}) needs {setup['demand_mb_s']:.1f} MB/s of real JPEGs "
        f"(~{setup['sample_bytes'] / 1000:.0f} KB each), {setup['demand']:g} of a "
        f"{setup['link_mb_s']:.1f} MB/s link emulated by `farfeed wan` at each RTT. Each "
        f"loader decodes as training does (JPEG -> RandomResizedCrop {setup['image_size']} px, "
        f"flip, normalise) in {setup['workers']} DataLoader workers. AU = compute time / wall "
        f"time over {setup['seconds']:g} s (at least 5 batches) after a warm-up of "
        f"{setup['warmup_s']:g} s; AU rel. = AU / the same loader's AU at 0 ms. One trial per "
        "loader and RTT, baseline and farfeed in turn, in one trial process (torch imported "
        "once; a trial's DataLoader workers are its own). A trial's band "
        "is twice the standard error of its intervals between batches, relative; a change vs "
        "0 ms is signed only when larger than the two trials' bands together. For comparison, "
        "the PoC's Phase 1 (latency only, emulated at 15 ms) lost about 12 % of its score."
    )


def head_blocks(
    results: Sequence[dict[str, Any]],
    bound: Sequence[dict[str, Any]],
    setup: dict[str, Any] | None,
    load: dict[str, Any],
) -> list[str]:
    """The Markdown blocks report.md starts with: load, headline, the data-bound job."""
    blocks = [f"Load during the run: {describe(load)}."]
    if results:
        blocks += ["## Headline: what the distance cost", headline_markdown(results), HOW_HEADLINE]
    if bound and setup is not None:
        blocks += [
            "## The hard case: a data-bound job (the PoC's ResNet-50 data demand, scaled)",
            bound_markdown(bound, setup),
            how_bound(setup),
            f"![AU vs RTT]({AU_PLOT})",
            bound_detail(bound),
        ]
    return blocks


def console_headline(
    results: Sequence[dict[str, Any]],
    bound: Sequence[dict[str, Any]],
    setup: dict[str, Any] | None,
    load: dict[str, Any],
    *,
    title: str,
) -> Any:
    """The headline and the data-bound table for the terminal (rich)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    if results:
        table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1))
        for name in ("job", "cost from stalls (per step)", "wall time remote/near - 1", "PoC"):
            table.add_column(name, overflow="fold")
        for result in results:
            table.add_row(job_name(result), stall_cell(result), wall_cell(result), poc_cell(result))
        table.caption = HEADER[1] + "; each signed only when larger than its noise band"
        parts.append(table)
    if bound and setup is not None:
        table = Table(
            title=f"data-bound: AU at {setup['demand']:g} of a {setup['link_mb_s']:.1f} MB/s link",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        loaders = bound_loaders(bound)
        table.add_column("RTT", no_wrap=True)
        for loader in loaders:  # one column per loader: as many RTTs as asked still fit
            table.add_column("one GET per file" if loader == "baseline" else loader, no_wrap=True)
        for rtt in _rtts(bound):
            table.add_row(
                f"{rtt:g} ms", *(_cell(bound, loader, rtt, short=True) for loader in loaders)
            )
        table.caption = "AU: change = AU / the same loader's AU at 0 ms - 1"
        parts.append(table)
    parts.append(Text(f"load: {describe(load)}", style="dim"))
    return Group(*parts)
