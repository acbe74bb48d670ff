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
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple, TypeVar

import xxhash

from farfeed.server.responses import ApiError

log = logging.getLogger("farfeed.server")

T = TypeVar("T")

#: Bytes gathered before one write to the staging file (done in a worker thread).
WRITE_BLOCK = 4 * 1024 * 1024


class PartRecord(NamedTuple):
    """One staged part of a chunked upload: its size in bytes and xxh64 (16 hex digits)."""

    size: int
    xxh64: str


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


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread, waited for even if the request is cancelled meanwhile
    (the thread may be using the request's file descriptors, which are closed next)."""
    future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        if not future.cancelled():
            future.exception()
        raise


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


class BlockWriter:
    """A request body written into an open file from ``offset`` on, in blocks, hashed as it goes.

    Writes happen in a worker thread, one block behind the network, so receiving and
    writing overlap; ``os.pwrite`` at an explicit offset lets several writers share a file.
    """

    def __init__(self, fd: int, *, offset: int = 0) -> None:
        self._fd = fd
        self.offset = offset
        self._digest = xxhash.xxh64()
        self._buffer = bytearray()
        self._pending: asyncio.Future[None] | None = None
        self._flushed = 0
        self.size = 0

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (buffered; flushed in blocks of `WRITE_BLOCK`)."""
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= WRITE_BLOCK:
            await self._flush()

    async def _flush(self) -> None:
        await self._wait()
        if self._buffer:
            block, self._buffer = self._buffer, bytearray()
            self._digest.update(block)
            loop = asyncio.get_running_loop()
            at, self._flushed = self.offset + self._flushed, self._flushed + len(block)
            self._pending = loop.run_in_executor(None, _pwrite_all, self._fd, block, at)

    async def _wait(self) -> None:
        if self._pending is not None:
            await asyncio.shield(self._pending)  # cancelled: the write goes on, `drain` waits for it
            self._pending = None

    async def write_from(
        self, chunks: AsyncIterator[bytes], *, limit: int | None = None, status: int = 413, what: str = "request body"
    ) -> None:
        """Write every chunk of a request body; ``status`` once more than ``limit`` bytes arrived."""
        async for chunk in chunks:
            if limit is not None and self.size + len(chunk) > limit:
                raise ApiError(status, f"{what} too large: more than {limit} bytes")
            await self.write(chunk)

    async def complete(self) -> str:
        """Write out what is buffered and wait for it; the xxh64 (16 hex digits) of all bytes written."""
        await self._flush()
        await self._wait()
        return self._digest.hexdigest()

    async def drain(self) -> None:
        """Wait for a write in flight (after an error or a cancellation), so the file can be
        closed safely; its own error, if any, is dropped for the one that brought us here."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()


class StagingFile(BlockWriter):
    """A new hidden file in the staging directory; `write` bytes, then `finish` or `discard`."""

    def __init__(self, directory: str, *, prefix: str = "put-") -> None:
        self.path = os.path.join(directory, f"{prefix}{secrets.token_hex(8)}.tmp")
        super().__init__(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

    async def finish(self) -> str:
        """Flush, fsync and close; returns the xxh64 (16 hex digits) of the whole file."""
        digest = await self.complete()
        await in_thread(os.fsync, self._fd)
        self._close()
        return digest

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def discard(self) -> None:
        """Drop the staging file (after an error, a mismatch, or a client that went away)."""
        await self.drain()
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
