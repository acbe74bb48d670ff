"""`farfeed bench cpu`'s figures: medians per (link, mode), "x floor", cores at 12.5 GB/s, tables.

Every per-GB figure is CPU seconds over the bytes the consumer received in the
steady-state window (GB = 10^9 bytes). "x floor" divides by the plain socket reader's
figure on the same link in the same run (the ratio of the medians). "x storing floor"
divides by the storing floor's (floor-store: each body written to its own place in
memory, as any loader must), run by run (same link, same repeat), and takes the median
of those ratios. The projection multiplies CPU-s/GB by 12.5 (GB/s on a 100 Gb/s line):
busy cores each side would need at line rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median
from typing import Any

from farfeed.bench.cpu.config import CURL, FLOOR, FLOOR_STORE, LINE_RATE

LINE_GB_S = LINE_RATE / 1e9  # 12.5: GB/s on a 100 Gb/s line
LABELS = {FLOOR: "floor (socket)", CURL: "floor (curl)", FLOOR_STORE: "floor (storing)"}
_MEDIANS = ("mb_s", "client_cpu_per_gb", "gateway_cpu_per_gb", "wan_cpu_per_gb",
            "client_cores", "gateway_cores", "window_s", "startup_s")  # fmt: skip


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return median(known) if known else None


def _ratio(value: float | None, ref: float | None) -> float | None:
    return None if value is None or not ref else value / ref


def _x_per_run(
    group: list[dict[str, Any]], refs: dict[int, dict[str, Any]], key: str
) -> float | None:
    """The median over ``group``'s runs of ``run[key]`` / ``key`` of ``refs[run's repeat]``."""
    ratios = []
    for run in group:
        ref = refs.get(run["repeat"])
        ratios.append(_ratio(run[key], ref[key] if ref is not None else None))
    return _median(ratios)


def summarise(
    runs: list[dict[str, Any]], *, links: Sequence[str], modes: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per (link, mode) that ran: medians of its repeats, "x floor", "x storing
    floor" (None without a floor-store run of that link and repeat), projection."""
    rows: list[dict[str, Any]] = []
    for link in links:
        floor: dict[str, Any] | None = None
        storing = {r["repeat"]: r for r in runs if r["link"] == link and r["mode"] == FLOOR_STORE}
        for mode in modes:
            group = [r for r in runs if r["link"] == link and r["mode"] == mode]
            if not group:
                continue
            row: dict[str, Any] = {"link": link, "mode": mode, "label": LABELS.get(mode, mode)}
            row["repeats"] = len(group)
            row["window"] = group[0]["window"]
            row["complete"] = all(r["complete"] for r in group)
            for key in _MEDIANS:
                row[key] = _median([r[key] for r in group])
            for key in ("mb_s", "client_cpu_per_gb", "gateway_cpu_per_gb"):
                row[f"{key}_runs"] = [r[key] for r in group]
            if mode == FLOOR:
                floor = row
            for side in ("client", "gateway"):
                per_gb = row[f"{side}_cpu_per_gb"]
                ref = floor[f"{side}_cpu_per_gb"] if floor is not None else None
                row[f"{side}_x_floor"] = _ratio(per_gb, ref)
                row[f"{side}_x_storing_floor"] = _x_per_run(group, storing, f"{side}_cpu_per_gb")
                row[f"{side}_cores_at_line_rate"] = None if per_gb is None else per_gb * LINE_GB_S
            rows.append(row)
    return rows


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


COLUMNS = ("link", "mode", "MB/s", "client\nCPU-s/GB", "x floor", "x storing\nfloor",
           "gateway\nCPU-s/GB", "x floor",
           "wan\nCPU-s/GB", "cores @12.5 GB/s\nclient", "cores @12.5 GB/s\ngateway")  # fmt: skip


def table_cells(row: dict[str, Any]) -> list[str]:
    """One summary row as the table's cells (see `COLUMNS`)."""
    flag = "" if row["complete"] else " (incomplete)"
    return [
        row["link"],
        row["label"] + flag,
        _num(row["mb_s"], 0),
        _num(row["client_cpu_per_gb"]),
        _x(row["client_x_floor"]),
        _x(row.get("client_x_storing_floor")),
        _num(row["gateway_cpu_per_gb"]),
        _x(row["gateway_x_floor"]),
        _num(row["wan_cpu_per_gb"]),
        _num(row["client_cores_at_line_rate"], 1),
        _num(row["gateway_cores_at_line_rate"], 1),
    ]


def caption(report: dict[str, Any]) -> str:
    """The lines under the table: medians of what, the data, the machine and its load."""
    m, d, c = report["machine"], report["dataset"], report["config"]
    before = "/".join(f"{x:.2f}" for x in m["loadavg_before"])
    after = "/".join(f"{x:.2f}" for x in m["loadavg_after"])
    return (
        f"medians of {c['repeats']}; {d['samples']:,} samples x {d['sample_bytes']:,} B "
        f"({d['bytes'] / 1e6:.0f} MB, {len(d['shards'])} shards, page cache), batch "
        f"{c['batch_size']}, {c.get('epochs', 1)} epoch(s) per run, window after the first {c['warmup']:.0%} of "
        f"the last, the floors "
        f"read the shards {c['floor_passes']}x; "
        f"{m['cpus']} CPUs, load average {before} before, {after} after"
    )


def rich_table(report: dict[str, Any]) -> Any:
    """The summary as a rich Table (printed by the CLI)."""
    from rich.table import Table

    table = Table(
        title="farfeed bench cpu: throughput and CPU-seconds per GB", caption=caption(report)
    )
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i < 2 else "right")
    rows = report["rows"]
    for i, row in enumerate(rows):
        last_of_link = i + 1 == len(rows) or rows[i + 1]["link"] != row["link"]
        table.add_row(*table_cells(row), end_section=last_of_link)
    return table


def cpu_markdown_table(report: dict[str, Any]) -> str:
    """The summary as Markdown (for docs/BENCHMARKS.md), with its caption and command."""
    names = [name.replace("\n", " ") for name in COLUMNS]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in report["rows"]]
    return "\n".join([f"`{report['command']}`", "", *lines, "", caption(report), ""])
