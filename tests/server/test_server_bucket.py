"""The gateway in front of a bucket: ``rclone serve s3`` as the store, a counting proxy
between them (every store request is seen), the gateway on a loopback port, and
`farfeed.Dataset` reading through it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.data import fixed_size_dataset
from helpers.http import call, call_json, error_of, parse_frames
from helpers.samples import assert_exactly_once, assert_source_bytes, keys

from farfeed.bench.io.counting import CountingProxy
from farfeed.errors import ConfigError
from farfeed.loader import Dataset
from farfeed.server import serve_in_thread
from farfeed.server.bucket import BucketSettings
from farfeed.server.process import GatewayProcess
from farfeed.server.runner import ServeOptions
from farfeed.store.testing import S3Endpoint, serve_s3

MiB = 1 << 20
SAMPLES = 400
SAMPLE_BYTES = 20_000  # 8 MB in 4 shards of ~2 MiB: ~50 samples per 1 MiB block


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ROOT/bucket/ds``: SAMPLES fixed-size samples, and a dataset.json."""
    root = tmp_path_factory.mktemp("served")
    fixed_size_dataset(root / "bucket" / "ds", samples=SAMPLES, sample_bytes=SAMPLE_BYTES, shard_size=2 * MiB)
    return root


@pytest.fixture(scope="module")
def s3(served: Path) -> Iterator[S3Endpoint]:
    with serve_s3(served) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def store(s3: S3Endpoint) -> Iterator[CountingProxy]:
    """The store as the gateway sees it: rclone behind a proxy that counts requests."""
    host, port = s3.endpoint_url.split("//")[1].rsplit(":", 1)
    with CountingProxy((host, int(port))) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def keys_env(s3: S3Endpoint) -> Iterator[dict[str, str]]:
    """The store's keys as the standard AWS_* variables (how the gateway gets them)."""
    env = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        yield env


def settings(store: CountingProxy, *, cache_bytes: int = 64 * MiB) -> BucketSettings:
    return BucketSettings(endpoint_url=store.url, block_bytes=MiB, cache_bytes=cache_bytes)


@pytest.fixture
def gateway(store: CountingProxy, keys_env: dict[str, str]) -> Iterator[str]:
    """A fresh (cold-cache) gateway over ``s3://bucket``: 1 MiB blocks, 64 MiB cache."""
    with serve_in_thread("s3://bucket", bucket=settings(store)) as url:
        yield url


