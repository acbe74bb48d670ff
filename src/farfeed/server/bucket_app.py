"""The gateway in front of a bucket: the same reading API as over a folder, read-only.

    farfeed serve s3://datasets/farfeed --s3-endpoint-url http://minio:9000

Reads (``GET``/``HEAD`` of an object or a ``Range``, batch-get, listings, info, metrics)
answer exactly as a folder-backed gateway does (docs/HTTP_API.md), with bytes cut from
the shared block cache (`farfeed.server.bucket`): frames are written as views of cached
blocks, with no joins. Writes (``PUT``, ``DELETE``, chunked uploads) are refused with
``405``: checkpoints go to the bucket directly (``farfeed.checkpoint`` takes ``s3://``
URLs), where the store's own multipart uploads are already atomic; a write-through copy
in the gateway would add a hop and a second place an upload can half-fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from farfeed import __version__
from farfeed.server.app import gateway_application
from farfeed.server.auth import TokenTable, needs
from farfeed.server.batch import CONTENT_TYPE, parse_batch
from farfeed.server.batch_sendfile import FRAME, TRAILER
from farfeed.server.bucket import Bucket, BucketSettings, is_bucket_url, store_errors
from farfeed.server.limits import ServerLimits
from farfeed.server.metrics import Metrics
from farfeed.server.objects import API_VERSION, parse_range, range_response
from farfeed.server.paths import RESERVED, check_prefix, split_path
from farfeed.server.responses import ApiError, json_response
from farfeed.store import Store
from farfeed.store.access import redact_url


@dataclass
class BucketGateway:
    """What every handler of a bucket gateway needs (one per process)."""

    url: str
    settings: BucketSettings
    limits: ServerLimits
    metrics: Metrics = field(default_factory=Metrics)
    bucket: Bucket | None = None  # set when the app starts (the store belongs to its loop)

    def live(self) -> Bucket:
        if self.bucket is None:
            raise ApiError(503, "the gateway is still starting", headers={"Retry-After": "1"})
        return self.bucket


BUCKET_GATEWAY = web.AppKey("farfeed_bucket_gateway", BucketGateway)


def app_for(
    root: str | Path,
    *,
    tokens: TokenTable | None = None,
    limits: ServerLimits = ServerLimits(),
    bucket: BucketSettings | None = None,
) -> web.Application:
    """The gateway app for ROOT: `create_bucket_app` for ``s3://...``, else the folder one."""
    if is_bucket_url(str(root)):
        return create_bucket_app(str(root), settings=bucket or BucketSettings(), tokens=tokens, limits=limits)
    from farfeed.server.app import create_app

    return create_app(root, tokens=tokens, limits=limits)


def create_bucket_app(
    url: str,
    *,
    settings: BucketSettings = BucketSettings(),
    tokens: TokenTable | None = None,
    limits: ServerLimits = ServerLimits(),
) -> web.Application:
    """The gateway application serving the datasets under ``url`` (``s3://BUCKET/PREFIX``).

    >>> web.run_app(create_bucket_app("s3://datasets/farfeed",
    ...             settings=BucketSettings(endpoint_url="http://minio:9000")), port=8470)
    """
    opening = settings.opening(url)  # bad settings fail here, in the caller
    shown = redact_url(url)
    gw = BucketGateway(shown, settings, limits)
    hide = [shown, url, *(u for u in [settings.endpoint_url] if u)]  # never in an answer
    app = gateway_application(gw.metrics, hide=hide, tokens=tokens, limits=limits)
    app[BUCKET_GATEWAY] = gw
    _add_routes(app.router)

    async def store_context(app: web.Application) -> AsyncIterator[None]:
        store: Store = await opening
        gw.bucket = Bucket.over(store, settings)
        yield
        await store.close()

    app.cleanup_ctx.append(store_context)
    return app


def _add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", healthz, name="healthz")
    router.add_get("/metrics", metrics, name="metrics")
    router.add_get("/_farfeed/info", info, name="info")
    router.add_get("/_farfeed/datasets", datasets, name="datasets")
    router.add_get("/_farfeed/list", list_objects, name="list")
    router.add_post("/_farfeed/batch", batch_get, name="batch")
    router.add_route("*", "/_farfeed/uploads", read_only, name="upload_create")
    router.add_route("*", "/_farfeed/uploads/{tail:.*}", read_only, name="upload")
    obj = router.add_resource("/{path:.+}", name="object")
    obj.add_route("GET", get_object)
    obj.add_route("HEAD", get_object)
    obj.add_route("*", read_only)


