"""S3Store against a real S3 server (``rclone serve s3`` over a folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from farfeed.errors import (
    AccessDeniedError,
    BadRequestError,
    ConfigError,
    NotFoundError,
    TransientError,
)
from farfeed.store import ByteRange, ObjectInfo, S3Store, open_store
from farfeed.store.testing import S3Endpoint


async def test_reads_ranges_and_many(s3_server: S3Endpoint, files_root: Path) -> None:
    data = (files_root / "bucket" / "ds" / "a.bin").read_bytes()
    async with open_store("s3://bucket/ds", **s3_server.store_options()) as store:
        assert isinstance(store, S3Store)
        assert await store.read("a.bin", 100, 50) == data[100:150]
        assert await store.read("a.bin", 16000) == data[16000:]
        assert await store.read("sub/b.bin") == b"hello world"
        ranges = [
            ByteRange("sub/b.bin", 6, 5),
            ByteRange("a.bin", 9000, 10),
            ByteRange("a.bin", 5, 10),
        ]
        assert await store.read_many(ranges) == [b"world", data[9000:9010], data[5:15]]
        assert await store.size("a.bin") == len(data)


async def test_write_list_delete(s3_server: S3Endpoint, files_root: Path) -> None:
    async with open_store("s3://bucket/ckpt", **s3_server.store_options()) as store:
        await store.write("run1/a.bin", b"first")
        await store.write("run1/a.bin", b"second version")
        await store.write("run1/b.bin", b"")
        assert await store.read("run1/a.bin") == b"second version"
        assert (files_root / "bucket" / "ckpt" / "run1" / "a.bin").read_bytes() == b"second version"
        assert await store.list("run1/") == [
            ObjectInfo("run1/a.bin", 14),
            ObjectInfo("run1/b.bin", 0),
        ]
        assert await store.list("nothing") == []
        await store.delete("run1/a.bin")
        await store.delete("run1/a.bin")  # missing: not an error
        assert [o.path for o in await store.list()] == ["run1/b.bin"]


async def test_multipart_above_threshold(s3_server: S3Endpoint, files_root: Path) -> None:
    payload = os.urandom(5 * 1024 * 1024 + 123)
    async with open_store(
        "s3://bucket/ckpt",
        multipart_threshold=1024 * 1024,
        part_size=1024 * 1024,
        **s3_server.store_options(),
    ) as store:
        await store.write("big.bin", payload)
        assert (files_root / "bucket" / "ckpt" / "big.bin").read_bytes() == payload
        chunks = [payload[i : i + 300_000] for i in range(0, len(payload), 300_000)]
        result = await store.write_parts("big2.bin", chunks, concurrency=3)
        assert (result.size, result.parts) == (len(payload), 6)
        assert await store.read("big2.bin", 4_000_000, 1000) == payload[4_000_000:4_001_000]


async def test_failed_multipart_leaves_old_object(s3_server: S3Endpoint, files_root: Path) -> None:
    async with open_store(
        "s3://bucket/ckpt",
        multipart_threshold=1024 * 1024,
        part_size=1024 * 1024,
        **s3_server.store_options(),
    ) as store:
        await store.write("model.bin", b"good")

        async def parts():  # type: ignore[no-untyped-def]
            for _ in range(4):
                yield os.urandom(1024 * 1024)
            raise RuntimeError("trainer crashed mid-checkpoint")

        with pytest.raises(RuntimeError):
            await store.write_parts("model.bin", parts())
        assert await store.read("model.bin") == b"good"


async def test_errors_translated(s3_server: S3Endpoint, unused_tcp_port: int) -> None:
    opts = s3_server.store_options()
    async with open_store("s3://bucket/ds", **opts) as store:
        with pytest.raises(NotFoundError):
            await store.read("missing.bin", 0, 4)
        with pytest.raises(NotFoundError):
            await store.size("missing.bin")
        with pytest.raises(BadRequestError):
            await store.read("sub/b.bin", 5, 100)
    async with open_store("s3://no-such-bucket/ds", **opts) as store:
        with pytest.raises(NotFoundError):
            await store.read("a.bin", 0, 4)
    async with open_store("s3://bucket/ds", **{**opts, "s3_secret_key": "wrong"}) as store:
        with pytest.raises(AccessDeniedError):
            await store.read("a.bin", 0, 4)
    async with open_store(
        "s3://bucket/ds", **{**opts, "s3_endpoint_url": f"http://127.0.0.1:{unused_tcp_port}"}
    ) as store:
        with pytest.raises(TransientError):
            await store.read("a.bin", 0, 4)


async def test_settings_from_environment(
    s3_server: S3Endpoint, files_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    store = await open_store("s3://bucket/ds")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # read at creation, not later
    assert await store.read("sub/b.bin", 0, 5) == b"hello"
    await store.close()
    with pytest.raises(ConfigError, match="minio:9000"):
        await open_store("s3://bucket/ds", s3_endpoint_url="minio:9000")


async def test_keys_in_url_are_used_and_hidden(s3_server: S3Endpoint) -> None:
    url = f"s3://{s3_server.access_key}:{s3_server.secret_key}@bucket/ds"
    async with open_store(url, s3_endpoint_url=s3_server.endpoint_url) as store:
        assert await store.read("sub/b.bin", 0, 5) == b"hello"
        assert store.url == "s3://bucket/ds"
