"""`farfeed bench wan`: a tiny run through the emulator writes its figures."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from farfeed.cli import app


def test_bench_wan_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "wan.json"
    result = CliRunner().invoke(
        app,
        ["bench", "wan", "--rtt-ms", "5", "--connections", "2", "--seconds", "0.3",
         "--repeats", "1", "--window-mib", "8", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["command"].startswith("farfeed bench wan --rtt-ms 5 --connections 2")
    direct, wan = report["results"]
    assert direct["rtt"] is None and wan["rtt"] == 0.005 and wan["connections"] == 2
    assert direct["throughput"] > 0 and wan["throughput"] > 0 and direct["cpu_per_gb"] is None
    assert wan["cpu_per_gb"] > 0
    assert "wan 5 ms" in result.output
