"""GatewayStore against the real gateway (``farfeed.server.serve_in_thread``)."""

from __future__ import annotations

import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from farfeed.errors import AccessDeniedError, BadRequestError, NotFoundError
from farfeed.server import ServerLimits, TokenTable, serve_in_thread
from farfeed.store import ByteRange, GatewayStore, ObjectInfo, open_store

MiB = 1024 * 1024
READER, WRITER = "reader-0123456789abcdef", "writer-0123456789abcdef"


def batch_requests(url: str) -> int:
    """How many batch-gets the gateway at ``url`` answered with 200 (from /metrics), read once
    no other request is in flight (the gateway counts a request after its last byte is sent)."""
    deadline = time.monotonic() + 10
    while True:
        text = urllib.request.urlopen(f"{url}/metrics").read().decode()
        settled = re.search(r"^farfeed_inflight_requests 1$", text, re.MULTILINE)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    match = re.search(r'farfeed_requests_total\{endpoint="batch",status="200"\} (\d+)', text)
    return int(match.group(1)) if match else 0


@pytest.fixture
def shards(gateway_root: Path) -> dict[str, bytes]:
    """Two random 'shards' in dataset ``ds`` under the gateway root."""
    (gateway_root / "ds").mkdir()
    (gateway_root / "ds" / "dataset.json").write_text(
        '{"kind": "images", "samples": 1, "bytes": 1}'
    )
    files = {"a.tar": os.urandom(200_000), "sub/b.tar": os.urandom(50_000)}
    for name, data in files.items():
        (gateway_root / "ds" / name).parent.mkdir(parents=True, exist_ok=True)
        (gateway_root / "ds" / name).write_bytes(data)
    return files


async def test_detects_gateway_and_reads(gateway_url: str, shards: dict[str, bytes]) -> None:
    a = shards["a.tar"]
    async with open_store(f"{gateway_url}/ds") as store:
        assert isinstance(store, GatewayStore) and store.native_batch
        assert store._http._session is None  # no socket held until first use (fork-safe)
        assert await store.read("a.tar", 1000, 500) == a[1000:1500]
        assert await store.read("a.tar", 199_000) == a[199_000:]
        assert await store.size("sub/b.tar") == 50_000
        assert await store.list() == [
            ObjectInfo("a.tar", 200_000),
            ObjectInfo("dataset.json", 44),
            ObjectInfo("sub/b.tar", 50_000),
        ]
        assert await store.list("sub/") == [ObjectInfo("sub/b.tar", 50_000)]


async def test_read_many_is_one_batch_request(gateway_url: str, shards: dict[str, bytes]) -> None:
    a, b = shards["a.tar"], shards["sub/b.tar"]
    ranges = [ByteRange("sub/b.tar", 10, 20), ByteRange("a.tar", 5000, 0)]
    ranges += [ByteRange("a.tar", i * 1000, 700) for i in range(150, 0, -7)]
    expected = [b[10:30], b""] + [a[i * 1000 : i * 1000 + 700] for i in range(150, 0, -7)]
    async with open_store(f"{gateway_url}/ds") as store:
        before = batch_requests(gateway_url)
        assert await store.read_many(ranges) == expected
        assert batch_requests(gateway_url) == before + 1
        assert [x async for x in store.iter_many(ranges)] == expected
        assert batch_requests(gateway_url) == before + 2


async def test_read_many_splits_over_server_limits(
    gateway_root: Path, shards: dict[str, bytes]
) -> None:
    a = shards["a.tar"]
    ranges = [ByteRange("a.tar", i * 100, 100) for i in range(10)]
    ranges.append(ByteRange("a.tar", 0, 150_000))  # alone over max_batch_bytes: a range GET
    limits = ServerLimits(max_batch_ranges=3, max_batch_bytes=100_000)
    with serve_in_thread(gateway_root, limits=limits) as url:
        async with open_store(f"{url}/ds") as store:
            got = await store.read_many(ranges)
            assert got == [a[r.offset : r.offset + r.length] for r in ranges]
            assert batch_requests(url) == 4  # 3 + 3 + 3 + 1 items


async def test_errors_are_translated(gateway_url: str, shards: dict[str, bytes]) -> None:
    async with open_store(f"{gateway_url}/ds") as store:
        with pytest.raises(NotFoundError, match="missing.tar"):
            await store.read("missing.tar", 0, 10)
        with pytest.raises(NotFoundError, match="missing.tar"):
            await store.read_many([ByteRange("a.tar", 0, 10), ByteRange("missing.tar", 0, 10)])
        with pytest.raises(BadRequestError, match="outside"):
            await store.read_many([ByteRange("a.tar", 199_990, 100)])
        with pytest.raises(NotFoundError):
            await store.size("missing.tar")
        with pytest.raises(AccessDeniedError, match="403"):
            await store.write("a.tar", b"not in checkpoints/")


async def test_tokens(gateway_root: Path, shards: dict[str, bytes]) -> None:
    tokens = TokenTable({READER: {"read"}, WRITER: {"read", "write"}})
    with serve_in_thread(gateway_root, tokens=tokens) as url:
        with pytest.raises(AccessDeniedError, match="401"):
            await open_store(f"{url}/ds")
        async with open_store(f"{url}/checkpoints/run1", token=READER) as store:
            assert await store.list() == []
            with pytest.raises(AccessDeniedError, match="403"):
                await store.write("x.bin", b"x")
        async with open_store(f"{url}/checkpoints/run1", token=WRITER) as store:
            await store.write("x.bin", b"x")
            assert await store.read("x.bin") == b"x"
        in_url = url.replace("http://", f"http://:{WRITER}@")
        async with open_store(f"{in_url}/checkpoints/run1") as store:
            assert await store.read("x.bin") == b"x"
            assert WRITER not in store.url
            with pytest.raises(NotFoundError) as caught:
                await store.read("missing.bin")
            assert WRITER not in str(caught.value)


async def test_write_list_delete(gateway_url: str, gateway_root: Path) -> None:
    async with open_store(f"{gateway_url}/checkpoints/run1") as store:
        await store.write("step-1/model.bin", b"old")
        await store.write("step-1/model.bin", b"new")
        await store.write("step-2/model.bin", b"")
        assert (
            gateway_root / "checkpoints" / "run1" / "step-1" / "model.bin"
        ).read_bytes() == b"new"
        assert [o.path for o in await store.list("step-")] == [
            "step-1/model.bin",
            "step-2/model.bin",
        ]
        await store.delete("step-1/model.bin")
        await store.delete("step-1/model.bin")  # missing: not an error
        assert await store.list() == [ObjectInfo("step-2/model.bin", 0)]
