"""Reading from a real gateway over loopback: info, datasets, listing, GET/HEAD/Range, metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest
from helpers.data import fake_dataset
from helpers.http import call

from farfeed.server import objects


def test_healthz_and_info(gateway_url: str) -> None:
    status, headers, body = call(gateway_url, "GET", "/healthz")
    assert (status, body) == (200, b"ok")
    status, _, body = call(gateway_url, "GET", "/_farfeed/info")
    info = json.loads(body)
    assert status == 200
    assert info["api"] == 1 and info["max_batch_ranges"] == 4096 and info["max_batch_bytes"] == 1 << 30


async def test_datasets_and_list(gateway_root: Path, gateway_url: str) -> None:
    files = fake_dataset(gateway_root, "imagenet")
    fake_dataset(gateway_root, "other", sizes=(10,))
    (gateway_root / "not-a-dataset").mkdir()
    (gateway_root / "imagenet" / ".hidden").write_bytes(b"x")
    (gateway_root / "checkpoints" / "run1").mkdir()
    (gateway_root / "checkpoints" / "run1" / "m.bin").write_bytes(b"12345")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gateway_url}/_farfeed/datasets") as r:
            assert r.status == 200
            found = (await r.json())["datasets"]
        assert [d["name"] for d in found] == ["imagenet", "other"]
        assert found[0] == {"name": "imagenet", "kind": "images", "samples": 42, "bytes": sum(len(v) for v in files.values())}
        async with s.get(f"{gateway_url}/_farfeed/list", params={"prefix": "imagenet/"}) as r:
            listed = (await r.json())["objects"]
        meta_size = (gateway_root / "imagenet" / "dataset.json").stat().st_size
        expected = {**{p: len(d) for p, d in files.items()}, "imagenet/dataset.json": meta_size}
        assert listed == [{"path": p, "size": expected[p]} for p in sorted(expected)]  # no .hidden
        async with s.get(f"{gateway_url}/_farfeed/list", params={"prefix": "checkpoints/run1/m"}) as r:
            assert (await r.json())["objects"] == [{"path": "checkpoints/run1/m.bin", "size": 5}]
        async with s.get(f"{gateway_url}/_farfeed/list", params={"prefix": "nothing/here"}) as r:
            assert r.status == 200 and (await r.json())["objects"] == []


async def test_get_head_and_ranges(gateway_root: Path, gateway_url: str) -> None:
    files = fake_dataset(gateway_root)
    path, data = next(iter(files.items()))
    url = f"{gateway_url}/{path}"
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            assert r.status == 200 and await r.read() == data
        async with s.head(url) as r:
            assert r.status == 200 and int(r.headers["Content-Length"]) == len(data)
        for header, start, end in (("bytes=1000-1999", 1000, 2000), ("bytes=299000-", 299000, len(data)),
                                   ("bytes=-100", len(data) - 100, len(data)), ("bytes=5-999999999", 5, len(data))):
            async with s.get(url, headers={"Range": header}) as r:
                assert r.status == 206, header
                assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(data)}"
                assert await r.read() == data[start:end]


async def test_gzip_sibling_is_never_substituted(gateway_root: Path, gateway_url: str) -> None:
    """A client accepting gzip gets NAME, not NAME.gz (aiohttp's FileResponse would swap them)."""
    (gateway_root / "ds").mkdir()
    (gateway_root / "ds" / "a.bin").write_bytes(b"plain bytes")
    (gateway_root / "ds" / "a.bin.gz").write_bytes(b"\x1f\x8b not the object")
    status, headers, body = call(gateway_url, "GET", "/ds/a.bin", headers={"Accept-Encoding": "gzip, br"})
    assert (status, body) == (200, b"plain bytes") and "content-encoding" not in headers


def test_metrics_count_requests_and_bytes(gateway_root: Path, gateway_url: str) -> None:
    files = fake_dataset(gateway_root)
    path, data = next(iter(files.items()))

    def scrape() -> dict[str, float]:
        text = call(gateway_url, "GET", "/metrics")[2].decode()
        return {m[1]: float(m[2]) for m in re.finditer(r"^(\S+) (\S+)$", text, re.M)}

    before = scrape()
    for _ in range(3):
        assert call(gateway_url, "GET", f"/{path}")[0] == 200
    assert call(gateway_url, "GET", "/ds/missing")[0] == 404
    after = scrape()
    key = 'farfeed_requests_total{endpoint="object_get",status="200"}'
    assert after[key] - before.get(key, 0) == 3
    assert after["farfeed_bytes_sent_total"] - before["farfeed_bytes_sent_total"] >= 3 * len(data)
    assert after['farfeed_errors_total{endpoint="object_get"}'] >= 1
    assert after['farfeed_request_seconds_count{endpoint="object_get"}'] >= 4
    assert after["farfeed_inflight_requests"] == 1  # the scrape itself


def test_a_bug_is_a_logged_500_and_the_server_goes_on(
    gateway_root: Path, gateway_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(paths: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(objects, "find_datasets", broken)
    status, _, body = call(gateway_url, "GET", "/_farfeed/datasets")
    assert status == 500 and "simulated bug" in json.loads(body)["error"]
    assert "unexpected error" in caplog.text
    assert call(gateway_url, "GET", "/healthz")[0] == 200
