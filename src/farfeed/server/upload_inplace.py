"""In-place mode of chunked uploads (``part_size`` declared at start): every part is written
with ``pwrite`` at offset ``PART * part_size`` of one staging file, so the commit renames that
file instead of copying the object.

Layout in ``ROOT/.farfeed-uploads/u-<32 hex>/``: ``data`` (the object being assembled) and
``part-N.json``, the record of part N: ``{"size", "xxh64"}`` once its bytes were checked and
fdatasynced, empty while they are being (re)written. A record therefore never describes
bytes that are not on disk. State lives only on disk, so any worker process takes any part.

Locks (``flock``, per open file): a PUT holds a shared lock on ``data`` and an exclusive
lock on its ``part-N.json``; the commit takes an exclusive lock on ``data``. So two requests
never write one part at once, and no part is written while (or after) the commit renames.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import re

import xxhash
from aiohttp import web

from farfeed.server.context import Gateway
from farfeed.server.responses import ApiError
from farfeed.server.staging import BlockWriter, PartRecord, fsync_dir, in_thread, publish

DATA = "data"
_RECORD = re.compile(r"part-(\d+)\.json")
_READ_BLOCK = 8 * 1024 * 1024
#: Seconds a PUT waits for another request still writing the same part (a client's retry
#: may arrive before the gateway noticed that the first connection went away).
PART_LOCK_GRACE = 5.0


def create(folder: str) -> None:
    """Make the empty object file of a new in-place upload."""
    os.close(os.open(os.path.join(folder, DATA), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _open_data(folder: str, flags: int) -> int:
    """Open ``data``; FileNotFoundError when the upload was aborted or committed."""
    return os.open(os.path.join(folder, DATA), flags)


def _still_current(folder: str, fd: int) -> None:
    """FileNotFoundError when ``fd`` is no longer the upload's ``data`` (a commit renamed it)."""
    if os.stat(os.path.join(folder, DATA)).st_ino != os.fstat(fd).st_ino:
        raise FileNotFoundError(folder)


