"""Reading endpoints: health, info, dataset and object listings, and GET/HEAD of one object.

Objects are sent with ``sendfile`` from a file opened once per request. aiohttp's
``FileResponse`` is not used on purpose: it would answer a client that accepts gzip
with a sibling ``NAME.gz`` file instead of ``NAME``, which breaks ranges into shards.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import IO, Any

from aiohttp import web

from farfeed import __version__
from farfeed.server.auth import needs
from farfeed.server.context import gateway
from farfeed.server.paths import RESERVED, GatewayPaths, check_prefix
from farfeed.server.responses import ApiError, json_response

API_VERSION = 1
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")
_SEND_CHUNK = 1024 * 1024


@needs(None)
async def healthz(request: web.Request) -> web.StreamResponse:
    """``GET /healthz``: ``ok``, no token needed."""
    return web.Response(text="ok")


@needs("read")
async def metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics``: Prometheus text."""
    body = gateway(request).metrics.render()
    return web.Response(text=body, content_type="text/plain", charset="utf-8")


@needs("read")
async def info(request: web.Request) -> web.StreamResponse:
    """``GET /_farfeed/info``: what tells a farfeed gateway from a static server, and its limits."""
    limits = gateway(request).limits
    return json_response(
        {
            "farfeed": __version__,
            "api": API_VERSION,
            "max_batch_ranges": limits.max_batch_ranges,
            "max_batch_bytes": limits.max_batch_bytes,
            "max_batch_body": limits.max_batch_body,
            "max_part_bytes": limits.max_part_bytes,
            "worker": os.getpid(),
        }
    )


@needs("read")
async def datasets(request: web.Request) -> web.StreamResponse:
    """``GET /_farfeed/datasets``: every folder directly under ROOT that holds a dataset.json."""
    paths = gateway(request).paths
    found = await asyncio.get_running_loop().run_in_executor(None, find_datasets, paths)
    return json_response({"datasets": found})


@needs("read")
async def list_objects(request: web.Request) -> web.StreamResponse:
    """``GET /_farfeed/list?prefix=P``: objects whose path starts with P, sorted."""
    prefix = check_prefix(request.query.get("prefix", ""))
    paths = gateway(request).paths
    objects = await asyncio.get_running_loop().run_in_executor(None, walk_objects, paths, prefix)
    return json_response({"objects": objects})


