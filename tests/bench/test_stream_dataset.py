"""stream_dataset / `farfeed stream` over local disk, static HTTP and S3 (real servers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from farfeed.bench.stream import astream_dataset, stream_dataset
from farfeed.cli import app
from farfeed.errors import ConfigError
from farfeed.format import SampleIndex
from farfeed.format.testing import make_packed_dataset
from farfeed.store.testing import serve_http, serve_s3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small packed image dataset (train + val), built once for this module."""
    return make_packed_dataset(tmp_path_factory.mktemp("stream"), count=60, seed=3)


def test_local_stream_reads_and_verifies_every_sample(dataset: Path) -> None:
    index = SampleIndex.load(dataset)
    report = stream_dataset(str(dataset), split="train", batch=16)
    assert report.samples == len(index.ids("train")) == 60
    assert report.batches == 4
    assert report.checksum_failures == 0
    assert report.nbytes == int(index.size[index.ids("train")].sum())
    every = stream_dataset(str(dataset), split=None, batch=1000, limit=50)
    assert (every.samples, every.batches) == (50, 1)


async def test_stream_over_static_http_and_s3(dataset: Path) -> None:
    train = len(SampleIndex.load(dataset).ids("train"))
    with serve_http(dataset.parent) as url:
        report = await astream_dataset(f"{url}/{dataset.name}", batch=25)
        assert (report.samples, report.checksum_failures, report.native_batch) == (train, 0, False)
    with serve_s3(dataset.parent) as s3:
        report = await astream_dataset(
            f"s3://{dataset.name}", split="val", batch=4, **s3.store_options()
        )
        assert report.samples == len(SampleIndex.load(dataset).ids("val")) > 0
        assert report.checksum_failures == 0


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


def test_bad_arguments_are_config_errors(dataset: Path) -> None:
    with pytest.raises(ConfigError, match="batch"):
        stream_dataset(str(dataset), batch=0)
    with pytest.raises(ConfigError, match="'nope'"):
        stream_dataset(str(dataset), split="nope")
