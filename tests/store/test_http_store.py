"""HttpStore against a real static server (``rclone serve http``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from farfeed.errors import BadRequestError, NotFoundError, StoreError, TransientError
from farfeed.store import ByteRange, HttpStore, open_store


async def test_open_store_detects_static_http(http_server: str, files_root: Path) -> None:
    data = (files_root / "bucket" / "ds" / "a.bin").read_bytes()
    async with open_store(f"{http_server}/bucket/ds") as store:
        assert isinstance(store, HttpStore)
        assert not store.native_batch
        assert await store.read("a.bin", 100, 50) == data[100:150]
        assert await store.read("a.bin", 16000) == data[16000:]
        assert await store.read("a.bin") == data
        assert await store.size("sub/b.bin") == 11


async def test_read_many_keeps_order_and_coalesces(http_server: str, files_root: Path) -> None:
    data = (files_root / "bucket" / "ds" / "a.bin").read_bytes()
    ranges = [
        ByteRange("a.bin", 9000, 10),
        ByteRange("sub/b.bin", 0, 5),
        ByteRange("a.bin", 10, 20),
        ByteRange("a.bin", 15, 20),  # overlaps the one before
        ByteRange("a.bin", 0, 0),
    ]
    async with open_store(f"{http_server}/bucket/ds") as store:
        expected = [data[9000:9010], b"hello", data[10:30], data[15:35], b""]
        assert await store.read_many(ranges) == expected
        assert [x async for x in store.iter_many(ranges)] == expected


async def test_errors_and_read_only(http_server: str) -> None:
    async with open_store(f"{http_server}/bucket/ds") as store:
        with pytest.raises(NotFoundError, match="missing.bin"):
            await store.read("missing.bin", 0, 10)
        with pytest.raises(NotFoundError):
            await store.size("missing.bin")
        with pytest.raises(BadRequestError, match="outside"):
            await store.read("sub/b.bin", 5, 100)
        with pytest.raises(StoreError, match="read-only"):
            await store.write("x.bin", b"x")
        with pytest.raises(StoreError, match="read-only"):
            await store.delete("a.bin")
        with pytest.raises(StoreError, match="listing is not supported"):
            await store.list()


async def test_connection_refused_is_transient(unused_tcp_port: int) -> None:
    store = HttpStore(f"http://127.0.0.1:{unused_tcp_port}/ds")
    with pytest.raises(TransientError, match=f"127.0.0.1:{unused_tcp_port}/ds/a.bin"):
        await store.read("a.bin", 0, 10)
    await store.close()