def _gw(request: web.Request) -> BucketGateway:
    return request.app[BUCKET_GATEWAY]


@needs(None)
async def healthz(request: web.Request) -> web.StreamResponse:
    """``GET /healthz``: ``ok`` while the process serves (the store may still be down)."""
    return web.Response(text="ok")


@needs(None)
async def read_only(request: web.Request) -> web.StreamResponse:
    """Every write: ``405`` saying where writes go (open to all, so a write-only token
    learns it too)."""
    raise ApiError(
        405, "this gateway serves a bucket read-only: write checkpoints to the bucket "
        "directly (farfeed.checkpoint with an s3:// URL)", headers={"Allow": "GET, HEAD"},
    )  # fmt: skip


@needs("read")
async def info(request: web.Request) -> web.StreamResponse:
    """``GET /_farfeed/info``: as over a folder, plus ``source`` and ``writable``."""
    limits = _gw(request).limits
    return json_response(
        {
            "farfeed": __version__, "api": API_VERSION, "max_batch_ranges": limits.max_batch_ranges,
            "max_batch_bytes": limits.max_batch_bytes, "max_batch_body": limits.max_batch_body,
            "max_part_bytes": limits.max_part_bytes, "worker": os.getpid(), "source": "bucket",
            "writable": False,
        }
    )  # fmt: skip


@needs("read")
async def metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics``: the gateway's counters and its block cache's."""
    gw = _gw(request)
    text = gw.metrics.render()
    if gw.bucket is not None:
        cache = gw.bucket.cache
        s = cache.stats
        rows = [
            ("farfeed_cache_hits_total", "counter", "Block lookups answered from the cache.", s.hits),
            ("farfeed_cache_misses_total", "counter", "Block lookups that waited on a store read.", s.misses),
            ("farfeed_cache_joined_total", "counter", "Misses that joined a read already in flight.", s.joined),
            ("farfeed_store_requests_total", "counter", "Block reads sent to the object store.", s.store_reads),
            ("farfeed_store_bytes_total", "counter", "Bytes asked of the object store.", s.store_bytes),
            ("farfeed_cache_exact_reads_total", "counter", "Misses read as exact ranges: blocks did not pay off.", s.exact_reads),
            ("farfeed_cache_evicted_total", "counter", "Blocks dropped to stay under the cache size.", s.evicted),
            ("farfeed_cache_bytes", "gauge", "Bytes of blocks held in the cache now.", cache.used),
            ("farfeed_cache_capacity_bytes", "gauge", "The cache's size (--cache-mib).", cache.capacity),
        ]
        for name, kind, help_text, value in rows:
            text += f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name} {value}\n"
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


def _object_path(path: object, what: str = "path") -> str:
    """A client path checked like a folder gateway's (400s) and joined with single slashes."""
    return "/".join(split_path(path, what=what))


def _visible(path: str) -> bool:
    return not any(p.startswith((".", RESERVED)) for p in path.split("/"))


@needs("read")
async def list_objects(request: web.Request) -> web.StreamResponse:
    """``GET /_farfeed/list?prefix=P``: objects under the bucket prefix starting with P."""
    prefix = check_prefix(request.query.get("prefix", ""))
    bucket = _gw(request).live()
    with store_errors(prefix):
        found = await bucket.store.list(prefix)
    objects = [{"path": o.path, "size": o.size} for o in found if _visible(o.path)]
    return json_response({"objects": objects})


@needs("read")
async def datasets(request: web.Request) -> web.StreamResponse:
    """``GET /_farfeed/datasets``: every ``NAME/dataset.json`` directly under the prefix."""
    bucket = _gw(request).live()
    with store_errors(""):
        found = await bucket.store.list("")
    metas = [o for o in found if o.path.count("/") == 1 and o.path.endswith("/dataset.json") and _visible(o.path)]

    async def describe(path: str, size: int) -> dict[str, Any]:
        item: dict[str, Any] = {"name": path.split("/")[0], "kind": None, "samples": None, "bytes": None}
        try:
            body = b"".join([bytes(v) async for _, v in bucket.views([(path, size, 0, size)])])
            meta = json.loads(body)
            for key in ("kind", "samples", "bytes"):
                item[key] = meta.get(key)
        except (ValueError, AttributeError) as exc:
            item["error"] = f"unreadable dataset.json: {exc.__class__.__name__}"
        return item

    return json_response({"datasets": list(await asyncio.gather(*(describe(o.path, o.size) for o in metas)))})


