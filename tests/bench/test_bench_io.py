"""`farfeed bench io` end to end, tiny: gateway, farfeed wan, farfeed and baseline trials, JSON rows."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from farfeed.cli import app

REQUIRED = (
    "loader",
    "rtt_ms",
    "au",
    "au_relative",
    "samples_per_s",
    "first_batch_s",
    "peak_rss_mb",
)


def test_bench_io_runs_from_the_cli_and_writes_rows(tmp_path: Path) -> None:
    out = tmp_path / "io.json"
    args = ["bench", "io", "--rtt-ms", "0", "--scale", "0.02", "--batches", "6", "--warmup", "2"]
    args += ["--baseline-workers", "2", "--overload-rtt-ms", "5", "--work", str(tmp_path / "w")]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [(r["loader"], r["rtt_ms"], r["demand"]) for r in rows] == [
        ("farfeed", 0, 0.9),
        ("baseline", 0, 0.9),
        ("farfeed", 5, 2.0),
    ]
    for row in rows:
        assert all(key in row for key in REQUIRED)
        assert 0 < row["au"] <= 1 and row["samples_per_s"] > 0 and row["peak_rss_mb"] > 0
    assert rows[0]["au_relative"] == 1.0 and rows[2]["au_relative"] is None
    assert "| farfeed | 0 | 0.9 |" in result.output


def test_bench_io_feeds_the_accelerator_batches_with_decode_batch(tmp_path: Path) -> None:
    out = tmp_path / "io.json"
    args = ["bench", "io", "--decode", "batch", "--rtt-ms", "0", "--scale", "0.02", "--batches", "6"]
    args += ["--warmup", "2", "--no-baseline", "--overload", "0", "--work", str(tmp_path / "w")]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())
    assert row["loader"] == "farfeed" and row["decode"] == "batch"
    assert 0 < row["au"] <= 1 and row["batches"] >= 6 and row["samples_per_s"] > 0
    refused = CliRunner().invoke(app, ["bench", "io", "--decode", "jpeg", "--work", str(tmp_path)])
    assert refused.exit_code != 0 and 'decode must be "bytes" or "batch"' in str(refused.exception)


def test_bench_io_refuses_a_run_without_the_local_reference(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "io", "--rtt-ms", "15", "--work", str(tmp_path)])
    assert result.exit_code != 0
    assert "must include 0" in str(result.exception)
