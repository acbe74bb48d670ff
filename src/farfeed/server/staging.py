"""Staging files: bytes stream to a hidden file, are fsynced, then renamed into place in one step.

A reader of the final path sees the old object or the new one, never a part: a crash
(even SIGKILL) mid-upload leaves only a staging file under ROOT/.farfeed-uploads, which
`farfeed.server.reclaim` removes (its owner's lock died with the process). A write that
finds the disk full first asks for abandoned staging to be reclaimed and tries once more;
a folder that `publish` created for a write that then failed is removed again.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple, TypeVar

import xxhash

from farfeed.server.reclaim import create_owned
from farfeed.server.responses import ApiError

log = logging.getLogger("farfeed.server")

T = TypeVar("T")

#: Bytes gathered before one write to the staging file (done in a worker thread).
WRITE_BLOCK = 4 * 1024 * 1024
#: errnos of a full disk or quota: the write is retried once after a reclaim, else 507.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


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
    When a block finds the disk full, ``on_full()`` (run in the worker thread) may free
    space; if it says it did, the block is written once more.
    """

    def __init__(self, fd: int, *, offset: int = 0, on_full: Callable[[], bool] | None = None) -> None:
        self._fd = fd
        self._on_full = on_full
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
            self._pending = loop.run_in_executor(None, self._write_block, block, at)

    def _write_block(self, block: bytearray, at: int) -> None:
        try:
            _pwrite_all(self._fd, block, at)
        except OSError as exc:
            if exc.errno not in DISK_FULL or self._on_full is None or not self._on_full():
                raise
            _pwrite_all(self._fd, block, at)  # space was reclaimed: once more, from the block's start

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
    """A new hidden file in the staging directory, locked by this request while it lives
    (`farfeed.server.reclaim`); `write` bytes, then `finish` or `discard`."""

    def __init__(self, directory: str, *, prefix: str = "put-", on_full: Callable[[], bool] | None = None) -> None:
        for attempt in range(3):
            self.path = os.path.join(directory, f"{prefix}{secrets.token_hex(8)}.tmp")
            try:
                fd = create_owned(self.path)
                break
            except FileNotFoundError:
                if attempt == 2 or not os.path.isdir(directory):
                    raise
        super().__init__(fd, on_full=on_full)

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
    """Rename a finished staging file over ``final`` atomically and make the rename durable.

    Missing folders are created; if the rename then fails, the folders made for it are
    removed again, so a refused write leaves nothing behind.
    """
    parent = os.path.dirname(final)
    for attempt in range(3):
        created = make_folders(parent)
        try:
            if os.path.isdir(final):
                raise ApiError(400, "the target path is a directory, not an object")
            os.replace(staged, final)
            break
        except FileNotFoundError:
            remove_folders(created)
            if attempt == 2 or not os.path.exists(staged):
                raise
            # a delete emptied and removed the folder meanwhile: make it again
        except BaseException:
            remove_folders(created)
            raise
    fsync_dir(parent)


def make_folders(folder: str) -> list[str]:
    """``os.makedirs`` without recursion; returns the folders it created, outermost first.
    400 when a part of the path is a file."""
    missing: list[str] = []
    while not os.path.isdir(folder):
        missing.append(folder)
        up = os.path.dirname(folder)
        if up == folder:
            break
        folder = up
    created: list[str] = []
    try:
        for path in reversed(missing):
            try:
                os.mkdir(path)
            except FileExistsError:
                if os.path.isdir(path):
                    continue  # made by a concurrent write
                raise ApiError(400, "cannot create a folder for this object: a part of its path is a file") from None
            except NotADirectoryError:
                raise ApiError(400, "cannot create a folder for this object: a part of its path is a file") from None
            created.append(path)
    except BaseException:
        remove_folders(created)
        raise
    return created


def remove_folders(created: list[str]) -> None:
    """Remove folders `make_folders` created (innermost first) while they are still empty."""
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            return


def prune_empty_folders(folder: str, *, stop: str) -> None:
    """Remove ``folder`` and its parents while they are empty, up to (not including) ``stop``."""
    while folder.startswith(stop + os.sep):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = os.path.dirname(folder)
