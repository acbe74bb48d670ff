"""Chunked, resumable uploads: parts staged on disk (any worker can take any part), then
concatenated, fsynced and renamed over the target in one step at commit.

Layout of one upload, ``ROOT/.farfeed-uploads/u-<32 hex>/``: ``meta.json`` (the target
path), ``part-N`` (the bytes) and ``part-N.json`` (size, xxh64, and the inode it describes,
so a stale record after a crash is noticed and recomputed).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
from typing import Any

import xxhash
from aiohttp import web

from farfeed.server.auth import needs
from farfeed.server.context import Gateway, gateway
from farfeed.server.responses import ApiError, json_response
from farfeed.server.staging import StagingFile, fsync_dir, parse_xxh64, publish

_UPLOAD_ID = re.compile(r"u-[0-9a-f]{32}")
_PART_FILE = re.compile(r"part-(\d+)")
_COPY_BLOCK = 8 * 1024 * 1024


async def _json_body(request: web.Request, keys: set[str], required: set[str]) -> dict[str, Any]:
    """A small JSON object body with only known keys; 400 otherwise."""
    try:
        obj = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ApiError(400, f"body must be a JSON object, got {type(obj).__name__}")
    if set(obj) - keys or required - set(obj):
        raise ApiError(400, f"body must have keys {sorted(required)} (optional: {sorted(keys - required)}), got {sorted(obj)}")
    return obj


def _upload_dir(gw: Gateway, upload_id: str) -> str:
    """The staging folder of an upload; 404 for a malformed or unknown id."""
    folder = os.path.join(gw.paths.staging, upload_id)
    if _UPLOAD_ID.fullmatch(upload_id) is None or not os.path.isdir(folder):
        raise ApiError(404, f"no such upload: {upload_id!r}")
    return folder


def _target(folder: str) -> str:
    try:
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
            return str(json.load(f)["path"])
    except (OSError, ValueError, KeyError) as exc:
        raise ApiError(404, f"upload {os.path.basename(folder)!r} is gone or broken: {exc}") from None


@needs("write")
async def create_upload(request: web.Request) -> web.StreamResponse:
    """``POST /_farfeed/uploads {"path": ...}`` -> ``201 {"upload_id": ...}``."""
    gw = gateway(request)
    body = await _json_body(request, {"path"}, {"path"})
    gw.paths.resolve_write(body["path"])
    path = "/".join(p for p in body["path"].split("/") if p)
    upload_id = f"u-{secrets.token_hex(16)}"
    folder = os.path.join(gw.paths.staging, upload_id)
    os.mkdir(folder)
    with open(os.path.join(folder, "meta.json"), "w", encoding="utf-8") as f:
        json.dump({"path": path}, f)
    return json_response({"upload_id": upload_id, "path": path}, status=201)


def _part_number(text: str, max_parts: int) -> int:
    if not text.isdigit() or len(text) > 9 or int(text) >= max_parts:
        raise ApiError(400, f"part must be an integer 0..{max_parts - 1}, got {text!r}")
    return int(text)


@needs("write")
async def put_part(request: web.Request) -> web.StreamResponse:
    """``PUT /_farfeed/uploads/ID/N``: stage one part (re-sending replaces it)."""
    gw = gateway(request)
    folder = _upload_dir(gw, request.match_info["upload_id"])
    part = _part_number(request.match_info["part"], gw.limits.max_parts)
    limit = gw.limits.max_part_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"part of {request.content_length} bytes is over the {limit}-byte part limit")
    expected = parse_xxh64(request.headers.get("X-Farfeed-Xxh64"))
    try:
        staged = StagingFile(folder, prefix=f".part-{part}-")
    except FileNotFoundError:
        raise ApiError(404, f"no such upload: {request.match_info['upload_id']!r}") from None
    try:
        try:
            await staged.write_from(request.content.iter_any(), limit=limit)
        finally:
            gw.metrics.bytes_received += staged.size
        digest = await staged.finish()
        if expected is not None and digest != expected:
            raise ApiError(409, f"checksum mismatch for part {part}: body xxh64 {digest}, header says {expected}")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _place_part, folder, part, staged.path, staged.size, digest)
    except FileNotFoundError:
        await staged.discard()
        raise ApiError(404, f"upload {request.match_info['upload_id']!r} was aborted or committed") from None
    except BaseException:
        await staged.discard()
        raise
    return json_response({"part": part, "size": staged.size, "xxh64": digest})


def _place_part(folder: str, part: int, staged: str, size: int, digest: str) -> None:
    record = {"size": size, "xxh64": digest, "ino": os.stat(staged).st_ino}
    tmp = f"{staged}.json"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, os.path.join(folder, f"part-{part}.json"))
    os.replace(staged, os.path.join(folder, f"part-{part}"))
    fsync_dir(folder)


def _parts(folder: str) -> dict[int, dict[str, Any]]:
    """Size and xxh64 of every staged part (recomputed when its record is stale)."""
    parts: dict[int, dict[str, Any]] = {}
    for entry in os.scandir(folder):
        match = _PART_FILE.fullmatch(entry.name)
        if match is None:
            continue
        st = entry.stat()
        try:
            with open(f"{entry.path}.json", encoding="utf-8") as f:
                record = json.load(f)
            if record["ino"] != st.st_ino or record["size"] != st.st_size:
                raise ValueError("stale record")
            digest = str(record["xxh64"])
        except (OSError, ValueError, KeyError):
            digest = _hash_file(entry.path)
        parts[int(match[1])] = {"size": st.st_size, "xxh64": digest}
    return parts


def _hash_file(path: str) -> str:
    digest = xxhash.xxh64()
    with open(path, "rb") as f:
        while block := f.read(_COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@needs("write")
async def upload_status(request: web.Request) -> web.StreamResponse:
    """``GET /_farfeed/uploads/ID``: the target path and the parts that arrived."""
    gw = gateway(request)
    folder = _upload_dir(gw, request.match_info["upload_id"])
    try:
        path = _target(folder)
        parts = await asyncio.get_running_loop().run_in_executor(None, _parts, folder)
    except FileNotFoundError:
        raise ApiError(404, f"no such upload: {request.match_info['upload_id']!r}") from None
    listed = {str(n): parts[n] for n in sorted(parts)}
    return json_response({"upload_id": request.match_info["upload_id"], "path": path, "parts": listed})


@needs("write")
async def commit_upload(request: web.Request) -> web.StreamResponse:
    """``POST /_farfeed/uploads/ID/commit {"parts": N, "xxh64"?}``: join parts 0..N-1 and rename."""
    gw = gateway(request)
    upload_id = request.match_info["upload_id"]
    folder = _upload_dir(gw, upload_id)
    body = await _json_body(request, {"parts", "xxh64"}, {"parts"})
    count = body["parts"]
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= gw.limits.max_parts:
        raise ApiError(400, f"'parts' must be an integer 0..{gw.limits.max_parts}, got {count!r}")
    raw = body.get("xxh64")
    if raw is not None and not isinstance(raw, str):
        raise ApiError(400, f"'xxh64' must be 16 hex digits, got {raw!r}")
    expected = parse_xxh64(raw, what="'xxh64'")
    path = _target(folder)
    final = gw.paths.resolve_write(path)
    missing = [n for n in range(count) if not os.path.isfile(os.path.join(folder, f"part-{n}"))]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise ApiError(409, f"upload {upload_id!r} is missing parts {shown} of {count}; nothing committed")
    loop = asyncio.get_running_loop()
    try:
        size, digest = await loop.run_in_executor(None, _join, folder, count, final, expected)
    except FileNotFoundError:
        raise ApiError(409, f"upload {upload_id!r} changed during commit (aborted or committed twice?)") from None
    await loop.run_in_executor(None, shutil.rmtree, folder, True)
    return json_response({"path": path, "size": size, "xxh64": digest}, status=201)


def _join(folder: str, count: int, final: str, expected: str | None) -> tuple[int, str]:
    """Concatenate the parts into a staging file, check the whole xxh64, rename over ``final``."""
    staged = os.path.join(folder, f".commit-{secrets.token_hex(8)}.tmp")
    digest = xxhash.xxh64()
    size = 0
    try:
        with open(staged, "wb") as out:
            for n in range(count):
                with open(os.path.join(folder, f"part-{n}"), "rb") as f:
                    while block := f.read(_COPY_BLOCK):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and digest.hexdigest() != expected:
            raise ApiError(409, f"checksum mismatch: joined parts have xxh64 {digest.hexdigest()}, commit says {expected}; nothing committed")
        publish(staged, final)
    finally:
        try:
            os.unlink(staged)
        except FileNotFoundError:
            pass
    return size, digest.hexdigest()


@needs("write")
async def abort_upload(request: web.Request) -> web.StreamResponse:
    """``DELETE /_farfeed/uploads/ID``: drop the staged parts."""
    folder = _upload_dir(gateway(request), request.match_info["upload_id"])
    await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, folder, True)
    return web.Response(status=204)
