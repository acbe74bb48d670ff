"""`LocalStore`: a directory on local disk (plain paths and ``file://`` URLs).

Reads are ``os.pread`` calls in worker threads, so many can run at once without blocking
the event loop; writes go to a temporary file in the same directory, are fsynced, then
renamed over the target, so readers see the old object or the new one, never a part.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import numpy as np
import xxhash

from farfeed.errors import (
    AccessDeniedError,
    BadRequestError,
    ConfigError,
    NotFoundError,
    StoreError,
    TransientError,
)
from farfeed.store._paths import clean_prefix, clean_relpath
from farfeed.store.base import ByteRange, Chunk, ObjectInfo, Parts, Store, UploadResult, aiter_parts

_TMP_PREFIX = ".farfeed-tmp-"


def local_root(url: str) -> Path:
    """The directory a plain path or ``file://`` URL names (absolute; need not exist yet)."""
    if url.startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"file:// URL must name a local path, got host {parts.netloc!r} in {url!r}"
            )
        url = unquote(parts.path)
    if not url or "\x00" in url:
        raise ConfigError(f"local store needs a directory path, got {url!r}")
    return Path(url).expanduser().absolute()


class LocalStore(Store):
    """Objects are the files under ``root``; paths may not leave it.

    >>> store = LocalStore("/data/imagenet")          # or LocalStore("file:///data/imagenet")
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = local_root(os.fspath(root))
        self.url = str(self.root)

    # -- paths --------------------------------------------------------------------------
    def _path(self, path: str) -> Path:
        """The file behind relative ``path``; NotFoundError if a symlink leads outside root."""
        full = self.root / clean_relpath(path)
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(full)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise NotFoundError(f"{path!r} leads outside the store root", url=self.url)
        return full

    def _translate(self, exc: OSError, path: str) -> StoreError:
        where = f"{self.url}/{path}"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            return NotFoundError(f"no such object {path!r}", url=where)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return AccessDeniedError(f"permission denied for {path!r}: {exc.strerror}", url=where)
        if exc.errno in (errno.EINTR, errno.EAGAIN, errno.EIO, errno.ETIMEDOUT, errno.ESTALE):
            return TransientError(f"I/O error on {path!r}: {exc.strerror}", url=where)
        return StoreError(f"cannot access {path!r}: {exc.strerror or exc}", url=where)

    # -- reads --------------------------------------------------------------------------
    async def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        (data,) = await self._read_file(path, [(offset, length)])
        return data

    async def read_many(self, ranges: Sequence[ByteRange]) -> list[bytes]:
        """``ranges`` read with one worker-thread task per object (opened once), all
        objects concurrently."""
        by_path: dict[str, list[int]] = {}
        for i, r in enumerate(ranges):
            by_path.setdefault(r.path, []).append(i)
        results: list[bytes] = [b""] * len(ranges)

        async def one(path: str, indices: list[int]) -> None:
            spans: list[tuple[int, int | None]] = [
                (ranges[i].offset, ranges[i].length) for i in indices
            ]
            for i, data in zip(indices, await self._read_file(path, spans), strict=True):
                results[i] = data

        await asyncio.gather(*(one(p, idx) for p, idx in by_path.items()))
        return results

    async def read_into(
        self,
        ranges: Sequence[ByteRange],
        outs: Sequence[memoryview],
        *,
        landed: Callable[[int], None] | None = None,
        digests: np.ndarray | None = None,
        checksum: str = "xxh64",
    ) -> None:
        """``ranges`` read with ``preadv`` straight into ``outs`` (``landed(k)`` as range k
        is in place): one worker-thread task per object. ``digests``, ``checksum``: not computed here
        (see `Store.read_into`)."""
        by_path: dict[str, list[int]] = {}
        for i, r in enumerate(ranges):
            by_path.setdefault(r.path, []).append(i)

        async def one(path: str, indices: list[int]) -> None:
            full = self._path(path)
            spans = [(ranges[i].offset, outs[i]) for i in indices]
            try:
                await asyncio.to_thread(self._preadv_all, full, path, spans)
            except OSError as exc:
                raise self._translate(exc, path) from exc
            if landed is not None:
                for i in indices:
                    landed(i)

        await asyncio.gather(*(one(p, idx) for p, idx in by_path.items()))

    def _preadv_all(self, full: Path, path: str, spans: list[tuple[int, memoryview]]) -> None:
        fd = os.open(full, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            for offset, view in spans:
                if offset + len(view) > size:
                    raise BadRequestError(
                        f"range offset={offset} length={len(view)} is outside {path!r} ({size} bytes)",
                        url=f"{self.url}/{path}",
                    )
                pos = 0
                while pos < len(view):  # preadv may return short on some filesystems
                    got = os.preadv(fd, [view[pos:]], offset + pos)
                    if got <= 0:
                        raise TransientError(f"{path!r} shrank while being read", url=self.url)
                    pos += got
        finally:
            os.close(fd)

    async def _read_file(self, path: str, spans: list[tuple[int, int | None]]) -> list[bytes]:
        for offset, length in spans:
            if offset < 0 or (length is not None and length < 0):
                raise ConfigError(
                    f"read of {path!r} needs offset >= 0 and length >= 0, got {offset!r}, {length!r}"
                )
        full = self._path(path)
        try:
            return await asyncio.to_thread(self._pread_all, full, path, spans)
        except OSError as exc:
            raise self._translate(exc, path) from exc

    def _pread_all(self, full: Path, path: str, spans: list[tuple[int, int | None]]) -> list[bytes]:
        fd = os.open(full, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            out = []
            for offset, length in spans:
                want = size - offset if length is None else length
                if offset > size or offset + want > size:
                    raise BadRequestError(
                        f"range offset={offset} length={length} is outside {path!r} ({size} bytes)",
                        url=f"{self.url}/{path}",
                    )
                data = os.pread(fd, want, offset)
                while len(data) < want:  # pread may return short on some filesystems
                    more = os.pread(fd, want - len(data), offset + len(data))
                    if not more:
                        raise TransientError(f"{path!r} shrank while being read", url=self.url)
                    data += more
                out.append(data)
            return out
        finally:
            os.close(fd)

    async def size(self, path: str) -> int:
        full = self._path(path)
        try:
            st = await asyncio.to_thread(os.stat, full)
        except OSError as exc:
            raise self._translate(exc, path) from exc
        if not os.path.isfile(full):
            raise NotFoundError(f"{path!r} is not an object (a directory?)", url=self.url)
        return st.st_size

    # -- writes -------------------------------------------------------------------------
    async def write(self, path: str, data: Chunk) -> None:
        await self.write_parts(path, [data])

    async def write_parts(self, path: str, parts: Parts, *, concurrency: int = 4) -> UploadResult:
        """Stream ``parts`` into a temporary file beside ``path``, fsync, rename into place
        (``concurrency`` has no use on local disk)."""
        rel = clean_relpath(path)
        full = self._path(rel)
        digest = xxhash.xxh64()
        size = count = 0
        try:
            await asyncio.to_thread(full.parent.mkdir, parents=True, exist_ok=True)
            fd, tmp = await asyncio.to_thread(tempfile.mkstemp, prefix=_TMP_PREFIX, dir=full.parent)
        except OSError as exc:
            raise self._translate(exc, rel) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                async for part in aiter_parts(parts):
                    await asyncio.to_thread(f.write, part)
                    digest.update(part)
                    size += len(part)
                    count += 1
                await asyncio.to_thread(_flush_and_sync, f)
            await asyncio.to_thread(_replace_and_sync_dir, tmp, full)
        except BaseException as exc:
            _remove_quietly(tmp)
            if isinstance(exc, OSError):
                raise self._translate(exc, rel) from exc
            raise
        return UploadResult(rel, size, digest.hexdigest(), count)

    async def delete(self, path: str) -> None:
        """Remove ``path``, then the folders it leaves empty (up to the root, not included):
        retention leaves no empty ``step-*`` folders behind."""
        full = self._path(path)
        try:
            await asyncio.to_thread(_unlink_and_prune, Path(self.root), Path(full))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._translate(exc, path) from exc

    # -- listing ------------------------------------------------------------------------
    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every file under the root whose relative path starts with ``prefix`` (hidden names skipped)."""
        prefix = clean_prefix(prefix)
        try:
            return await asyncio.to_thread(_walk, self.root, prefix)
        except OSError as exc:
            raise self._translate(exc, prefix) from exc


def _unlink_and_prune(root: Path, full: Path) -> None:
    os.unlink(full)
    parent = full.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()  # only if empty: a folder another writer uses stays
        except OSError:
            return
        parent = parent.parent


def _walk(root: Path, prefix: str) -> list[ObjectInfo]:
    """Files under ``root`` whose relative path starts with ``prefix``, sorted; hidden names skipped."""
    start_rel = prefix.rpartition("/")[0]
    start = root / start_rel if start_rel else root
    found: list[ObjectInfo] = []
    if not start.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(start):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.startswith("."):
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel.startswith(prefix):
                try:
                    size = os.stat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    continue  # deleted while listing
                found.append(ObjectInfo(rel, size))
    found.sort(key=lambda o: o.path)
    return found


def _flush_and_sync(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


def _replace_and_sync_dir(tmp: str, full: Path) -> None:
    os.replace(tmp, full)
    dir_fd = os.open(full.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
