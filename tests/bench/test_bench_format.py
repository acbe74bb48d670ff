"""`farfeed bench format`: the synthetic index it loads, and a tiny run writing its figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from farfeed.bench.format.synthetic_index import write_synthetic_index
from farfeed.cli import app
from farfeed.format import SampleIndex


def test_synthetic_index_is_consistent(tmp_path: Path) -> None:
    out = write_synthetic_index(tmp_path / "syn", samples=5000, shards=7, classes=100)
    index = SampleIndex.load(out)
    assert len(index) == 5000 and len(index.shard_names) == 7
    assert np.all(index.member_offset[1::2] + index.member_size[1::2] == index.size)
    assert index.key_of(0).startswith("train/n")
    ends = index.offset + index.size
    for s in range(7):
        ids = np.flatnonzero(index.shard == s)
        assert np.all(ends[ids] <= index.meta.shard_bytes[s])
        assert np.all(index.offset[ids[1:]] > ends[ids[:-1]])  # spans do not overlap


def test_bench_format_small(tmp_path: Path) -> None:
    out = tmp_path / "format.json"
    args = ["bench", "format", "--samples", "3000", "--pack-images", "10", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["index_load"]["samples"] == 3000 and len(figures["index_load"]["load_seconds"]) == 5
    assert figures["pack"]["images"] == 10 and len(figures["pack"]["runs"]) == 3
    assert figures["pack"]["median_mb_per_s"] > 0
