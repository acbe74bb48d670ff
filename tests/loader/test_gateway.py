"""The Dataset through the farfeed gateway: batch-get, tokens, the memory budget (a gateway
killed mid-epoch: tests/loader/test_faults.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.data import fixed_size_dataset, rehash_dataset
from helpers.samples import assert_exactly_once, keys

from farfeed.errors import AccessDeniedError, IntegrityError
from farfeed.loader import DataLoader, Dataset
from farfeed.server import TokenTable, serve_in_thread
from farfeed.wan import Link, WanThread


@pytest.fixture(scope="module")
def big_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ROOT/blobs``: 300 samples of 16 KiB (4.7 MB), more than the 1 MiB budget below."""
    root = tmp_path_factory.mktemp("gw")
    fixed_size_dataset(root / "blobs", samples=300, sample_bytes=16 * 1024, seed=1)
    return root


@pytest.fixture(scope="module")
def gateway(image_dataset: Path) -> Iterator[str]:
    with serve_in_thread(image_dataset.parent) as url:
        yield url


def test_gateway_gives_the_same_samples_as_local_in_few_batch_gets(
    image_dataset: Path, gateway: str
) -> None:
    ds = Dataset(f"{gateway}/{image_dataset.name}", seed=2)
    got = list(ds)
    assert got == list(Dataset(str(image_dataset), seed=2))
    assert_exactly_once(keys(got), image_dataset)
    url = f"{gateway}/{image_dataset.name}"
    assert ds.fetch_config.gateway_info[url]["farfeed"]  # probed once, reused by workers
    assert ds.stats()["requests"] < len(got) / 4  # many samples per round trip


def test_a_far_gateway_costs_the_index_two_round_trips_not_five(image_dataset: Path) -> None:
    """Whether the URL is a gateway, dataset.json and the index file are asked at once, on
    connections of their own: one handshake and one request's round trip (read one
    after the other they took five: probe handshake + GET, handshake + GET, GET)."""
    rtt = 0.2
    with serve_in_thread(image_dataset.parent) as url:
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        with WanThread(upstream=(host, int(port)), link=Link(rtt=rtt)) as wan:
            far = wan.url_for(f"{url}/{image_dataset.name}")
            t0 = time.monotonic()
            ds = Dataset(far, seed=2)
            took = time.monotonic() - t0
    assert 2 * rtt <= took < 3.5 * rtt, took
    assert ds.fetch_config.gateway_info[far]["farfeed"]  # the probe's answer, kept for workers
    assert len(ds) == len(Dataset(str(image_dataset)))


def test_an_index_file_of_another_name_is_read_by_its_name(tmp_path: Path) -> None:
    """The index is asked for at its usual name early; dataset.json naming another is read
    by that name (the early read, a 404 here, is dropped)."""
    root = fixed_size_dataset(tmp_path / "renamed", samples=20, sample_bytes=100)
    (root / "index.npz").rename(root / "other-index.npz")
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "index": "other-index.npz"}))
    with serve_in_thread(tmp_path) as url:
        got = list(Dataset(f"{url}/renamed", seed=1))
    assert sorted(keys(got)) == [f"{k:08d}" for k in range(20)]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_token_in_the_url_reaches_every_data_read(image_dataset: Path, num_workers: int) -> None:
    """``http://:TOKEN@host/...`` is honoured by the index read *and* by the workers'
    batch-gets (the workers open their stores through the same `open_store`)."""
    token = "9f3c2a0e6b1d4c7f8a5e9d2b1c0f4a6e"
    with serve_in_thread(image_dataset.parent, tokens=TokenTable({token: {"read"}})) as url:
        with pytest.raises(AccessDeniedError):
            Dataset(f"{url}/{image_dataset.name}")  # no token: refused
        authed = url.replace("http://", f"http://:{token}@")
        ds = Dataset(f"{authed}/{image_dataset.name}", seed=5)
        loader = DataLoader(ds, batch_size=8, num_workers=num_workers)
        seen = [k for batch in loader for k in batch["__key__"]]
    assert_exactly_once(seen, image_dataset)
    assert ds.stats()["retries"] == 0


def test_bytes_held_never_pass_the_memory_budget(big_root: Path) -> None:
    with serve_in_thread(big_root) as url:
        ds = Dataset(f"{url}/blobs", seed=4, memory_budget=1 << 20)  # 64 samples' worth
        slow = 0
        for _ in ds:
            slow += 1
            if slow % 50 == 0:  # let the fetcher run ahead as far as it may
                time.sleep(0.05)
        stats = ds.stats()
    assert stats["samples"] == 300
    assert 0 < stats["peak_bytes_held"] <= 1 << 20


@pytest.mark.parametrize("decode", ["raw", "batch"])
def test_each_dataset_is_checked_with_the_checksum_its_dataset_json_names(
    tmp_path: Path, decode: str
) -> None:
    """A dataset packed with xxh64 (an older farfeed) reads exactly through the gateway,
    hashed where it lands; one whose dataset.json names another function than its index
    holds fails every check, so nothing is delivered (the name is really used)."""
    fixed_size_dataset(tmp_path / "old", samples=40, sample_bytes=3000, seed=3)
    rehash_dataset(tmp_path / "old", "xxh64")
    fixed_size_dataset(tmp_path / "lying", samples=40, sample_bytes=3000, seed=4)
    rehash_dataset(tmp_path / "lying", "xxh64", claim="xxh3_64")
    with serve_in_thread(tmp_path) as url:
        ds = Dataset(f"{url}/old", decode=decode, batch_size=8, seed=1)
        got = list(ds)
        delivered = sum(len(b.keys) for b in got) if decode == "batch" else len(got)
        assert delivered == 40 and ds.stats()["corrupt"] == 0
        lying = Dataset(f"{url}/lying", decode=decode, batch_size=8, seed=1)
        with pytest.raises(IntegrityError, match="checksum mismatch in every copy"):
            next(iter(lying))
