"""`farfeed demo`'s headline rule (a cost is signed only when larger than its noise) on
synthetic runs, and its data-bound job end to end: a real, tiny run through the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from farfeed.bench.train.figures import measurable
from farfeed.bench.train.headline import headline_markdown, stall_cell, wall_cell
from farfeed.bench.train.result import RunResult, StepRecord
from farfeed.bench.train.summary import distance_costs


def run(name: str, steps: list[tuple[float, float]], *, warmup: int = 2) -> RunResult:
    """A RunResult of ``steps`` (wait, compute) seconds, on its own clock, as the loop records."""
    records, clock = [], 0.0
    for k, (wait, compute) in enumerate(steps):
        clock += wait + compute
        records.append(StepRecord(k, clock, wait, compute, 16, 1.0))
    return RunResult(name, records, warmup, 1, "val_accuracy", 0.9, 0.1, 0.0)


def rounds(
    *, extra_wait: float, jitter: float, seed: int
) -> tuple[list[RunResult], list[RunResult]]:
    """Three rounds of 40 steps of near and remote: compute 0.5 s +- ``jitter`` (a busy
    neighbour), near waits 2 ms per step, remote ``extra_wait`` more."""
    rng = random.Random(seed)
    near, remote = [], []
    for _ in range(3):
        near.append(
            run("near", [(0.002, 0.5 * (1 + rng.uniform(-jitter, jitter))) for _ in range(40)])
        )
        remote.append(run("remote", [(0.002 + extra_wait, 0.5 * (1 + rng.uniform(-jitter, jitter)))
                                     for _ in range(40)]))  # fmt: skip
    return near, remote


def test_noise_larger_than_the_effect_says_no_difference_measurable() -> None:
    # the case: +-45 % of load noise, a few ms of extra wait hidden in it
    near, remote = rounds(extra_wait=0.0, jitter=0.45, seed=1)
    result = {"workload": "resnet", **distance_costs(remote, near)}
    assert abs(result["overhead"]) < result["overhead_noise"]  # the numbers behind the rule
    assert result["overhead_noise"] > 0.05
    cell = wall_cell(result)
    assert cell.startswith("no difference measurable at ±") and cell.endswith(" %")
    assert "+" not in cell and "-" not in cell.replace("±", "")
    assert wall_cell(result, short=True).startswith("within ±")
    # no extra wait at all: the stall cost is below its own (small) band too
    assert stall_cell(result).startswith("no difference measurable at ±")


def test_effect_larger_than_the_noise_prints_the_signed_figure() -> None:
    # remote waits 50 ms more per 0.5 s step; the box is quiet (1 % jitter)
    near, remote = rounds(extra_wait=0.05, jitter=0.01, seed=2)
    result = {"workload": "resnet", **distance_costs(remote, near)}
    assert 0.09 < result["overhead"] < 0.11 and result["overhead_noise"] < 0.01
    assert 0.09 < result["overhead_stall"] < 0.11 and 49 < result["stall_ms_per_step"] < 51
    assert wall_cell(result).startswith("+10.")
    assert "±" in wall_cell(result) and "measurable" not in wall_cell(result)
    assert stall_cell(result).startswith("+") and "ms per step" in stall_cell(result)
    table = headline_markdown([{**result, "config": {"steps": 40, "batch_size": 16, "arch": "resnet18",
                                                     "image_size": 64}}])  # fmt: skip
    assert "| resnet18 64 px, 40 steps x 16 | +" in table and "ResNet-50: +4.8 %" in table


@pytest.mark.parametrize(
    ("effect", "noise", "text"),
    [
        (0.053, 0.45, "no difference measurable at ±45 %"),  # the ResNet row
        (-0.011, 0.22, "no difference measurable at ±22 %"),  # its Llama row
        (0.053, 0.012, "+5.3 % ±1.2 %"),
        (-0.0032, 0.0004, "-0.320 % ±0.040 %"),
        (0.0, 0.0, "no difference measurable at ±0.000 %"),
        (0.02, float("nan"), "+2.0 % (noise not measured)"),
        (float("nan"), 0.01, "n/a"),
    ],
)
def test_measurable_formats_the_rule(effect: float, noise: float, text: str) -> None:
    assert measurable(effect, noise) == text


@pytest.mark.slow
def test_demo_data_bound_job_writes_au_per_loader_and_rtt(tmp_path: Path) -> None:
    # a real run, small: the gateway, `farfeed wan` per trial, both loaders in the trial process
    from rich.console import Console

    from farfeed.bench.demo import DemoSpec, run_demo
    from farfeed.bench.io.databound import DataBoundSpec

    out, console = tmp_path / "demo-out", Console(record=True, width=100)
    bound = DataBoundSpec(rtts_ms=(0.0, 100.0), scale=0.02, seconds=0.5, warmup_s=0.5)
    spec = DemoSpec(out=out, jobs=("data-bound",), link="local", bound=bound)
    outcome = run_demo(spec, console=console, progress=False)
    payload = json.loads((out / "results.json").read_text())
    rows = payload["data_bound"]
    assert [r["au"] for r in rows] == [r["au"] for r in outcome.data_bound]
    assert [(r["loader"], r["rtt_ms"]) for r in rows] == [
        ("baseline", 0.0), ("farfeed", 0.0), ("baseline", 100.0), ("farfeed", 100.0)
    ]  # fmt: skip
    for row in rows:
        assert 0 < row["au"] <= 1 and row["samples_per_s"] > 0
        ref = next(r for r in rows if r["loader"] == row["loader"] and r["rtt_ms"] == 0)
        assert row["au_relative"] == pytest.approx(row["au"] / ref["au"])
        assert row["au_relative_noise"] >= 0
    assert [len(r["au_runs"]) for r in rows if r["rtt_ms"] == 0] == [2, 2]  # first and last
    slow = next(r for r in rows if r["loader"] == "baseline" and r["rtt_ms"] == 100)
    assert slow["au_relative"] < 0.6  # one GET per file cannot hide 100 ms: it pays it per sample
    setup = payload["data_bound_setup"]
    assert setup["demand"] == 0.9 and setup["link_mb_s"] > setup["demand_mb_s"] > 0
    load = payload["load"]
    assert load["cpus"] >= 1 and len(load["load_before"]) == 3 and load["others_cores"] >= 0
    report = (out / "report.md").read_text()
    assert "## The hard case: a data-bound job" in report and "Load during the run: " in report
    png = (out / "data-bound-au-vs-rtt.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "](data-bound-au-vs-rtt.png)" in report
    printed = console.export_text()
    assert "[1/1] data-bound done in" in printed and "one GET per file" in printed