async def _lock_part(fd: int, part: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PART_LOCK_GRACE
    while not _try_lock(fd, fcntl.LOCK_EX):
        if loop.time() >= deadline:
            raise ApiError(409, f"part {part} is being received on another connection; send it again once that one is answered")
        await asyncio.sleep(0.02)


async def receive_part(
    request: web.Request, gw: Gateway, folder: str, part: int, part_size: int, expected: str | None
) -> tuple[int, str]:
    """Write one part's body at ``part * part_size`` of ``data`` and record it; (size, xxh64).
    400 when the body is longer than ``part_size``, 409 when its xxh64 differs (the part is
    then not stored, not even an earlier copy of it)."""
    upload_id = os.path.basename(folder)
    if request.content_length is not None and request.content_length > part_size:
        raise ApiError(400, f"part {part} has {request.content_length} bytes, more than this upload's part_size {part_size}")
    fd = record_fd = -1
    writer: BlockWriter | None = None
    try:
        fd = _open_data(folder, os.O_WRONLY)
        if not _try_lock(fd, fcntl.LOCK_SH):
            raise ApiError(409, f"upload {upload_id!r} is being committed; part {part} not stored")
        _still_current(folder, fd)
        record_fd = os.open(os.path.join(folder, f"part-{part}.json"), os.O_RDWR | os.O_CREAT, 0o644)
        await _lock_part(record_fd, part)
        await in_thread(_forget, record_fd)
        writer = BlockWriter(fd, offset=part * part_size, on_full=gw.reclaim_space)
        try:
            await writer.write_from(request.content.iter_any(), limit=part_size, status=400, what=f"part {part} (part_size {part_size})")
        finally:
            gw.metrics.bytes_received += writer.size
        digest = await writer.complete()
        if expected is not None and digest != expected:
            raise ApiError(409, f"checksum mismatch for part {part}: body xxh64 {digest}, header says {expected}")
        await in_thread(_record, fd, record_fd, writer.size, digest)
        return writer.size, digest
    except FileNotFoundError:
        raise ApiError(404, f"upload {upload_id!r} was aborted or committed") from None
    except OSError as exc:
        if exc.errno != errno.EFBIG:
            raise
        raise ApiError(400, f"part {part} at offset {part * part_size} is past the largest file this file system holds") from None
    finally:
        if writer is not None:
            await writer.drain()
        for f in (record_fd, fd):
            if f >= 0:
                os.close(f)


def _forget(record_fd: int) -> None:
    """Empty a part's record before its bytes change (durably, so no crash revives it)."""
    if os.fstat(record_fd).st_size:
        os.ftruncate(record_fd, 0)
        os.fsync(record_fd)


def _record(fd: int, record_fd: int, size: int, digest: str) -> None:
    """Make the part's bytes durable, then write its record."""
    os.fdatasync(fd)
    os.pwrite(record_fd, json.dumps({"size": size, "xxh64": digest}).encode(), 0)


def _unrecord(folder: str, part: int) -> None:
    """Remove part N's record (only under the commit's exclusive lock: no PUT is running)."""
    try:
        os.unlink(os.path.join(folder, f"part-{part}.json"))
    except FileNotFoundError:
        return
    fsync_dir(folder)


def list_parts(folder: str) -> dict[int, PartRecord]:
    """Size and xxh64 of every recorded part (FileNotFoundError once the upload is gone)."""
    os.stat(os.path.join(folder, DATA))
    parts: dict[int, PartRecord] = {}
    for entry in os.scandir(folder):
        match = _RECORD.fullmatch(entry.name)
        if match is None:
            continue
        try:
            with open(entry.path, encoding="utf-8") as f:
                record = json.load(f)
            parts[int(match[1])] = PartRecord(int(record["size"]), str(record["xxh64"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # empty (being written) or unreadable: the part has not arrived
    return parts


def commit(folder: str, count: int, part_size: int, final: str, expected: str | None) -> tuple[int, str | None]:
    """Check parts ``0..count-1`` are all recorded with the right sizes, optionally check the
    whole xxh64 (one read of the file), cut the file to size, fsync and rename it over ``final``.
    Returns (size, xxh64 or None when not checked). 409 leaves ``final`` untouched."""
    upload_id = os.path.basename(folder)
    fd = _open_data(folder, os.O_RDWR)
    try:
        if not _try_lock(fd, fcntl.LOCK_EX):
            raise ApiError(409, f"upload {upload_id!r} still has parts arriving; commit once every part was answered")
        _still_current(folder, fd)
        parts = list_parts(folder)
        size = _check_parts(upload_id, parts, count, part_size)
        digest = None
        if expected is not None:
            digest = _hash_range(fd, 0, size)
            if digest != expected:
                bad = _drop_bad_records(fd, folder, parts, count, part_size)
                why = f"parts {', '.join(map(str, bad))} did not match their records and were dropped" if bad else "every part matches its record"
                raise ApiError(409, f"checksum mismatch: the parts have xxh64 {digest}, commit says {expected} ({why}); nothing committed")
        for n in [n for n in parts if n >= count]:  # ignored parts: cut off below
            _unrecord(folder, n)
        os.ftruncate(fd, size)
        os.fsync(fd)
        publish(os.path.join(folder, DATA), final)
        return size, digest
    finally:
        os.close(fd)


def _check_parts(upload_id: str, parts: dict[int, PartRecord], count: int, part_size: int) -> int:
    """The object's size; 409 naming parts that are missing or of the wrong size."""
    missing = [n for n in range(count) if n not in parts]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise ApiError(409, f"upload {upload_id!r} is missing parts {shown} of {count}; nothing committed")
    short = [n for n in range(count - 1) if parts[n].size != part_size]
    if short:
        shown = ", ".join(f"{n} ({parts[n].size} bytes)" for n in short[:20])
        raise ApiError(409, f"upload {upload_id!r}: parts {shown} are not part_size {part_size} bytes; only the last part may be shorter; nothing committed")
    return (count - 1) * part_size + parts[count - 1].size if count else 0


def _hash_range(fd: int, offset: int, length: int) -> str:
    digest = xxhash.xxh64()
    buf = bytearray(min(_READ_BLOCK, max(length, 1)))
    view = memoryview(buf)
    end = offset + length
    while offset < end:
        got = os.preadv(fd, [view[: min(len(buf), end - offset)]], offset)
        if got == 0:
            break  # a hole at the end: the file is shorter than recorded (caught by the digest)
        digest.update(view[:got])
        offset += got
    return digest.hexdigest()


def _drop_bad_records(fd: int, folder: str, parts: dict[int, PartRecord], count: int, part_size: int) -> list[int]:
    """Re-hash each part against its record; forget the ones that differ (so a resume re-sends them)."""
    bad = []
    for n in range(count):
        if _hash_range(fd, n * part_size, parts[n].size) != parts[n].xxh64:
            _unrecord(folder, n)
            bad.append(n)
    return bad
