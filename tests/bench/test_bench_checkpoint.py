"""`farfeed bench checkpoint` end to end, tiny: real gateway and emulator processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farfeed.bench.checkpoint import CheckpointBench
from farfeed.cli import app
from farfeed.errors import ConfigError


def test_bench_runs_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "ckpt.json"
    args = [
        "bench", "checkpoint", "--rtt-ms", "5", "--size-mb", "4", "--tensors", "3",
        "--bandwidth-mbit", "200", "--repeats", "1", "--stall-repeats", "2",
        "--ceiling-seconds", "0.5", "--root", str(tmp_path), "--json", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "stall per checkpoint" in result.output
    report = json.loads(out.read_text())
    assert report["command"].startswith("farfeed bench checkpoint --rtt-ms 5 --size-mb 4")
    (link,) = report["links"]
    assert link["rtt_ms"] == 5 and link["bytes"] > 4_000_000 and len(link["upload_s"]) == 1
    assert link["upload_ratio"] > 0 and link["download_ratio"] > 0 and link["emulator_ceiling"] > 0
    assert len(report["stall"]["stalls"]) == 2
    assert not any(p.name.startswith("farfeed-bench-ckpt-") for p in tmp_path.iterdir())  # cleaned up


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"rtts_ms": ()}, "rtts_ms"), ({"size_mb": 0}, "size_mb"), ({"bandwidth_mbit": -1}, "-1"), ({"ceiling_seconds": 0}, "ceiling")],
)
def test_bench_settings_are_checked(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        CheckpointBench(**kwargs)  # type: ignore[arg-type]
