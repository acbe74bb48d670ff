"""`farfeed demo` and `farfeed bench train` end to end, at the smallest scale, as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from farfeed.bench.train.plots import loss_figure, overhead_figure, throughput_figure

PLACEMENT_FIELDS = ("seconds", "samples_per_s", "stall_fraction", "final_metric")


def farfeed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farfeed", *args], cwd=cwd, capture_output=True, text=True, timeout=240
    )


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    done = farfeed(
        "demo", "--out", str(out), "--images", "40", "--resnet-steps", "4", "--llm-steps", "4",
        "--rounds", "1", "--image-size", "32", "--no-checkpoints", "--no-progress",
        "--only", "resnet,llm",  # the data-bound job: tests/bench/test_demo.py
        cwd=out.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def test_demo_prints_the_poc_table_and_writes_the_report(demo: tuple[Path, str]) -> None:
    out, stdout = demo
    for text in ("PoC ResNet-50", "13.72 min", "PoC Llama-2-70B LoRA", "24.99 min", "farfeed resnet18"):
        assert text in stdout
    report = (out / "report.md").read_text()
    assert "| PoC: ResNet-50 image classification" in report and "+0.5 %" in report
    results = json.loads((out / "results.json").read_text())["results"]
    assert [r["workload"] for r in results] == ["resnet", "llm"]
    for r in results:
        assert r["link"] == "tokyo-fukuoka" and r["rtt_ms"] == 15.0
        for placement in ("local", "near", "remote"):
            assert all(isinstance(r[placement][k], float) for k in PLACEMENT_FIELDS)
        assert isinstance(r["overhead"], float) and isinstance(r["overhead_vs_local"], float)
        assert r["identical_training"] is True  # same bytes arrived in every placement
    llm = results[1]
    assert llm["remote"]["final_loss"] < llm["remote"]["first_loss"]  # it learns, even in 4 steps
    for name in ("throughput-resnet.png", "loss-llm.png", "overhead-vs-rtt.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert f"]({name})" in report


def _labelled(fig: Any) -> None:
    (ax,) = fig.axes
    assert "(" in ax.get_xlabel() and "(" in ax.get_ylabel(), "axis labels need units"
    assert ax.get_title() and ax.get_legend() is not None
    assert any(len(line.get_xdata()) for line in ax.get_lines())


def test_plots_have_labelled_axes_with_units(demo: tuple[Path, str]) -> None:
    results = json.loads((demo[0] / "results.json").read_text())["results"]
    for r in results:
        _labelled(throughput_figure(r))
        _labelled(loss_figure(r))
    _labelled(overhead_figure(results))


def test_bench_train_sweeps_rtts_and_writes_json(demo: tuple[Path, str], tmp_path: Path) -> None:
    text = demo[0] / "storage" / "sample-text"
    done = farfeed(
        "bench", "train", "--workload", "llm", "--data", str(text), "--steps", "3", "--warmup-steps", "1",
        "--rounds", "1", "--rtt-ms", "15", "--rtt-ms", "40", "--no-checkpoints", "--no-progress",
        "--out", str(tmp_path / "out"), "--json", str(tmp_path / "llm.json"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "llm.json").read_text())
    assert result["workload"] == "llm" and result["link"] == "rtt-15ms" and result["rtt_ms"] == 15.0
    assert [p["rtt_ms"] for p in result["sweep"]] == [0.0, 15.0, 40.0]
    assert "rtt-40ms" in result and result["rtt-40ms"]["samples_per_s"] > 0
    assert (tmp_path / "out" / "overhead-vs-rtt.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "train", "--workload", "llm", "--link", "mars"], "unknown preset 'mars'"),
        (["bench", "train", "--workload", "llm", "--rtt-ms", "-5"], "--rtt-ms takes numbers >= 0"),
        (["demo", "--only", "bert"], "'bert'"),
    ],
)
def test_bad_options_raise_a_farfeed_error_naming_them(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from farfeed.cli import app
    from farfeed.errors import ConfigError

    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError), result.output
    assert message in str(result.exception)
