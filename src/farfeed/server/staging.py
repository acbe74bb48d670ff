"""Staging files: bytes stream to a hidden file, are fsynced, then renamed into place in one step.

A reader of the final path sees the old object or the new one, never a part: a crash
(even SIGKILL) mid-upload leaves only a staging file under ROOT/.farfeed-uploads, which
the sweep removes once it has not been touched for a day.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator

import xxhash

from farfeed.server.responses import ApiError

log = logging.getLogger("farfeed.server")

#: Bytes gathered before one write to the staging file (done in a worker thread).
WRITE_BLOCK = 4 * 1024 * 1024


def parse_xxh64(value: str | None, *, what: str = "X-Farfeed-Xxh64") -> str | None:
    """Check an xxh64 given by the client (16 hex digits; lowercased); 400 when malformed."""
    if value is None:
        return None
    digest = value.strip().lower()
    if len(digest) != 16 or any(c not in "0123456789abcdef" for c in digest):
        raise ApiError(400, f"{what} must be 16 hex digits, got {value!r}")
    return digest


def fsync_dir(path: str) -> None:
    """Make a rename in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class StagingFile:
    """A new hidden file in the staging directory; `write` bytes, then `finish` or `discard`.

    Writes happen in a worker thread, one block behind the network, so receiving and
    writing overlap. The xxh64 of everything written is kept as it goes.
    """

    def __init__(self, directory: str, *, prefix: str = "put-") -> None:
        self.path = os.path.join(directory, f"{prefix}{secrets.token_hex(8)}.tmp")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._digest = xxhash.xxh64()
        self._buffer = bytearray()
        self._pending: asyncio.Future[None] | None = None
        self.size = 0

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (buffered; flushed in blocks of `WRITE_BLOCK`)."""
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= WRITE_BLOCK:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending is not None:
            await self._pending
            self._pending = None
        if self._buffer:
            block, self._buffer = self._buffer, bytearray()
            self._digest.update(block)
            loop = asyncio.get_running_loop()
            self._pending = loop.run_in_executor(None, _write_all, self._fd, block)

    async def write_from(self, chunks: AsyncIterator[bytes], *, limit: int | None = None) -> None:
        """Write every chunk of a request body; 413 once more than ``limit`` bytes arrived."""
        async for chunk in chunks:
            if limit is not None and self.size + len(chunk) > limit:
                raise ApiError(413, f"request body too large: more than {limit} bytes")
            await self.write(chunk)

    async def finish(self) -> str:
        """Flush, fsync and close; returns the xxh64 (16 hex digits) of the whole file."""
        await self._flush()
        if self._pending is not None:
            await self._pending
            self._pending = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, os.fsync, self._fd)
        self._close()
        return self._digest.hexdigest()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def discard(self) -> None:
        """Drop the staging file (after an error, a mismatch, or a client that went away)."""
        if self._pending is not None:
            try:
                await self._pending
            except OSError:
                pass
            self._pending = None
        self._close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def publish(staged: str, final: str) -> None:
    """Rename a finished staging file over ``final`` atomically and make the rename durable."""
    parent = os.path.dirname(final)
    try:
        os.makedirs(parent, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ApiError(400, f"cannot create the folder for this object: {exc.strerror}") from None
    if os.path.isdir(final):
        raise ApiError(400, "the target path is a directory, not an object")
    os.replace(staged, final)
    fsync_dir(parent)


def sweep(staging: str, *, max_age: float, now: float | None = None) -> list[str]:
    """Remove staging entries untouched for ``max_age`` seconds; returns their names."""
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        entries = list(os.scandir(staging))
    except FileNotFoundError:
        return removed
    for entry in entries:
        try:
            newest = entry.stat(follow_symlinks=False).st_mtime
            if entry.is_dir(follow_symlinks=False):
                for sub in os.scandir(entry.path):
                    newest = max(newest, sub.stat(follow_symlinks=False).st_mtime)
            if now - newest < max_age:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except FileNotFoundError:
            continue  # another worker got there first
        except OSError as exc:
            log.warning("could not sweep staging entry %s: %s", entry.path, exc)
    return removed
