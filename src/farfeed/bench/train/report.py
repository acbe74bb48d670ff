"""The PoC-shaped table: this machine's local / near / remote beside the PoC's own numbers.

`markdown_report` writes report.md (the table, how it was measured, the plots);
`console_table` is the same table for the terminal (rich).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from farfeed.bench.train.figures import measurable, pct, seconds
from farfeed.bench.train.sites import LOCAL, NEAR, REMOTE


@dataclass(frozen=True, slots=True)
class PocRow:
    """One row of the proof of concept's published table (Tokyo storage, Fukuoka GPUs, 1,000 km)."""

    job: str
    short: str
    local_min: float
    remote_min: float

    @property
    def overhead(self) -> float:
        """remote / local - 1."""
        return self.remote_min / self.local_min - 1


#: The PoC's figures, keyed by our workload name.
POC: dict[str, PocRow] = {
    "llm": PocRow("Llama-2-70B LoRA fine-tuning", "Llama-2-70B LoRA", 24.87, 24.99),
    "resnet": PocRow("ResNet-50 image classification", "ResNet-50", 13.72, 14.38),
}


def job_name(result: dict[str, Any]) -> str:
    """What was trained, in one short phrase (model, size, steps x batch)."""
    cfg, detail = result["config"], result.get("workload_detail", {})
    ranks = result.get("nproc", 1)
    batch = result.get("batch_size") or cfg["batch_size"]
    shape = f"{cfg['steps']} steps x {batch}" + (f" x {ranks} ranks" if ranks > 1 else "")
    if result["workload"] == "resnet":
        return f"{detail.get('arch', cfg['arch'])} {cfg['image_size']} px, {shape}"
    lora = " LoRA" if cfg.get("lora_base") else ""
    return f"Llama {cfg['model_size']}{lora} seq {cfg['seq_len']}, {shape}"


def learned(result: dict[str, Any]) -> str:
    """Did the model learn (proof the right data arrived)? e.g. ``val acc 97 % (chance 10 %)``."""
    r = result[REMOTE]
    if r["metric_name"] == "val_accuracy":
        return f"val acc {pct(r['final_metric'], signed=False)} (chance {pct(r['chance'], signed=False)})"
    return f"val loss {r['final_metric']:.2f} nats (start {r['first_loss']:.2f}, chance {r['chance']:.2f})"


def stalls(result: dict[str, Any]) -> str:
    """Data-stall fractions local / near / remote."""
    return " / ".join(pct(result[p]["stall_fraction"], signed=False) for p in (LOCAL, NEAR, REMOTE))


SCHEDULE_NOTE = {
    "lockstep": "Schedule lockstep: in each round the placements train in one process, one "
    "step of each in turn, each with its own model, random stream and loader streaming in "
    "the background at its own pace; a placement's time is the sum of its own steps (wait for "
    "the batch + compute), so a neighbour's load on this shared machine hits all alike. ",
    "sequential": "Schedule sequential: the placements run one after another, the order "
    "rotated each round. ",
}

HEADER = (
    "job", "local", "near (0 ms)", "remote", "cost of distance",
    "remote/local-1", "data stall L/N/R", "cost from stalls", "learned",
)  # fmt: skip


def table_rows(results: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Per workload: the PoC's row, then this run's medians (cost of distance = remote/near-1)."""
    rows = []
    for result in results:
        poc = POC.get(result["workload"])
        if poc is not None:
            rows.append(
                [
                    f"PoC: {poc.job} (8 GPUs, 1,000 km)",
                    f"{poc.local_min:.2f} min",
                    "-",
                    f"{poc.remote_min:.2f} min",
                    pct(poc.overhead),
                    pct(poc.overhead),
                    "-",
                    "-",
                    "-",
                ]
            )
        rows.append(
            [
                f"farfeed here: {job_name(result)}",
                seconds(result[LOCAL]["seconds"]),
                seconds(result[NEAR]["seconds"]),
                f"{seconds(result[REMOTE]['seconds'])} ({result['rtt_ms']:g} ms)",
                _cost(result, "overhead"),
                _cost(result, "overhead_vs_local"),
                stalls(result),
                _cost(result, "overhead_stall"),
                learned(result),
            ]
        )
    return rows


def _cost(result: dict[str, Any], key: str, *, short: bool = False) -> str:
    """``result[key]`` qualified by its noise band ``result[key + "_noise"]`` (`measurable`)."""
    return measurable(result[key], result.get(f"{key}_noise", float("nan")), short=short)


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """The table as GitHub Markdown."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines)


def short_learned(result: dict[str, Any]) -> str:
    """`learned` in a few characters for the terminal: ``val acc 97% (chance 10%)``."""
    r = result[REMOTE]
    if r["metric_name"] == "val_accuracy":
        return f"val acc {r['final_metric']:.0%} (chance {r['chance']:.0%})"
    return f"loss {r['first_loss']:.2f} -> val {r['final_metric']:.2f} nats"


def console_table(results: Sequence[dict[str, Any]], *, title: str) -> Any:
    """The same figures for an 80-column terminal: the PoC-shaped table, then what was learned."""
    from rich import box
    from rich.console import Group
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1))
    for name in ("job", "local", "near 0ms", "remote"):
        table.add_column(name, no_wrap=True)
    for name in ("cost", "vs local"):  # "within ±9.2 % noise" folds; the times stay whole
        table.add_column(name, overflow="fold")
    learned_table = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    for name in ("job", "data stall L/N/R", "cost from stalls", "noise", "learned", "same losses"):
        learned_table.add_column(name, overflow="fold")
    for result in results:
        poc = POC.get(result["workload"])
        if poc is not None:
            pocs = (f"{poc.local_min:.2f} min", "", f"{poc.remote_min:.2f} min")
            table.add_row(
                f"PoC {poc.short}", *pocs, pct(poc.overhead), pct(poc.overhead), style="dim"
            )
        cfg = result["config"]
        model = cfg["arch"] if result["workload"] == "resnet" else f"Llama {cfg['model_size']}"
        table.add_row(
            f"farfeed {model}",
            *(seconds(result[p]["seconds"]) for p in (LOCAL, NEAR, REMOTE)),
            _cost(result, "overhead", short=True),
            _cost(result, "overhead_vs_local", short=True),
            end_section=True,
        )
        same = "yes" if result.get("identical_training") else "no"
        learned_table.add_row(
            f"farfeed {model}",
            stalls(result),
            _cost(result, "overhead_stall", short=True),
            pct(result["noise"], signed=False),
            short_learned(result),
            same,
        )
    table.caption = (
        "cost = remote/near - 1 (the distance alone), vs local = remote/local - 1; "
        "cost from stalls = extra data wait remote vs near / near time; each signed only "
        "when larger than its noise band; noise = spread of one placement's times over rounds"
    )
    return Group(table, learned_table)


