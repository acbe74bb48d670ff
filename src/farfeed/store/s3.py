"""`S3Store`: ``s3://BUCKET/PREFIX`` on AWS or any S3-compatible endpoint (MinIO, Ceph,
``rclone serve s3``), through aiobotocore. Reads are range GETs (coalesced, concurrent);
large writes are multipart uploads with parallel parts, aborted on failure."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit

import xxhash
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from farfeed.errors import BadRequestError, ConfigError, TransientError
from farfeed.store._paths import clean_prefix, clean_relpath
from farfeed.store._s3errors import s3_errors
from farfeed.store.base import Chunk, ObjectInfo, Parts, UploadResult, aiter_parts, split_parts
from farfeed.store.coalesce import CoalescingReads
from farfeed.store.options import StoreOptions

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


class S3Store(CoalescingReads):
    """Objects under ``PREFIX/`` in one bucket, ``url`` = ``s3://BUCKET/PREFIX``, reached
    with ``options`` (`StoreOptions`: the ``s3_*`` endpoint and keys, part sizes). Settings
    not passed in are read from the standard ``AWS_*`` environment variables when the
    store is created.

    >>> store = S3Store("s3://datasets/imagenet",
    ...                 options=StoreOptions(s3_endpoint_url="http://minio:9000"))
    """

    def __init__(self, url: str, *, options: StoreOptions | None = None) -> None:
        self.options = options or StoreOptions()
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.hostname:
            raise ConfigError(f"expected s3://BUCKET/PREFIX, got {url!r}")
        self.bucket = parts.hostname
        prefix = "/".join(p for p in parts.path.split("/") if p not in ("", "."))
        self.prefix = f"{clean_relpath(prefix)}/" if prefix else ""
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.concurrency = self.options.connections
        o = self.options
        self.endpoint_url = o.s3_endpoint_url or _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        self._access_key = o.s3_access_key or _env("AWS_ACCESS_KEY_ID")
        self._secret_key = o.s3_secret_key or _env("AWS_SECRET_ACCESS_KEY")
        self._session_token = None if o.s3_access_key else _env("AWS_SESSION_TOKEN")
        self.region = o.s3_region or _env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1"
        if self.endpoint_url is not None and not re.match(r"https?://[^/]", self.endpoint_url):
            raise ConfigError(
                f"S3 endpoint URL must start with http:// or https://, got {self.endpoint_url!r}"
            )
        if bool(self._access_key) != bool(self._secret_key):
            raise ConfigError(
                "S3 needs both an access key and a secret key, or neither (got only one)"
            )
        if isinstance(o.ssl, ssl.SSLContext):
            raise ConfigError("S3 takes ssl as a CA file path or False, not an SSLContext")
        self._verify: str | bool | None = None if o.ssl is True else o.ssl
        self._client: Any = None
        self._client_cm: AbstractAsyncContextManager[Any] | None = None
        self._owner: tuple[int, asyncio.AbstractEventLoop] | None = None

    # -- client -------------------------------------------------------------------------
    async def _s3(self) -> Any:
        """The aiobotocore client, made on first use in this process and event loop."""
        owner = (os.getpid(), asyncio.get_running_loop())
        if self._client is not None and self._owner != owner:
            self._client = self._client_cm = None  # belongs to another process / loop
        if self._client is None:
            config = AioConfig(
                s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                max_pool_connections=self.options.connections,
                connect_timeout=self.options.timeout,
                read_timeout=self.options.timeout,
                retries={"total_max_attempts": 1},  # the loader owns retries
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            cm = get_session().create_client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self._access_key,
                aws_secret_access_key=self._secret_key,
                aws_session_token=self._session_token,
                verify=self._verify,
                config=config,
            )
            async with s3_errors(self.url):
                try:
                    self._client = await cm.__aenter__()
                except ValueError as exc:
                    raise ConfigError(f"bad S3 setting: {exc}") from exc
            # botocore asks for `Expect: 100-continue` on every PUT/UploadPart: aiohttp then
            # waits for the interim reply before sending the body, which costs one round trip
            # per part across the distance and has no timeout of its own. Parts are sized
            # for the link and retried here, so bodies go straight away.
            self._client.meta.events.register_last("before-call.s3", _no_expect_continue)
            self._client_cm, self._owner = cm, owner
        return self._client

    async def close(self) -> None:
        cm, self._client, self._client_cm = self._client_cm, None, None
        if cm is not None:
            try:
                same = self._owner == (os.getpid(), asyncio.get_running_loop())
            except RuntimeError:
                same = False
            if same:
                await cm.__aexit__(None, None, None)

    def _key(self, path: str) -> tuple[str, str]:
        key = self.prefix + clean_relpath(path)
        return key, f"s3://{self.bucket}/{key}"

    # -- reads --------------------------------------------------------------------------
    async def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ConfigError(f"read needs offset >= 0 and length >= 0, got {offset!r}, {length!r}")
        key, display = self._key(path)
        if length == 0:
            return b""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if length is not None:
            args["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            args["Range"] = f"bytes={offset}-"
        client = await self._s3()
        async with s3_errors(display):
            resp = await client.get_object(**args)
            async with resp["Body"] as body:
                data: bytes = await body.read()
        match = _CONTENT_RANGE.match(resp.get("ContentRange") or "")
        total = int(match.group(3)) if match else (len(data) if "Range" not in args else None)
        want = length if length is not None else (len(data) if total is None else total - offset)
        if len(data) != want:
            if total is not None and offset + want > total:
                raise BadRequestError(
                    f"range offset={offset} length={length} is outside the object ({total} bytes)",
                    url=display,
                )
            raise TransientError(
                f"response cut short: got {len(data)} of {want} bytes", url=display
            )
        return data

    async def size(self, path: str) -> int:
        key, display = self._key(path)
        client = await self._s3()
        async with s3_errors(display):
            head = await client.head_object(Bucket=self.bucket, Key=key)
        return int(head["ContentLength"])

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose path starts with ``prefix``: ``list_objects_v2`` under the store
        prefix, all pages, sorted by path."""
        full = self.prefix + clean_prefix(prefix)
        client = await self._s3()
        found: list[ObjectInfo] = []
        async with s3_errors(self.url):
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", []):
                    found.append(ObjectInfo(obj["Key"][len(self.prefix) :], int(obj["Size"])))
        return sorted(found, key=lambda o: o.path)

    # -- writes -------------------------------------------------------------------------
    async def write(self, path: str, data: Chunk) -> None:
        """``data`` as object ``path``: ``put_object`` up to ``multipart_threshold`` bytes;
        above it, a multipart upload."""
        if len(data) > self.options.multipart_threshold:
            await self.write_parts(path, split_parts(data, self.options.part_size))
            return
        key, display = self._key(path)
        client = await self._s3()
        async with s3_errors(display):
            await client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))

    async def write_parts(self, path: str, parts: Parts, *, concurrency: int = 4) -> UploadResult:
        """Upload object ``path`` from ``parts`` in ``part_size`` pieces (the given parts
        are re-cut), ``concurrency`` at once; a whole object no larger than
        ``multipart_threshold`` goes as one ``put_object``."""
        from farfeed.store._s3multipart import MultipartUpload

        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency must be an int >= 1, got {concurrency!r}")
        key, display = self._key(path)
        digest = xxhash.xxh64()
        buffer = bytearray()
        upload: MultipartUpload | None = None
        size = 0
        try:
            async for part in aiter_parts(parts):
                digest.update(part)
                size += len(part)
                buffer += part
                limit = (
                    self.options.part_size
                    if upload
                    else max(self.options.multipart_threshold, self.options.part_size)
                )
                while len(buffer) > limit or (upload and len(buffer) >= self.options.part_size):
                    if upload is None:
                        upload = await MultipartUpload.start(
                            await self._s3(), self.bucket, key, display, concurrency
                        )
                    cut = self.options.part_size
                    await upload.send(bytes(buffer[:cut]))
                    del buffer[:cut]
            if upload is None:
                await self.write(path, bytes(buffer))
                return UploadResult(path, size, digest.hexdigest(), 1)
            if buffer:
                await upload.send(bytes(buffer))
            count = await upload.complete()
        except BaseException:
            if upload is not None:
                await asyncio.shield(upload.abort())
            raise
        return UploadResult(path, size, digest.hexdigest(), count)

    async def delete(self, path: str) -> None:
        key, display = self._key(path)
        client = await self._s3()
        async with s3_errors(display):
            await client.delete_object(Bucket=self.bucket, Key=key)


def _no_expect_continue(params: dict[str, Any], **_: Any) -> None:
    """botocore ``before-call`` hook: drop the ``Expect: 100-continue`` header."""
    params.get("headers", {}).pop("Expect", None)
