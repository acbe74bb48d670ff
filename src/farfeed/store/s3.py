"""`S3Store`: ``s3://BUCKET/PREFIX`` on AWS or any S3-compatible endpoint (MinIO, Ceph,
``rclone serve s3``). Reads are range GETs (coalesced, concurrent); large writes are
multipart uploads with parallel parts, aborted on failure.

The client is farfeed's own: SigV4-signed requests (`farfeed.store._s3sign`) on the
same aiohttp keep-alive pool the HTTP backends use. A range GET then costs one signature
and one small HTTP exchange (~0.2 ms of CPU) instead of botocore's request pipeline
(~4 ms), and no S3 SDK pins a ``botocore`` that fights the user's ``boto3``
(docs/DEPENDENCIES.md says why not aiobotocore, or obstore).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from urllib.parse import urlsplit
from xml.etree import ElementTree

import numpy as np
import xxhash
from yarl import URL

from farfeed.checksum import digest_function
from farfeed.errors import BadRequestError, ConfigError, StoreError, TransientError
from farfeed.store._http import HttpClient
from farfeed.store._paths import clean_prefix, clean_relpath
from farfeed.store._s3errors import check_s3_status, s3_error, s3_errors
from farfeed.store._s3get import RangeGetClient
from farfeed.store._s3sign import Keys, Signer, canonical_query, uri_encode
from farfeed.store.base import (
    ByteRange,
    Chunk,
    ObjectInfo,
    Parts,
    UploadResult,
    aiter_parts,
    split_parts,
)
from farfeed.store.coalesce import CoalescingReads, Span, coalesce
from farfeed.store.options import StoreOptions

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


class S3Response:
    """What `S3Store.call` got back: the status, the headers and the whole body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class S3Store(CoalescingReads):
    """Objects under ``PREFIX/`` in one bucket, ``url`` = ``s3://BUCKET/PREFIX``, reached
    with ``options`` (`StoreOptions`: the ``s3_*`` endpoint and keys, TLS, part sizes).
    Settings not passed in are read from the standard ``AWS_*`` environment variables when
    the store is created (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``;
    for an https endpoint without ``ssl``, the CA bundle in ``AWS_CA_BUNDLE``, else in
    ``SSL_CERT_FILE``). With an endpoint, buckets are addressed path-style
    (``http://minio:9000/BUCKET/KEY``), as every S3-compatible server accepts. Keys may
    also come from botocore's chain when it is installed (`farfeed.store._s3sign`).

    The first read of each object waits until that first request is answered before
    others to the same object go out (`first-touch`), so a store that does work per
    object on first touch sees one request, not hundreds at once.

    >>> store = S3Store("s3://datasets/imagenet",
    ...                 options=StoreOptions(s3_endpoint_url="http://minio:9000"))
    """

    def __init__(self, url: str, *, options: StoreOptions | None = None) -> None:
        o = options or StoreOptions()
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.hostname:
            raise ConfigError(f"expected s3://BUCKET/PREFIX, got {url!r}")
        self.bucket = parts.hostname
        prefix = "/".join(p for p in parts.path.split("/") if p not in ("", "."))
        self.prefix = f"{clean_relpath(prefix)}/" if prefix else ""
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.concurrency = o.connections
        self.endpoint_url = o.s3_endpoint_url or _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        access_key = o.s3_access_key or _env("AWS_ACCESS_KEY_ID")
        secret_key = o.s3_secret_key or _env("AWS_SECRET_ACCESS_KEY")
        token = None if o.s3_access_key else _env("AWS_SESSION_TOKEN")
        self.region = o.s3_region or _env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1"
        if self.endpoint_url is not None and not re.match(r"https?://[^/]", self.endpoint_url):
            raise ConfigError(
                f"S3 endpoint URL must start with http:// or https://, got {self.endpoint_url!r}"
            )
        if bool(access_key) != bool(secret_key):
            raise ConfigError(
                "S3 needs both an access key and a secret key, or neither (got only one)"
            )
        ca_bundle = _env("AWS_CA_BUNDLE", "SSL_CERT_FILE")
        if o.ssl is None and ca_bundle and (self.endpoint_url or "https").startswith("https"):
            o = replace(o, ssl=ca_bundle)  # checked (readable PEM) by HttpClient below
        self.options = o
        self._origin, self._host, self._base = self._address()
        keys = Keys(access_key, secret_key, token) if access_key and secret_key else None
        self._signer = Signer(self.region, keys, self.url)
        self._http = HttpClient(o)  # checks the CA file now
        self._raw = RangeGetClient(self._origin, o, display=self.url)
        self._gate_owner: tuple[int, asyncio.AbstractEventLoop] | None = None
        self._touched: set[str] = set()
        self._touching: dict[str, asyncio.Future[None]] = {}

    def _address(self) -> tuple[str, str, str]:
        """(origin, Host header, path before the key): path-style at a given endpoint;
        virtual-hosted at AWS when the bucket name allows it."""
        if self.endpoint_url is None:
            aws = f"s3.{self.region}.amazonaws.com"
            if re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", self.bucket):
                host = f"{self.bucket}.{aws}"
                return f"https://{host}", host, "/"
            return f"https://{aws}", aws, f"/{uri_encode(self.bucket, keep_slash=False)}/"
        parts = urlsplit(self.endpoint_url)
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"bad port in S3 endpoint URL {self.endpoint_url!r}: {exc}") from exc
        name = parts.hostname or ""
        name = f"[{name}]" if ":" in name else name
        host = name if port in (None, _DEFAULT_PORTS[parts.scheme]) else f"{name}:{port}"
        base = "/".join(p for p in parts.path.split("/") if p)
        base = f"/{base}/" if base else "/"
        return f"{parts.scheme}://{host}", host, f"{base}{uri_encode(self.bucket, keep_slash=False)}/"

    # -- requests -----------------------------------------------------------------------
    def _request(
        self, method: str, key: str, query: Mapping[str, str] | None = None
    ) -> tuple[URL, dict[str, str]]:
        """The URL and signed headers for ``method`` on object ``key`` ("" for the bucket)."""
        path = self._base + uri_encode(key, keep_slash=True)
        qs = canonical_query(query) if query else ""
        headers = self._signer.headers(method, self._host, path, qs)
        return URL(f"{self._origin}{path}{'?' + qs if qs else ''}", encoded=True), headers

    async def call(
        self,
        method: str,
        key: str,
        display: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Chunk | None = None,
    ) -> S3Response:
        """One S3 request, answered in full; error replies raise the farfeed error. Used by
        every call but the range reads (`_get`), and by `farfeed.store._s3multipart`.

        ``method`` (GET, PUT, POST, HEAD, DELETE) on object ``key`` ("" for the bucket),
        with the ``query`` parameters and ``body`` given; ``display`` is the ``s3://`` URL
        that errors name."""
        url, headers = self._request(method, key, query)
        session = await self._http.session()
        async with s3_errors(display):
            async with session.request(method, url, headers=headers, data=body) as resp:
                await check_s3_status(resp, display)
                data = await resp.read()
                return S3Response(resp.status, resp.headers, data)

    async def close(self) -> None:
        await self._raw.close()
        await self._http.close()

    def _key(self, path: str) -> tuple[str, str]:
        key = self.prefix + clean_relpath(path)
        return key, f"s3://{self.bucket}/{key}"

    # -- first touch --------------------------------------------------------------------
    async def _first_touch(self, key: str) -> asyncio.Future[None] | None:
        """None once ``key`` has been read in this process; else waits while another task
        makes the first request, or returns the future this caller must resolve (it is the
        first)."""
        owner = (os.getpid(), asyncio.get_running_loop())
        if self._gate_owner != owner:  # a fork or a new loop: the old futures are unusable
            self._gate_owner, self._touched, self._touching = owner, set(), {}
        while key not in self._touched:
            pending = self._touching.get(key)
            if pending is None:
                first: asyncio.Future[None] = owner[1].create_future()
                self._touching[key] = first
                return first
            await asyncio.shield(pending)  # the first one failed or finished: look again
        return None

    def _touch_done(self, key: str, first: asyncio.Future[None], ok: bool) -> None:
        if ok:
            self._touched.add(key)
        if self._touching.get(key) is first:
            del self._touching[key]
        first.set_result(None)

    # -- reads --------------------------------------------------------------------------
    async def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ConfigError(f"read needs offset >= 0 and length >= 0, got {offset!r}, {length!r}")
        key, display = self._key(path)
        if length == 0:
            return b""
        if length is None:
            return bytes(await self._get(key, display, offset, None, None))
        out = bytearray(length)
        await self._get(key, display, offset, length, memoryview(out))
        return bytes(out)

    async def read_into(
        self,
        ranges: Sequence[ByteRange],
        outs: Sequence[memoryview],
        *,
        landed: Callable[[int], None] | None = None,
        digests: np.ndarray | None = None,
        checksum: str = "xxh64",
    ) -> None:
        """Range ``k`` of ``ranges`` into ``outs[k]``: neighbouring ranges of one object
        coalesced into one GET (`farfeed.store.coalesce`), the GETs concurrent, a lone
        range's bytes received straight into its buffer; ``landed(k)`` as each is in place;
        ``digests[k]``: a lone range's ``checksum``, hashed as it arrives (see `Store.read_into`)."""
        for r, out in zip(ranges, outs, strict=True):
            if len(out) != r.length:
                raise ConfigError(f"buffer of {len(out)} bytes for a range of {r.length}")
        spans = coalesce(ranges, max_gap=self.coalesce_gap, max_span=self.max_span)
        digest = digest_function(checksum)

        async def one(span: Span) -> None:
            key, display = self._key(span.path)
            if span.length:
                alone = len(span.members) == 1 and span.members[0][1:] == (0, span.length)
                if alone:
                    k = span.members[0][0]
                    await self._get(key, display, span.offset, span.length, outs[k])
                    if digests is not None:  # just received: still in the cache
                        digests[k] = digest(outs[k])
                else:
                    buffer = memoryview(bytearray(span.length))
                    await self._get(key, display, span.offset, span.length, buffer)
                    for k, start, length in span.members:
                        outs[k][:] = buffer[start : start + length]
            if landed is not None:
                for k, _, _ in span.members:
                    landed(k)

        tasks = [asyncio.ensure_future(one(span)) for span in spans]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _get(
        self, key: str, display: str, offset: int, length: int | None, out: memoryview | None
    ) -> bytearray | memoryview:
        """One range GET through the first-touch gate: the bytes in ``out`` (returned), or
        in a new buffer when ``out`` is None (``length`` None: to the end)."""
        if key in self._touched and self._gate_owner is not None:
            return await self._range_get(key, display, offset, length, out)
        first = await self._first_touch(key)
        if first is None:
            return await self._range_get(key, display, offset, length, out)
        ok = False
        try:
            data = await self._range_get(key, display, offset, length, out)
            ok = True
            return data
        finally:
            self._touch_done(key, first, ok)

    async def _range_get(
        self, key: str, display: str, offset: int, length: int | None, out: memoryview | None
    ) -> bytearray | memoryview:
        path = self._base + uri_encode(key, keep_slash=True)
        lines = self._signer.headers("GET", self._host, path, "")
        if length is not None:
            lines["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            lines["Range"] = f"bytes={offset}-"
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines.items())
        reply = await self._raw.get(f"{request}\r\n".encode("latin-1"), out)
        content_range = reply.headers.get("content-range", "")
        if reply.body is None:  # a 200/206 of exactly len(out) bytes is in out
            assert out is not None
            if content_range.startswith(f"bytes {offset}-{offset + len(out) - 1}/"):
                return out
            if not content_range and offset == 0:  # the whole object is the range
                return out
            reply.body = bytearray(out)  # not the range asked for: judged below
        if reply.status == 416:
            raise BadRequestError(
                f"range offset={offset} length={length} is outside the object", url=display
            )
        if reply.status >= 300:
            raise s3_error(reply.status, reply.body.decode("utf-8", "replace"), display)
        data: bytearray | memoryview = reply.body
        match = _CONTENT_RANGE.match(content_range)
        if match:  # 206, or 200 from servers that answer ranges so (rclone serve s3)
            total: int | None = int(match.group(3))
            if int(match.group(1)) != offset:
                raise TransientError(f"S3 sent {content_range!r} for offset {offset}", url=display)
        else:
            total = len(data)
            if "Range" in lines:  # the server ignored the range: the whole object came
                data = memoryview(data)[offset : None if length is None else offset + length]
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
        if out is None:
            return data
        out[:] = data
        return out

    async def size(self, path: str) -> int:
        key, display = self._key(path)
        first = await self._first_touch(key)
        ok = False
        try:
            head = await self.call("HEAD", key, display)
            ok = True
        finally:
            if first is not None:
                self._touch_done(key, first, ok)
        length = head.headers.get("Content-Length", "")
        if not length.isdigit():
            raise StoreError(f"S3 sent no Content-Length for HEAD (got {length!r})", url=display)
        return int(length)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose path starts with ``prefix``: ``ListObjectsV2`` under the store
        prefix, all pages, sorted by path."""
        full = self.prefix + clean_prefix(prefix)
        found: list[ObjectInfo] = []
        query = {"list-type": "2", "prefix": full}
        while True:
            reply = await self.call("GET", "", self.url, query=query)
            try:
                root = ElementTree.fromstring(reply.body)
            except ElementTree.ParseError as exc:
                raise TransientError(f"S3 list reply is not XML: {exc}", url=self.url) from exc
            token = None
            truncated = False
            for node in root:
                tag = node.tag.rsplit("}", 1)[-1]
                if tag == "Contents":
                    fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in node}
                    found.append(ObjectInfo(fields["Key"][len(self.prefix) :], int(fields["Size"])))
                elif tag == "IsTruncated":
                    truncated = (node.text or "").strip().lower() == "true"
                elif tag == "NextContinuationToken":
                    token = node.text
            if not truncated or not token:
                break
            query = {**query, "continuation-token": token}
        return sorted(found, key=lambda o: o.path)

    # -- writes -------------------------------------------------------------------------
    async def write(self, path: str, data: Chunk) -> None:
        """``data`` as object ``path``: one ``PutObject`` up to ``multipart_threshold``
        bytes; above it, a multipart upload."""
        if len(data) > self.options.multipart_threshold:
            await self.write_parts(path, split_parts(data, self.options.part_size))
            return
        key, display = self._key(path)
        await self.call("PUT", key, display, body=data)

    async def write_parts(self, path: str, parts: Parts, *, concurrency: int = 4) -> UploadResult:
        """Upload object ``path`` from ``parts`` in ``part_size`` pieces (the given parts
        are re-cut), ``concurrency`` at once; a whole object no larger than
        ``multipart_threshold`` goes as one ``PutObject``. On any failure (or
        cancellation) the upload is aborted: the old object, if any, stays."""
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
                        upload = await MultipartUpload.start(self, key, display, concurrency)
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
        await self.call("DELETE", key, display)  # S3 answers 204 for a missing key too