def metric(url: str, name: str) -> float:
    _, _, body = call(url, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_an_epoch_through_the_bucket_gateway_is_exact_with_few_store_requests(
    served: Path, store: CountingProxy, gateway: str
) -> None:
    before = store.total
    got = list(Dataset(f"{gateway}/ds", seed=3))
    first_epoch = store.total - before
    assert_exactly_once(keys(got), served / "bucket" / "ds")
    assert_source_bytes(got, served / "bucket" / "ds")
    # 8 MB in 1 MiB blocks is ~10 block reads, plus a HEAD per object and the index
    assert first_epoch * 1000 / SAMPLES < 100, store.requests
    assert metric(gateway, "farfeed_store_requests_total") <= store.requests.get("GET", 0)
    again = store.total
    assert sorted(keys(Dataset(f"{gateway}/ds", seed=4))) == sorted(keys(got))
    assert store.total - again <= 2, "a second epoch is served from the cache (sizes are still fresh)"


def test_a_cache_smaller_than_the_data_set_still_serves_every_sample_and_stays_bounded(
    served: Path, store: CountingProxy, keys_env: dict[str, str]
) -> None:
    with serve_in_thread("s3://bucket", bucket=settings(store, cache_bytes=2 * MiB)) as url:
        got = list(Dataset(f"{url}/ds", seed=5))
        assert_exactly_once(keys(got), served / "bucket" / "ds")
        assert_source_bytes(got, served / "bucket" / "ds")
        assert metric(url, "farfeed_cache_bytes") <= 2 * MiB
        assert metric(url, "farfeed_cache_evicted_total") > 0
        # blocks that do not pay off give way to exact reads: store bytes stay near those
        # delivered (whole 1 MiB blocks for 20 KB samples would be ~50x)
        assert metric(url, "farfeed_cache_exact_reads_total") > 0
        assert metric(url, "farfeed_store_bytes_total") < 6 * SAMPLES * SAMPLE_BYTES


def test_concurrent_misses_for_one_block_make_one_store_request(
    served: Path, store: CountingProxy, gateway: str
) -> None:
    shard = sorted((served / "bucket" / "ds").glob("*.tar"))[0]
    want = shard.read_bytes()[4096 : 4096 + 50_000]
    before = dict(store.requests)
    results: list[bytes] = []

    def fetch() -> None:
        status, body = call_batch(gateway, [[f"ds/{shard.name}", 4096, 50_000]])
        assert status == 200
        results.append(parse_frames(body)[0][1])

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [want] * 8
    assert store.requests.get("GET", 0) - before.get("GET", 0) == 1  # one block, read once
    assert store.requests.get("HEAD", 0) - before.get("HEAD", 0) == 1  # one size, asked once


def call_batch(url: str, ranges: list[list[object]]) -> tuple[int, bytes]:
    status, _, body = call(
        url, "POST", "/_farfeed/batch", body=json.dumps({"ranges": ranges}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    return status, body


def test_reads_match_a_folder_gateway_and_writes_are_refused(served: Path, gateway: str) -> None:
    shard = sorted((served / "bucket" / "ds").glob("*.tar"))[1]
    data = shard.read_bytes()
    path = f"/ds/{shard.name}"
    assert call(gateway, "GET", path)[2] == data
    status, headers, body = call(gateway, "GET", path, headers={"Range": "bytes=1000000-1100099"})
    assert (status, body) == (206, data[1_000_000:1_100_100])
    assert headers["content-range"] == f"bytes 1000000-1100099/{len(data)}"
    status, headers, body = call(gateway, "HEAD", path)
    assert (status, int(headers["content-length"]), body) == (200, len(data), b"")
    status, headers, _ = call(gateway, "GET", path, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"
    status, body = call_batch(gateway, [[f"ds/{shard.name}", 10, 5], [f"ds/{shard.name}", 7, 0]])
    assert parse_frames(body) == [(0, data[10:15]), (1, b"")]
    status, listing = call_json(gateway, "GET", "/_farfeed/list?prefix=ds/")
    names = sorted(p.name for p in (served / "bucket" / "ds").iterdir())
    assert [o["path"] for o in listing["objects"]] == [f"ds/{n}" for n in names]
    status, found = call_json(gateway, "GET", "/_farfeed/datasets")
    assert [d["name"] for d in found["datasets"]] == ["ds"]
    for method, where in (("PUT", "/checkpoints/run/x.bin"), ("DELETE", path), ("POST", "/_farfeed/uploads")):
        status, _, body = call(gateway, method, where, body=b"x")
        assert status == 405 and "write checkpoints to the bucket directly" in error_of(body)
    assert call(gateway, "GET", "/ds/../etc/passwd")[0] == 400


def test_a_missing_object_is_404(gateway: str) -> None:
    status, _, body = call(gateway, "GET", "/ds/no-such-shard.tar")
    assert status == 404 and "no-such-shard.tar" in error_of(body)
    status, body = call_batch(gateway, [["ds/no-such-shard.tar", 0, 10]])
    assert status == 404 and "range 0" in error_of(body)


def test_the_gateway_answers_503_while_the_store_is_gone_and_recovers(
    served: Path, store: CountingProxy, gateway: str
) -> None:
    shard = sorted((served / "bucket" / "ds").glob("*.tar"))[2]
    store.set_down(True)
    try:
        status, headers, body = call(gateway, "GET", f"/ds/{shard.name}")
        assert status == 503 and headers["retry-after"] and "retry" in error_of(body)
        status, body = call_batch(gateway, [[f"ds/{shard.name}", 0, 10]])
        assert status == 503
        assert call(gateway, "GET", "/healthz")[0] == 200
    finally:
        store.set_down(False)
    status, _, body = call(gateway, "GET", f"/ds/{shard.name}")
    assert (status, body) == (200, shard.read_bytes())


def test_farfeed_serve_takes_an_s3_root_with_the_cli_flags(
    served: Path, store: CountingProxy, keys_env: dict[str, str]
) -> None:
    flags = ["--s3-endpoint-url", store.url, "--cache-mib", "16", "--block-mib", "1"]
    with GatewayProcess.start("s3://bucket", options=flags, env=keys_env) as gw:
        info = call_json(gw.url, "GET", "/_farfeed/info")[1]
        assert (info["source"], info["writable"]) == ("bucket", False)
        meta = served / "bucket" / "ds" / "dataset.json"
        assert call(gw.url, "GET", "/ds/dataset.json")[2] == meta.read_bytes()
        assert metric(gw.url, "farfeed_cache_capacity_bytes") == 16 * MiB


def test_bad_bucket_setups_are_refused_before_serving(tmp_path: Path) -> None:
    for options, words in (
        (ServeOptions(root="ftp://host/data"), "s3://BUCKET/PREFIX"),
        (ServeOptions(root=str(tmp_path), bucket=BucketSettings()), "s3:// ROOT"),
        (ServeOptions(root="s3://b/p", bucket=BucketSettings(endpoint_url="minio:9000")), "http"),
    ):
        with pytest.raises(ConfigError, match=words):
            options.check()
    with pytest.raises(ConfigError, match="at least one block"):
        BucketSettings(cache_bytes=MiB, block_bytes=8 * MiB)


def test_two_gateway_processes_front_one_bucket_and_a_loader_spreads_over_both(
    served: Path, store: CountingProxy, keys_env: dict[str, str]
) -> None:
    """Several gateways over one bucket (here a ``--workers 2`` gateway and a second one,
    each process with its own cache): a `Dataset` spread over both gets every sample once,
    with the bytes of the shard files, and both gateways served some of it."""
    flags = ["--s3-endpoint-url", store.url, "--cache-mib", "16", "--block-mib", "1"]
    with GatewayProcess.start("s3://bucket", options=flags, env=keys_env, workers=2) as a, \
            GatewayProcess.start("s3://bucket", options=flags, env=keys_env) as b:  # fmt: skip
        ds = Dataset(f"{a.url}/ds", replicas=[f"{b.url}/ds"], spread=True, seed=3)
        got = list(ds)
        assert_exactly_once(keys(got), served / "bucket" / "ds")
        assert_source_bytes(got, served / "bucket" / "ds")

        def batches(url: str) -> float:  # the line appears with the first batch answered
            _, _, body = call(url, "GET", "/metrics")
            found = [ln for ln in body.decode().splitlines()
                     if ln.startswith('farfeed_requests_total{endpoint="batch",status="200"} ')]  # fmt: skip
            return float(found[0].split()[1]) if found else 0.0

        assert batches(b.url) > 0
        # /metrics of a --workers gateway is one worker's: ask a few times, on new connections
        assert max(batches(a.url) for _ in range(12)) > 0