def markdown_report(
    results: Sequence[dict[str, Any]],
    *,
    title: str,
    command: str,
    plots: Sequence[str],
    machine: str,
    head: Sequence[str] = (),
) -> str:
    """report.md: the table, what each column means, how it was run, and the plots.
    ``head``: Markdown blocks placed before the table (the demo's headline)."""
    first = results[0] if results else {}
    parts = [f"# {title}", "", f"Command: `{command}`", "", f"Machine: {machine}.", ""]
    for block in head:
        parts += [block, ""]
    if results:
        if head:
            parts += ["## The training jobs, in the PoC's shape", ""]
        parts += [
            f"Link: {first.get('link', '?')} ({first.get('link_detail', '')}).",
            "",
            markdown_table(results),
            "",
            *column_notes(first),
            "",
        ]
    for result in results:
        parts += [f"## {job_name(result)}", "", _detail_table(result), ""]
    if plots:
        parts += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(parts)


def column_notes(first: dict[str, Any]) -> list[str]:
    """What the training table's columns mean and how they were measured."""
    return [
        "- **local**: the dataset folder on this machine; **near**: the same files through "
        "`farfeed serve` and `farfeed wan` at 0 ms (the whole path without the distance); "
        "**remote**: through the emulated link.",
        "- Times are the timed steps (warm-up excluded), median over "
        f"{first.get('rounds', '?')} rounds; the cost of distance is the median of the "
        "per-round ratios remote/near - 1 (what the PoC's latency emulation measured). "
        + SCHEDULE_NOTE.get(first.get("schedule", ""), "")
        + "On one small machine the storage site's processes compete with training for CPU, so "
        "remote/local - 1 is shown apart.",
        "- Data stall: time the training loop waited for its next batch / timed wall time. "
        "Cost from stalls: (remote's data wait - near's) / near's time, median of paired "
        "rounds: the distance's cost measured where it acts, robust to a neighbour's CPU load.",
        "- Every cost is printed with a sign only when it is larger than its noise band: the "
        "larger of twice the standard error of the paired per-step differences (the same step "
        "trains the same samples everywhere) and half the range of the per-round figures; "
        'otherwise the cell says "no difference measurable at ±X %".',
        "- The PoC ran 8 GPUs on real data; these are small CPU jobs: compare the ratios, "
        "not the times.",
    ]


def _detail_table(result: dict[str, Any]) -> str:
    load = result.get("load_average")
    note = ""
    if load:
        note = (
            f"Machine load (1-min average) {load[0]:.1f} before, {load[1]:.1f} after; "
            f"spread of one placement's times over rounds (noise): {pct(result['noise'], signed=False)}; "
            f"cost from stalls: {_cost(result, 'overhead_stall')}; "
            f"same losses in every run: {'yes' if result.get('identical_training') else 'no'}.\n\n"
        )
    return note + _placements_table(result)


def _placements_table(result: dict[str, Any]) -> str:
    names = [n for n in result if isinstance(result[n], dict) and "seconds" in result[n]]
    lines = [
        "| placement | seconds | samples/s | data stall | startup s | first loss | final loss | metric |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        p = result[n]
        lines.append(
            f"| {n} | {p['seconds']:.2f} | {p['samples_per_s']:.1f} | {pct(p['stall_fraction'], signed=False)} "
            f"| {p['startup_seconds']:.2f} | {p['first_loss']:.3f} | {p['final_loss']:.3f} "
            f"| {p['metric_name']} {p['final_metric']:.3f} |"
        )
    return "\n".join(lines)


def machine_summary() -> str:
    """This machine in one line (cores, accelerator, torch), for the report header."""
    import os
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores, {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def write_report(
    results: Sequence[dict[str, Any]],
    out: Any,
    *,
    title: str,
    command: str,
    extra: dict[str, Any] | None = None,
    head: Sequence[str] = (),
) -> Any:
    """Write ``out/report.md``, ``out/results.json`` and the PNG plots; returns report.md's
    path. ``extra``: more keys for results.json; ``head``: Markdown blocks before the table."""
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        from farfeed.bench.train.plots import plot_all

        names = [p.name for p in plot_all(results, out)]
    except ImportError:  # matplotlib is optional (`farfeed[bench]`); the tables still come out
        names = []
    machine = machine_summary()
    report = out / "report.md"
    report.write_text(
        markdown_report(
            results, title=title, command=command, plots=names, machine=machine, head=head
        )
    )
    payload = {"title": title, "command": command, "machine": machine, "results": list(results)}
    payload.update(extra or {})
    (out / "results.json").write_text(json.dumps(payload, indent=1, allow_nan=True))
    return report
