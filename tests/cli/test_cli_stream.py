"""`farfeed stream`: reports what it read, and exits 1 naming a corrupted sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.data import packed_images
from typer.testing import CliRunner

from farfeed.cli import app
from farfeed.format import SampleIndex


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 train + 6 val sample images, packed."""
    tmp = tmp_path_factory.mktemp("cli-stream")
    return packed_images(tmp / "dataset", train=60, val=6, classes=10, seed=3, look="sample", shard_size="256MiB")


def test_cli_reports_and_fails_on_corruption(dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["stream", str(dataset), "--batch", "32", "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert "checksum failures" in ok.output and "first-batch latency" in ok.output
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    index = SampleIndex.load(bad)
    shard, offset, size = index.span(int(index.ids("train")[5]))
    with open(bad / shard, "r+b") as f:
        f.seek(offset + size // 2)
        byte = f.read(1)
        f.seek(offset + size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    failed = runner.invoke(app, ["stream", str(bad), "--no-progress"])
    assert failed.exit_code == 1
    assert "1 of 60 samples failed" in str(failed.exception)
