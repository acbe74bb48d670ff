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
        assert isinstance(store, S3Store)
        pending = await store.call("GET", "", store.url, query={"uploads": ""})
        assert b"<ListMultipartUploadsResult" in pending.body
        assert b"<Upload>" not in pending.body  # aborted, not left behind


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


def test_https_endpoint_with_a_private_ca(
    files_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS to the S3 endpoint: trusted through ca_file (``ssl=CA``), ``AWS_CA_BUNDLE`` or
    ``SSL_CERT_FILE``; refused with a CertificateError naming ca_file without one; unchecked
    with ``ssl=False``. Reads (farfeed's own GET client) and HEAD / PUT (aiohttp) alike."""
    import asyncio

    from helpers.http import make_cert

    from farfeed.errors import CertificateError
    from farfeed.store.testing import serve_s3

    cert, key = make_cert(tmp_path)

    async def use(opts: dict[str, object], *, read_first: bool = False) -> bytes:
        async with open_store("s3://bucket/ds", **opts) as store:  # type: ignore[arg-type]
            if read_first:
                return await store.read("sub/b.bin", 6, 5)
            await store.write("up.bin", b"uploaded")
            assert await store.size("up.bin") == 8
            return await store.read("sub/b.bin", 6, 5)

    with serve_s3(files_root, cert=cert, key=key) as s3:
        assert s3.endpoint_url.startswith("https://")
        opts = s3.store_options()
        assert asyncio.run(use({**opts, "ssl": str(cert)})) == b"world"
        assert asyncio.run(use({**opts, "ssl": False})) == b"world"
        for read_first in (True, False):
            with pytest.raises(CertificateError, match="ca_file"):
                asyncio.run(use(opts, read_first=read_first))
        monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
        assert asyncio.run(use(opts, read_first=True)) == b"world"
        monkeypatch.delenv("AWS_CA_BUNDLE")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        assert asyncio.run(use(opts)) == b"world"


async def test_read_into_fills_buffers_coalesced_and_alone(
    s3_server: S3Endpoint, files_root: Path
) -> None:
    data = (files_root / "bucket" / "ds" / "a.bin").read_bytes()
    ranges = [
        ByteRange("a.bin", 100, 50),  # these two share one GET
        ByteRange("sub/b.bin", 0, 5),
        ByteRange("a.bin", 160, 40),
        ByteRange("a.bin", 0, 0),
    ]
    outs = [memoryview(bytearray(r.length)) for r in ranges]
    landed: list[int] = []
    async with open_store("s3://bucket/ds", **s3_server.store_options()) as store:
        await store.read_into(ranges, outs, landed=landed.append)
        assert [bytes(o) for o in outs] == [data[100:150], b"hello", data[160:200], b""]
        assert sorted(landed) == [0, 1, 2, 3]
        with pytest.raises(BadRequestError):
            await store.read_into([ByteRange("sub/b.bin", 8, 10)], [memoryview(bytearray(10))])
        with pytest.raises(NotFoundError):
            await store.read_into([ByteRange("nope.bin", 0, 10)], [memoryview(bytearray(10))])


async def test_a_server_that_stops_answering_times_out(s3_server: S3Endpoint) -> None:
    import asyncio
    import time

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # takes the request, never answers
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    opts = {**s3_server.store_options(), "s3_endpoint_url": f"http://127.0.0.1:{port}"}
    try:
        async with open_store("s3://bucket/ds", timeout=0.5, **opts) as store:
            started = time.monotonic()
            with pytest.raises(TransientError, match="timeout"):
                await store.read("a.bin", 0, 4)
            assert time.monotonic() - started < 5
    finally:
        server.close()
