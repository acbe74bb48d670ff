"""The Dataset over the network: static HTTP and S3 (rclone), corruption on the wire, failover."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.data import fixed_size_dataset, packed_images
from helpers.samples import assert_exactly_once, keys

from farfeed.errors import ConfigError, TransientError
from farfeed.loader import Dataset
from farfeed.store.testing import S3Endpoint, serve_http, serve_s3
from farfeed.wan import Link, WanThread


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ROOT/bucket/images``: 96 train JPEGs, and ``ROOT/bucket/big``: 64 samples of
    160 KB (more than the S3 client's coalescing gap), served by the fixtures below."""
    root = tmp_path_factory.mktemp("served")
    packed_images(root / "bucket" / "images", train=96, classes=3, seed=7)
    fixed_size_dataset(root / "bucket" / "big", samples=64, sample_bytes=160_000,
                       shard_size=4 * 2**20)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def http_url(served: Path) -> Iterator[str]:
    """``rclone serve http``: a static server (range GETs, no batch-get)."""
    with serve_http(served) as url:
        yield url.rstrip("/") + "/bucket/images"


@pytest.fixture(scope="module")
def s3(served: Path) -> Iterator[S3Endpoint]:
    with serve_s3(served) as endpoint:
        yield endpoint


def local_epoch(served: Path, **kw: object) -> list[dict[str, object]]:
    return list(Dataset(str(served / "bucket" / "images"), seed=5, **kw))  # type: ignore[arg-type]


def test_static_http_gives_the_same_samples_as_local(served: Path, http_url: str) -> None:
    ds = Dataset(http_url, seed=5)
    got = list(ds)
    assert got == local_epoch(served)
    assert ds.fetch_config.gateway_info[http_url] is False  # known static: workers skip the probe
    assert_exactly_once(keys(got), served / "bucket" / "images")


def test_s3_gives_the_same_samples_as_local(served: Path, s3: S3Endpoint) -> None:
    ds = Dataset("s3://bucket/images", seed=5, store_options=s3.store_options())
    assert list(ds) == local_epoch(served)


def test_corrupted_bytes_on_the_wire_are_refetched_never_delivered(
    served: Path, http_url: str
) -> None:
    host_port = http_url.split("/")[2].rsplit(":", 1)
    fixes = 0
    with WanThread(upstream=(host_port[0], int(host_port[1])), link=Link()) as wan:
        for _ in range(3):
            ds = Dataset(wan.url_for(http_url), seed=5)
            # After the index was read, flip ~1 response byte per 50 KB: about a dozen in
            # three epochs of these ~2 KB samples (a flip in a tar header between samples
            # changes no sample, rightly unnoticed). A fetch is then bad with p ~ 0.05, so
            # five bad copies of one sample in a row (an IntegrityError, rightly: at
            # 1e-4/byte that happened in ~1 run of 60) stay out of reach. Requests stay
            # intact: a flipped request is a legitimate 400, not a wire-integrity case.
            wan.emulator.update(corrupt_rate=2e-5, corrupt_direction="down")
            assert list(ds) == local_epoch(served)
            wan.emulator.update(corrupt_rate=0.0)
            stats = ds.stats()
            fixes += stats["refetches"] + stats["retries"]
        flipped = wan.emulator.stats().corrupted_bytes
    assert flipped > 0
    assert fixes > 0


def test_failover_to_a_replica_when_the_primary_is_down(served: Path, http_url: str) -> None:
    host_port = http_url.split("/")[2].rsplit(":", 1)
    wan = WanThread(upstream=(host_port[0], int(host_port[1])), link=Link()).start()
    try:
        primary = wan.url_for(http_url)
        ds = Dataset(primary, replicas=[http_url], seed=5)
        wan.emulator.cut(mode="reset", duration=60)  # the primary site goes dark
        got = list(ds)
    finally:
        wan.stop()
    assert got == local_epoch(served)
    assert ds.stats()["failovers"] >= 1


def test_deprecated_retries_maps_to_a_time_window_and_the_error_names_sample_url_cause(
    http_url: str,
) -> None:
    host_port = http_url.split("/")[2].rsplit(":", 1)
    with WanThread(upstream=(host_port[0], int(host_port[1])), link=Link()) as wan:
        url = wan.url_for(http_url)
        with pytest.warns(FutureWarning, match=r"retries=1\) is deprecated.*retry_for=0.05"):
            ds = Dataset(url, seed=5, retries=1)
        assert ds.fetch_config.retry_for == 0.05
        wan.emulator.cut(mode="reset", duration=60)
        with pytest.raises(TransientError) as info:
            list(ds)
    message = str(info.value)
    assert "sample 'train/" in message and url.split("/bucket")[0] in message
    assert "gave up after 0.1 s of retries" in message or "gave up after 0.0 s" in message
    assert "connect" in message.split("last cause: ")[1].lower()
    with pytest.raises(ConfigError, match="not both"):
        Dataset(url, retries=3, retry_for=10.0)


def test_s3_block_shuffle_reads_each_run_with_one_range_get(
    served: Path, s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``shuffle_block=8``: runs of 8 neighbours travel as one range GET each (counted at
    the client's one GET path), every sample still exactly once, the same bytes as a
    local read of the same order; the exact sample shuffle takes about one GET per sample
    (samples larger than the client's coalescing gap)."""
    from farfeed.store.s3 import S3Store

    gets = [0]
    original = S3Store._range_get

    async def counted(self: S3Store, *args: object, **kw: object) -> object:
        gets[0] += 1
        return await original(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(S3Store, "_range_get", counted)
    opts = s3.store_options()
    exact = list(Dataset("s3://bucket/big", seed=5, store_options=opts))
    per_sample = gets[0]
    gets[0] = 0
    blocks = list(Dataset("s3://bucket/big", seed=5, shuffle_block=8, store_options=opts))
    assert sorted(keys(blocks)) == sorted(keys(exact)) and len(set(keys(blocks))) == 64
    local = list(Dataset(str(served / "bucket" / "big"), seed=5, shuffle_block=8))
    assert blocks == local
    assert keys(blocks) != keys(exact)
    assert per_sample >= 0.7 * len(exact)  # shuffled samples are rarely neighbours
    # one GET per run: 8 runs, + 2 cut by the 3 shards' ends, + the run that wraps around
    # the end of the order (11 on a quiet box), + a retried GET or two on a busy one
    assert gets[0] <= 64 / 8 + 2 + 1 + 3


def test_block_shuffle_state_refuses_another_world_size(served: Path) -> None:
    root = str(served / "bucket" / "images")
    ds = Dataset(root, seed=1, shuffle_block=4, rank=0, world_size=2)
    it = iter(ds)
    for _ in range(6):
        next(it)
    state = ds.state_dict()
    with pytest.raises(ConfigError, match="same number"):
        Dataset(root, seed=1, shuffle_block=4, rank=0, world_size=3).load_state_dict(state)
    with pytest.raises(ConfigError, match="shuffle_block"):
        Dataset(root, seed=1, rank=0, world_size=2).load_state_dict(state)
    with pytest.raises(ConfigError, match="smaller shuffle_block"):  # runs of ~160 MB
        Dataset(str(served / "bucket" / "big"), shuffle_block=1000, memory_budget=64 << 20)
    again = Dataset(root, seed=1, shuffle_block=4, rank=0, world_size=2)
    again.load_state_dict(state)
    assert keys(list(again)) == keys(list(Dataset(root, seed=1, shuffle_block=4, rank=0,
                                                  world_size=2)))[6:]  # fmt: skip
