"""stream_dataset over local disk, static HTTP and S3 (real servers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.data import packed_images

from farfeed.bench.stream import astream_dataset, stream_dataset
from farfeed.errors import ConfigError
from farfeed.format import SampleIndex
from farfeed.store.testing import serve_http, serve_s3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 train + 6 val sample images, packed; built once for this module."""
    tmp = tmp_path_factory.mktemp("stream")
    return packed_images(tmp / "dataset", train=60, val=6, classes=10, seed=3, look="sample", shard_size="256MiB")


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


def test_bad_arguments_are_config_errors(dataset: Path) -> None:
    with pytest.raises(ConfigError, match="batch"):
        stream_dataset(str(dataset), batch=0)
    with pytest.raises(ConfigError, match="'nope'"):
        stream_dataset(str(dataset), split="nope")