@needs("read")
async def get_object(request: web.Request) -> web.StreamResponse:
    """``GET``/``HEAD /PATH``: the object or one ``Range`` of it, from cached blocks."""
    path = _object_path(request.match_info["path"])
    bucket = _gw(request).live()
    size = await bucket.size(path)
    start, count, partial = parse_range(request.headers.get("Range"), size)
    pieces = bucket.views([(path, size, start, count)]) if request.method != "HEAD" and count else None
    first = await _first(pieces)  # a store that is down is a clean 503, before any header
    resp = range_response(start, count, size, partial=partial)
    await resp.prepare(request)
    if pieces is not None and first is not None:
        await _write_rest(request, resp, first, pieces, frames=False)
    await resp.write_eof()
    return resp


@needs("read")
async def batch_get(request: web.Request) -> web.StreamResponse:
    """``POST /_farfeed/batch``: check every item (404 / 416 before any byte), then stream
    ``[index][length][payload]`` frames cut from cached blocks, and the trailer."""
    gw = _gw(request)
    limits = gw.limits
    if request.content_length is not None and request.content_length > limits.max_batch_body:
        raise ApiError(413, f"batch body of {request.content_length} bytes is over the {limits.max_batch_body}-byte limit")
    body = await request.read()
    gw.metrics.bytes_received += len(body)
    wanted = parse_batch(body, limits)
    bucket = gw.live()
    paths: dict[str, str] = {}
    first: dict[str, int] = {}  # object -> the first range naming it
    for i, (path, _, _) in enumerate(wanted):
        if path not in paths:
            try:
                paths[path] = _object_path(path)
            except ApiError as exc:
                raise ApiError(exc.status, f"range {i}: {exc.message}") from None
            first.setdefault(paths[path], i)

    async def sized(path: str) -> int:
        try:
            return await bucket.size(path)
        except ApiError as exc:
            raise ApiError(exc.status, f"range {first[path]}: {exc.message}", headers=exc.headers) from None

    sizes = dict(zip(first, await asyncio.gather(*(sized(p) for p in first)), strict=True))
    items: list[tuple[str, int, int, int]] = []
    for i, (path, offset, length) in enumerate(wanted):
        size = sizes[paths[path]]
        if offset + length > size:
            raise ApiError(416, f"range {i} ({path!r}): bytes {offset}..{offset + length} are outside the {size}-byte object")
        items.append((paths[path], size, offset, length))
    pieces = bucket.views(items)
    head = await _first(pieces)  # a store that is down is a clean 503, before any header
    resp = web.StreamResponse(status=200)
    resp.content_type = CONTENT_TYPE
    resp.content_length = sum(FRAME.size + length for _, _, _, length in items) + FRAME.size
    await resp.prepare(request)
    try:
        await _write_rest(request, resp, head, pieces, frames=True, items=items)
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception as exc:  # headers are out: the only honest answer is to cut the stream
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError(f"batch response cut short: {exc}") from exc
    await resp.write_eof()
    return resp


Piece = tuple[int, memoryview]


async def _first(pieces: AsyncIterator[Piece] | None) -> Piece | None:
    if pieces is None:
        return None
    return await anext(pieces, None)


async def _write_rest(
    request: web.Request,
    resp: web.StreamResponse,
    first: Piece | None,
    pieces: AsyncIterator[Piece],
    *,
    frames: bool,
    items: list[tuple[str, int, int, int]] | None = None,
) -> None:
    """Write ``first`` and every following piece; with ``frames``, each item's frame
    header before its first piece (zero-length items too), and the trailer at the end."""
    written = 0  # items whose header is out
    try:
        piece = first
        while piece is not None:
            index, view = piece
            if frames and items is not None:
                while written <= index:
                    await resp.write(FRAME.pack(written, items[written][3]))
                    written += 1
            await resp.write(view)
            piece = await anext(pieces, None)
        if frames and items is not None:
            while written < len(items):
                await resp.write(FRAME.pack(written, items[written][3]))
                written += 1
            await resp.write(TRAILER)
    finally:
        with contextlib.suppress(Exception):
            await pieces.aclose()  # type: ignore[attr-defined]
