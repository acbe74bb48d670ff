"""The issue's end-to-end check: sample images -> packed dataset -> served three ways ->
random samples back, byte-identical to the source JPEGs.

One batch-get through the farfeed gateway brings 256 random samples in ONE request;
``rclone serve s3`` and ``rclone serve http`` over the same folder give the same bytes;
``farfeed stream`` reads and verifies the whole dataset through the gateway.
"""

from __future__ import annotations

import re
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from farfeed.cli import app
from farfeed.format import SampleIndex, make_sample_images, pack_images
from farfeed.loader.index import byte_ranges, read_index
from farfeed.server import serve_in_thread
from farfeed.store import GatewayStore, HttpStore, S3Store, open_store
from farfeed.store.testing import serve_http, serve_s3

IMAGES = 2000
BATCH = 256


@dataclass(frozen=True)
class Packed:
    images: Path  # the source folder: images/train/<class>/<id>.jpg
    root: Path  # what the servers serve; the dataset is root/imagenet
    name: str = "imagenet"


@pytest.fixture(scope="session")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Packed:
    """2,000 sample JPEGs packed into 64 MiB shards, built once per test session."""
    tmp = tmp_path_factory.mktemp("roundtrip")
    images = make_sample_images(tmp / "images", count=IMAGES, seed=7, val_fraction=0.0)
    pack_images(images, tmp / "root" / "imagenet", shard_size="64MiB")
    return Packed(images, tmp / "root")


def source_jpeg(packed: Packed, index: SampleIndex, i: int) -> bytes:
    """The source file sample ``i`` was packed from (its key is ``train/<class>/<stem>``)."""
    return (packed.images / f"{index.key_of(i)}.jpg").read_bytes()


def batch_requests(url: str) -> int:
    """Batch-gets answered 200 by the gateway, once no other request is in flight."""
    deadline = time.monotonic() + 10
    while True:
        text = urllib.request.urlopen(f"{url}/metrics").read().decode()
        if (
            re.search(r"^farfeed_inflight_requests 1$", text, re.MULTILINE)
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.01)
    match = re.search(r'farfeed_requests_total\{endpoint="batch",status="200"\} (\d+)', text)
    return int(match.group(1)) if match else 0


async def test_random_samples_round_trip_through_every_backend(packed: Packed) -> None:
    ids = np.random.default_rng(1).choice(IMAGES, size=BATCH, replace=False)
    with serve_in_thread(packed.root) as gateway:
        async with open_store(f"{gateway}/{packed.name}") as store:
            assert isinstance(store, GatewayStore)
            index = await read_index(store)
            assert isinstance(index, SampleIndex) and len(index) == IMAGES
            assert len(index.shard_names) > 1  # samples come from several shards
            before = batch_requests(gateway)
            spans = await store.read_many(byte_ranges(index, ids))
            assert batch_requests(gateway) == before + 1  # 256 random samples, ONE request
    samples = [
        index.unpack(int(i), data) for i, data in zip(ids, spans, strict=True)
    ]  # verifies xxh64
    for i, sample in zip(ids, samples, strict=True):
        assert sample["jpg"] == source_jpeg(packed, index, int(i))
        assert int(sample["cls"]) == int(index.label[i])

    with serve_s3(packed.root) as s3:
        async with open_store(f"s3://{packed.name}", **s3.store_options()) as store:
            assert isinstance(store, S3Store)
            assert await store.read_many(byte_ranges(index, ids)) == spans
    with serve_http(packed.root) as http:
        async with open_store(f"{http}/{packed.name}") as store:
            assert isinstance(store, HttpStore)
            assert await store.read_many(byte_ranges(index, ids)) == spans


def test_farfeed_stream_reads_whole_dataset_through_gateway(packed: Packed) -> None:
    with serve_in_thread(packed.root) as gateway:
        result = CliRunner().invoke(
            app, ["stream", f"{gateway}/{packed.name}", "--batch", str(BATCH), "--no-progress"]
        )
    assert result.exit_code == 0, result.output
    rows = dict(re.findall(r"│ ([a-zA-Z/ -]+?)\s+│ (.+?)\s+│", result.output))
    assert rows["samples"] == f"{IMAGES:,}"
    assert rows["checksum failures"] == "0"
    assert rows["batches"] == str(-(-IMAGES // BATCH))
    assert rows["read with"].startswith("batch-get")
