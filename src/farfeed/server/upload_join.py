"""Join mode of chunked uploads (no ``part_size`` declared): each part is its own staged file,
and the commit concatenates them into a new file (one full copy of the object).

Layout in ``ROOT/.farfeed-uploads/u-<32 hex>/``: ``part-N`` (the bytes) and ``part-N.json``
(size, xxh64, and the inode it describes, so a stale record after a crash is noticed and
recomputed).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets

import xxhash
from aiohttp import web

from farfeed.server.context import Gateway
from farfeed.server.responses import ApiError
from farfeed.server.staging import PartRecord, StagingFile, fsync_dir, publish

_PART_FILE = re.compile(r"part-(\d+)")
_COPY_BLOCK = 8 * 1024 * 1024


async def receive_part(
    request: web.Request, gw: Gateway, folder: str, part: int, expected: str | None
) -> tuple[int, str]:
    """Stream one part to its own staging file and put it in place; (size, xxh64)."""
    limit = gw.limits.max_part_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"part of {request.content_length} bytes is over the {limit}-byte part limit")
    upload_id = os.path.basename(folder)
    try:
        staged = StagingFile(folder, prefix=f".part-{part}-", on_full=gw.reclaim_space)
    except FileNotFoundError:
        raise ApiError(404, f"no such upload: {upload_id!r}") from None
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
        raise ApiError(404, f"upload {upload_id!r} was aborted or committed") from None
    except BaseException:
        await staged.discard()
        raise
    return staged.size, digest


def _place_part(folder: str, part: int, staged: str, size: int, digest: str) -> None:
    record = {"size": size, "xxh64": digest, "ino": os.stat(staged).st_ino}
    tmp = f"{staged}.json"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, os.path.join(folder, f"part-{part}.json"))
    os.replace(staged, os.path.join(folder, f"part-{part}"))
    fsync_dir(folder)


def list_parts(folder: str) -> dict[int, PartRecord]:
    """Size and xxh64 of every staged part (recomputed when its record is stale)."""
    parts: dict[int, PartRecord] = {}
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
        parts[int(match[1])] = PartRecord(st.st_size, digest)
    return parts


def _hash_file(path: str) -> str:
    digest = xxhash.xxh64()
    with open(path, "rb") as f:
        while block := f.read(_COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def commit(folder: str, count: int, final: str, expected: str | None) -> tuple[int, str]:
    """Concatenate parts ``0..count-1`` into a staging file, check the whole xxh64, rename over
    ``final``; (size, xxh64). 409 when a part is missing or the checksum differs."""
    upload_id = os.path.basename(folder)
    missing = [n for n in range(count) if not os.path.isfile(os.path.join(folder, f"part-{n}"))]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise ApiError(409, f"upload {upload_id!r} is missing parts {shown} of {count}; nothing committed")
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
