"""Several URLs for one dataset: a corrupt shard repaired from a replica, corruption without a
replica named at once, and ``spread=True`` using two gateway processes together (and
finishing on one when the other is killed).

    .venv/bin/python -m pytest tests/loader/test_replicas.py -q --durations=0
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers.data import fixed_size_dataset
from helpers.samples import assert_exactly_once, assert_source_bytes, keys

from farfeed.errors import IntegrityError
from farfeed.format import SampleIndex
from farfeed.loader import Dataset
from farfeed.server import serve_in_thread
from farfeed.server.process import GatewayProcess
from farfeed.wan import Link, WanThread

SAMPLES = 300
#: The sample whose bytes are flipped on gateway A.
BAD = 7


@pytest.fixture(scope="module")
def good_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ROOT/blobs``: 300 samples of 16 KiB (4.7 MB) in 1 MiB shards."""
    root = tmp_path_factory.mktemp("good")
    fixed_size_dataset(root / "blobs", samples=SAMPLES, sample_bytes=16 * 1024, seed=2, shard_size=1 << 20)
    return root


@pytest.fixture(scope="module")
def bad_root(good_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same dataset with one byte flipped in sample BAD's bytes at rest."""
    root = tmp_path_factory.mktemp("bad")
    shutil.copytree(good_root / "blobs", root / "blobs")
    index = SampleIndex.load(root / "blobs")
    shard, offset, size = index.span(BAD)
    with open(root / "blobs" / shard, "r+b") as f:
        f.seek(offset + size // 2)
        byte = f.read(1)[0]
        f.seek(offset + size // 2)
        f.write(bytes([byte ^ 0x01]))
    return root


def _batch_gets(url: str) -> int:
    """Batch-get requests a gateway answered with 200 (from its /metrics)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.search(r'farfeed_requests_total\{endpoint="batch",status="200"\} (\d+)', text)
    return int(found.group(1)) if found else 0


def test_a_corrupt_shard_is_repaired_from_the_replica(good_root: Path, bad_root: Path) -> None:
    with serve_in_thread(bad_root) as a, serve_in_thread(good_root) as b:
        ds = Dataset(f"{a}/blobs", replicas=[f"{b}/blobs"], seed=4, memory_budget=1 << 20)
        got = list(ds)
    assert_exactly_once(keys(got), good_root / "blobs")
    assert_source_bytes(got, good_root / "blobs")  # the good copy's bytes, sample BAD included
    stats = ds.stats()
    assert stats["corrupt"] == 1 and stats["integrity_failovers"] == 1
    assert stats["refetches"] == 1  # B's copy was the first one asked for
    assert stats["retries"] == 0


def test_corruption_without_a_replica_is_named_at_once(bad_root: Path) -> None:
    with serve_in_thread(bad_root) as a:
        url = f"{a}/blobs"
        ds = Dataset(url, seed=4, memory_budget=1 << 20)  # the default 120 s retry window
        t0 = time.monotonic()
        with pytest.raises(IntegrityError) as info:
            list(ds)
        seconds = time.monotonic() - t0
    assert seconds < 10  # corruption is not transient: no waiting out the window
    message = str(info.value)
    key = SampleIndex.load(bad_root / "blobs").key_of(BAD)
    assert f"sample {key!r}" in message and f"{url} (5x)" in message, message
    assert "checksum mismatch in every copy" in message
    assert ds.stats()["corrupt"] == 1 and ds.stats()["refetches"] == 4


def test_spread_uses_both_gateways_and_failover_only_the_first(good_root: Path) -> None:
    with GatewayProcess.start(good_root) as a, GatewayProcess.start(good_root) as b:
        urls = (f"{a.url}/blobs", f"{b.url}/blobs")
        failover = Dataset(urls[0], replicas=[urls[1]], seed=5, memory_budget=1 << 20)
        list(failover)
        assert _batch_gets(a.url) > 0 and _batch_gets(b.url) == 0  # B waits for A to fail
        before = _batch_gets(a.url)
        ds = Dataset(urls[0], replicas=[urls[1]], spread=True, seed=5, memory_budget=1 << 20)
        got = list(ds)
        on_a, on_b = _batch_gets(a.url) - before, _batch_gets(b.url)
    assert_exactly_once(keys(got), good_root / "blobs")
    assert_source_bytes(got, good_root / "blobs")
    assert on_a > 0 and on_b > 0, (on_a, on_b)
    assert min(on_a, on_b) >= (on_a + on_b) / 10, (on_a, on_b)  # shared, not a token probe


def test_spread_sends_fewer_requests_to_a_slower_gateway(good_root: Path) -> None:
    """B is 50 ms away, A is next door: B's requests take ~10x longer, so it gets far fewer."""
    with serve_in_thread(good_root) as a, serve_in_thread(good_root) as b:
        parts = urlsplit(b)
        assert parts.hostname is not None and parts.port is not None
        with WanThread(upstream=(parts.hostname, parts.port), link=Link(rtt=0.05)) as wan:
            ds = Dataset(f"{a}/blobs", replicas=[wan.url_for(f"{b}/blobs")], spread=True, seed=7,
                         memory_budget=1 << 20)  # fmt: skip
            got = list(ds)
        on_a, on_b = _batch_gets(a), _batch_gets(b)
    assert_exactly_once(keys(got), good_root / "blobs")
    assert on_b >= 1 and on_a >= 4 * on_b, (on_a, on_b)


def test_spread_finishes_on_one_gateway_when_the_other_is_killed(good_root: Path) -> None:
    with GatewayProcess.start(good_root) as a, GatewayProcess.start(good_root) as b:
        ds = Dataset(f"{a.url}/blobs", replicas=[f"{b.url}/blobs"], spread=True, seed=6,
                     memory_budget=1 << 20)  # fmt: skip
        got: list[dict[str, object]] = []
        for sample in ds:
            got.append(sample)
            if len(got) == 60:
                assert _batch_gets(b.url) > 0
                b.kill()
        stats = ds.stats()
    assert len(got) == SAMPLES
    assert_exactly_once(keys(got), good_root / "blobs")
    assert_source_bytes(got, good_root / "blobs")
    # The kill was felt: a read at B failed and was read again (from A). Whether B also
    # leaves the rotation (a second failure in a row, `failovers`) depends on whether the
    # rate-weighted choice sends B another request before the epoch ends: on a loaded
    # machine A can measure faster and take them all.
    assert stats["retries"] >= 1
