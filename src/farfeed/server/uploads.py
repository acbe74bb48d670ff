"""Chunked, resumable uploads (``/_farfeed/uploads``): parts staged on disk (any worker can
take any part), then published over the target in one atomic rename at commit.
Each request on an upload holds it (`farfeed.server.reclaim.hold_upload`), so an upload
is never reclaimed under a request; the id starts with its destination's key, so a new
save to the same destination finds the abandoned ones by name.

Two modes, chosen at start: with ``part_size`` every part is written in place into one
file (`farfeed.server.upload_inplace`: the commit is a rename, no copy); without it parts
may have any size and the commit joins them (`farfeed.server.upload_join`). The upload's
folder ``ROOT/.farfeed-uploads/u-<32 hex>/`` holds ``meta.json`` (target path, part_size).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from farfeed.server import upload_inplace as inplace
from farfeed.server import upload_join as join
from farfeed.server.auth import needs
from farfeed.server.context import Gateway, gateway
from farfeed.server.reclaim import META, dest_key, hold_upload
from farfeed.server.responses import ApiError, json_response, parse_json
from farfeed.server.staging import parse_xxh64

_UPLOAD_ID = re.compile(r"u-[0-9a-f]{32}")


@dataclass(frozen=True)
class UploadMeta:
    """What ``meta.json`` says: the target path, and the part size (None: join mode)."""

    path: str
    part_size: int | None


async def _json_body(request: web.Request, keys: set[str], required: set[str]) -> dict[str, Any]:
    """A small JSON object body with only known keys; 400 otherwise."""
    obj = parse_json(await request.read(), "body")
    if not isinstance(obj, dict):
        raise ApiError(400, f"body must be a JSON object, got {type(obj).__name__}")
    if set(obj) - keys or required - set(obj):
        raise ApiError(400, f"body must have keys {sorted(required)} (optional: {sorted(keys - required)}), got {sorted(obj)}"[:300])
    return obj


def _int_field(body: dict[str, Any], key: str, low: int, high: int) -> int:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{key!r} must be an integer {low}..{high}, got {value!r}")
    return value


def _upload_dir(gw: Gateway, upload_id: str) -> str:
    """The staging folder of an upload; 404 for a malformed or unknown id."""
    folder = os.path.join(gw.paths.staging, upload_id)
    if _UPLOAD_ID.fullmatch(upload_id) is None or not os.path.isdir(folder):
        raise ApiError(404, f"no such upload: {upload_id!r}")
    return folder


def _meta(folder: str) -> UploadMeta:
    try:
        with open(os.path.join(folder, META), encoding="utf-8") as f:
            meta = json.load(f)
        part_size = meta.get("part_size")
        return UploadMeta(str(meta["path"]), None if part_size is None else int(part_size))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
        raise ApiError(404, f"upload {os.path.basename(folder)!r} is gone or broken: {why}") from None


@needs("write")
async def create_upload(request: web.Request) -> web.StreamResponse:
    """``POST /_farfeed/uploads {"path": ..., "part_size"?: N}`` -> ``201 {"upload_id": ...}``."""
    gw = gateway(request)
    body = await _json_body(request, {"path", "part_size"}, {"path"})
    if not isinstance(body["path"], str):
        raise ApiError(400, f"'path' must be a string, got {body['path']!r}")
    gw.paths.resolve_write(body["path"])
    part_size = None if body.get("part_size") is None else _int_field(body, "part_size", 1, gw.limits.max_part_bytes)
    path = "/".join(p for p in body["path"].split("/") if p)
    await asyncio.get_running_loop().run_in_executor(None, gw.reclaim_before_save, path)
    upload_id = f"u-{dest_key(path)}{secrets.token_hex(8)}"
    folder = os.path.join(gw.paths.staging, upload_id)
    os.mkdir(folder)
    try:
        if part_size is not None:
            inplace.create(folder)
        tmp = os.path.join(folder, ".meta.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"path": path, "part_size": part_size}, f)
        os.replace(tmp, os.path.join(folder, META))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a refused upload leaves nothing
        raise
    return json_response({"upload_id": upload_id, "path": path, "part_size": part_size}, status=201)


def _part_number(text: str, max_parts: int) -> int:
    if not text.isdigit() or len(text) > 9 or int(text) >= max_parts:
        raise ApiError(400, f"part must be an integer 0..{max_parts - 1}, got {text!r}")
    return int(text)


@needs("write")
async def put_part(request: web.Request) -> web.StreamResponse:
    """``PUT /_farfeed/uploads/ID/N``: stage one part (re-sending replaces it)."""
    gw = gateway(request)
    upload_id = request.match_info["upload_id"]
    folder = _upload_dir(gw, upload_id)
    part = _part_number(request.match_info["part"], gw.limits.max_parts)
    expected = parse_xxh64(request.headers.get("X-Farfeed-Xxh64"))
    async with hold_upload(folder, upload_id):
        meta = _meta(folder)
        if meta.part_size is None:
            size, digest = await join.receive_part(request, gw, folder, part, expected)
        else:
            size, digest = await inplace.receive_part(request, gw, folder, part, meta.part_size, expected)
    return json_response({"part": part, "size": size, "xxh64": digest})


@needs("write")
async def upload_status(request: web.Request) -> web.StreamResponse:
    """``GET /_farfeed/uploads/ID``: the target path, the part size and the parts that arrived."""
    gw = gateway(request)
    upload_id = request.match_info["upload_id"]
    folder = _upload_dir(gw, upload_id)
    meta = _meta(folder)
    lister = join.list_parts if meta.part_size is None else inplace.list_parts
    try:
        parts = await asyncio.get_running_loop().run_in_executor(None, lister, folder)
    except FileNotFoundError:
        raise ApiError(404, f"no such upload: {upload_id!r}") from None
    listed = {str(n): parts[n]._asdict() for n in sorted(parts)}
    return json_response({"upload_id": upload_id, "path": meta.path, "part_size": meta.part_size, "parts": listed})


@needs("write")
async def commit_upload(request: web.Request) -> web.StreamResponse:
    """``POST /_farfeed/uploads/ID/commit {"parts": N, "xxh64"?}``: publish parts 0..N-1 atomically."""
    gw = gateway(request)
    upload_id = request.match_info["upload_id"]
    folder = _upload_dir(gw, upload_id)
    body = await _json_body(request, {"parts", "xxh64"}, {"parts"})
    count = _int_field(body, "parts", 0, gw.limits.max_parts)
    raw = body.get("xxh64")
    if raw is not None and not isinstance(raw, str):
        raise ApiError(400, f"'xxh64' must be 16 hex digits, got {raw!r}")
    expected = parse_xxh64(raw, what="'xxh64'")
    loop = asyncio.get_running_loop()
    digest: str | None
    async with hold_upload(folder, upload_id):
        meta = _meta(folder)
        final = gw.paths.resolve_write(meta.path)
        try:
            if meta.part_size is None:
                size, digest = await loop.run_in_executor(None, join.commit, folder, count, final, expected)
            else:
                size, digest = await loop.run_in_executor(None, inplace.commit, folder, count, meta.part_size, final, expected)
        except FileNotFoundError:
            raise ApiError(409, f"upload {upload_id!r} changed during commit (aborted or committed twice?)") from None
        await loop.run_in_executor(None, shutil.rmtree, folder, True)
    return json_response({"path": meta.path, "size": size, "xxh64": digest}, status=201)


@needs("write")
async def abort_upload(request: web.Request) -> web.StreamResponse:
    """``DELETE /_farfeed/uploads/ID``: drop the staged parts."""
    folder = _upload_dir(gateway(request), request.match_info["upload_id"])
    await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, folder, True)
    return web.Response(status=204)