@needs("read")
async def get_object(request: web.Request) -> web.StreamResponse:
    """``GET``/``HEAD /PATH``: the object, or one ``Range`` of it (206), sent with sendfile."""
    real = gateway(request).paths.resolve(request.match_info["path"])
    loop = asyncio.get_running_loop()
    try:
        fobj: IO[bytes] = await loop.run_in_executor(None, open, real, "rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise ApiError(404, f"no such object: {request.match_info['path']!r}") from None
    try:
        size = os.fstat(fobj.fileno()).st_size
        start, count, partial = parse_range(request.headers.get("Range"), size)
        resp = range_response(start, count, size, partial=partial)
        await resp.prepare(request)
        if request.method != "HEAD" and count:
            await _send(request, resp, fobj, start, count)
        await resp.write_eof()
        return resp
    finally:
        fobj.close()


async def _send(
    request: web.Request, resp: web.StreamResponse, fobj: IO[bytes], start: int, count: int
) -> None:
    loop = asyncio.get_running_loop()
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("client went away")
    # Over TLS asyncio's loop.sendfile does not refuse: it falls back to 16 KiB reads through
    # the thread pool (~13 CPU-s/GB). Our own fallback below reads 1 MiB per call.
    if transport.get_extra_info("sslcontext") is None:
        try:
            await loop.sendfile(transport, fobj, start, count)  # type: ignore[arg-type]
            return
        except NotImplementedError:
            pass
    sent = 0
    while sent < count:  # no sendfile (e.g. TLS): read in a thread, write
        n = min(_SEND_CHUNK, count - sent)
        chunk = await loop.run_in_executor(None, os.pread, fobj.fileno(), n, start + sent)
        if not chunk:
            raise ConnectionResetError("object shrank while it was being sent")
        await resp.write(chunk)
        sent += len(chunk)


def range_response(start: int, count: int, size: int, *, partial: bool) -> web.StreamResponse:
    """The head of a GET/HEAD answer of ``count`` bytes from ``start`` of a ``size``-byte
    object: ``206`` with its ``Content-Range`` when ``partial``, else ``200``."""
    resp = web.StreamResponse(status=206 if partial else 200)
    resp.content_type = "application/octet-stream"
    resp.content_length = count
    resp.headers["Accept-Ranges"] = "bytes"
    if partial:
        resp.headers["Content-Range"] = f"bytes {start}-{start + count - 1}/{size}"
    return resp


def parse_range(header: str | None, size: int) -> tuple[int, int, bool]:
    """``(start, count, partial)`` for one ``Range: bytes=...`` header; 400 malformed, 416 outside.

    >>> parse_range("bytes=-100", 1000)
    (900, 100, True)
    """
    if header is None:
        return 0, size, False
    match = _RANGE.fullmatch(header)
    if match is None or match[1] == match[2] == "":
        raise ApiError(400, f"bad Range header {header!r}: expected one bytes=A-B, bytes=A- or bytes=-N")
    unsatisfiable = {"Content-Range": f"bytes */{size}"}
    if match[1] == "":
        suffix = int(match[2])
        if suffix == 0:
            raise ApiError(416, f"Range {header!r} asks for no bytes", headers=unsatisfiable)
        start = max(0, size - suffix)
        return start, size - start, True
    start = int(match[1])
    if match[2] and int(match[2]) < start:
        raise ApiError(400, f"bad Range header {header!r}: the last byte is before the first")
    if start >= size:
        raise ApiError(416, f"Range {header!r} starts past the end of a {size}-byte object", headers=unsatisfiable)
    end = min(int(match[2]) if match[2] else size - 1, size - 1)
    return start, end - start + 1, True


def _visible(name: str) -> bool:
    return not name.startswith((".", RESERVED))


def find_datasets(paths: GatewayPaths) -> list[dict[str, Any]]:
    """Name, kind, samples and bytes of each dataset under ROOT (read from its dataset.json)."""
    found = []
    for entry in sorted(os.scandir(paths.root), key=lambda e: e.name):
        if not _visible(entry.name) or not entry.is_dir():
            continue
        meta_path = os.path.join(entry.path, "dataset.json")
        real = os.path.realpath(meta_path)
        if not paths.inside(real) or not os.path.isfile(real):
            continue
        item: dict[str, Any] = {"name": entry.name, "kind": None, "samples": None, "bytes": None}
        try:
            with open(real, "rb") as f:
                meta = json.load(f)
            for key in ("kind", "samples", "bytes"):
                item[key] = meta.get(key)
        except (OSError, ValueError, AttributeError) as exc:
            item["error"] = f"unreadable dataset.json: {exc.__class__.__name__}"
        found.append(item)
    return found


def walk_objects(paths: GatewayPaths, prefix: str) -> list[dict[str, Any]]:
    """Every visible file under ROOT whose relative path starts with ``prefix``, sorted.

    Symlinks count only when they resolve inside ROOT; symlinked folders are not descended.
    """
    out: list[dict[str, Any]] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(paths.root, rel_dir)))
        except OSError:
            continue
        for entry in entries:
            if not _visible(entry.name):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if not paths.inside(real) or not os.path.isfile(real):
                        continue
                elif entry.is_dir():
                    if (rel + "/").startswith(prefix) or prefix.startswith(rel + "/"):
                        stack.append(rel)
                    continue
                if entry.is_file() and rel.startswith(prefix):
                    out.append({"path": rel, "size": entry.stat().st_size})
            except OSError:
                continue  # vanished while we looked
    out.sort(key=lambda o: o["path"])
    return out
