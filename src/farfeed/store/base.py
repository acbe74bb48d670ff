"""One interface for every place bytes can live (gateway, S3, static HTTP, local disk).

A `Store` is rooted at one URL (a dataset, or a checkpoint area). Paths passed to it
are relative, POSIX-style (``"shard-00000.tar"``, ``"run1/step-100/model.bin"``).
Every method is a coroutine: the loader and the checkpoint uploader drive many of them
concurrently from one asyncio loop. A store is created inside the process that uses
it (after fork) and closed with ``await store.close()`` or ``async with``.

Errors are always `farfeed.errors.StoreError` subclasses: library exceptions are
translated here, at this one boundary.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Union

import numpy as np

from farfeed.errors import ConfigError, TransientError

#: What `Store.write` and `Store.write_parts` accept: any contiguous bytes-like object.
Chunk = Union[bytes, bytearray, memoryview]

#: The parts of one object for `Store.write_parts`, in order: a list, or a (async) generator.
Parts = Union[AsyncIterable[Chunk], Iterable[Chunk]]


@dataclass(frozen=True, slots=True)
class ByteRange:
    """``length`` bytes of object ``path`` starting at ``offset``.

    >>> ByteRange("shard-00000.tar", 1536, 114660)
    """

    path: str
    offset: int
    length: int

    def __post_init__(self) -> None:
        if self.offset < 0 or self.length < 0:
            raise ConfigError(
                f"byte range needs offset >= 0 and length >= 0, got offset={self.offset!r} "
                f"length={self.length!r} for {self.path!r}"
            )


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object as listed by a store: its relative ``path`` and its ``size`` in bytes."""

    path: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What `Store.write_parts` stored: the object's ``path``, its ``size`` in bytes, its
    ``xxh64`` (16 hex digits), the ``parts`` it was sent in, and ``parts_skipped``: how many
    of those a resumed upload did not send again."""

    path: str
    size: int
    xxh64: str
    parts: int
    parts_skipped: int = 0


async def aiter_parts(parts: Parts) -> AsyncIterator[Chunk]:
    """Iterate a sync or async iterable of chunks asynchronously (one code path for both)."""
    if isinstance(parts, AsyncIterable):
        async for part in parts:
            yield part
    else:
        for part in parts:
            yield part


def split_parts(data: Chunk, part_size: int) -> list[memoryview]:
    """``data`` cut into ``part_size`` views (no copies), the last one shorter."""
    view = memoryview(data)
    return [view[i : i + part_size] for i in range(0, len(view), part_size)]


class Store(abc.ABC):
    """Where bytes live. One subclass per URL scheme; see `farfeed.store.open_store`."""

    #: The URL this store is rooted at, as given by the user (credentials stripped).
    url: str

    #: True when `read_many` is served by one round trip for many ranges (the gateway's
    #: batch-get); False when it is emulated with concurrent range reads.
    native_batch: bool = False

    @property
    def gateway_info(self) -> dict[str, Any] | None:
        """A farfeed gateway's ``/_farfeed/info`` as learned when this store was opened; pass
        it to `open_store` (``gateway_info=``) to open the same URL again without a probe.
        None for every other backend."""
        return None

    @abc.abstractmethod
    async def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read ``length`` bytes of ``path`` from ``offset`` (to the end when None)."""

    async def read_many(self, ranges: Sequence[ByteRange]) -> list[bytes]:
        """Read every `ByteRange` of ``ranges``; results in the order asked. Default: one
        `read` each, concurrently; the gateway sends them all in one round trip."""
        import asyncio

        return list(await asyncio.gather(*(self.read(r.path, r.offset, r.length) for r in ranges)))

    async def iter_many(self, ranges: Sequence[ByteRange]) -> AsyncIterator[bytes]:
        """Like `read_many` (``ranges`` in, their bytes out, in order), but yields each
        range as soon as it (and all before it) arrived."""
        for data in await self.read_many(ranges):
            yield data

    async def read_into(
        self,
        ranges: Sequence[ByteRange],
        outs: Sequence[memoryview],
        *,
        landed: Callable[[int], None] | None = None,
        digests: np.ndarray | None = None,
        checksum: str = "xxh64",
    ) -> None:
        """Read range ``k`` of ``ranges`` into ``outs[k]`` (a writable view exactly that
        long), calling ``landed(k)`` as each one is complete. The loader reads through this: the gateway
        and local disk put the bytes straight in place; this default copies `iter_many`'s.

        ``digests`` (a ``uint64`` array, one entry per range, zeros): a store may set
        ``digests[k]`` to range ``k``'s ``checksum`` (a name `farfeed.checksum`
        knows: ``"xxh64"`` or ``"xxh3_64"``) once it is in place, computed in the thread
        that received it while the bytes are still in the CPU's cache (the gateway's
        batch-get does). Entries left 0 were not computed; the caller hashes those."""
        k = 0
        async for data in self.iter_many(ranges):
            r = ranges[k]
            if len(data) != r.length:
                raise TransientError(
                    f"short read: {len(data)} of {r.length} bytes of {r.path!r}", url=self.url
                )
            outs[k][:] = data
            if landed is not None:
                landed(k)
            k += 1
        if k != len(ranges):
            raise TransientError(f"response ended after {k} of {len(ranges)} ranges", url=self.url)

    async def connect_ahead(self) -> None:
        """Start opening a connection for the next read, without waiting for it (the
        loader calls this while it plans its first request, so the handshake's round
        trips overlap that work). Default: nothing; errors surface in that read."""
        return None

    @abc.abstractmethod
    async def write(self, path: str, data: Chunk) -> None:
        """Write ``data`` as the whole object ``path``, atomically: readers see the old
        object or the new one, never a part."""

    async def write_parts(self, path: str, parts: Parts, *, concurrency: int = 4) -> UploadResult:
        """Write object ``path`` from ``parts`` (its bytes in order: a list, or a sync or
        async iterable of chunks), atomically like `write`; returns what was stored.

        Backends that can upload parts in parallel (gateway, S3) override this and keep at
        most ``concurrency`` parts in memory; this default joins them and calls `write`.
        """
        import xxhash

        digest = xxhash.xxh64()
        chunks: list[bytes] = []
        async for part in aiter_parts(parts):
            digest.update(part)
            chunks.append(bytes(part))
        data = b"".join(chunks)
        await self.write(path, data)
        return UploadResult(path, len(data), digest.hexdigest(), len(chunks))

    @abc.abstractmethod
    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose path starts with ``prefix``, sorted by path."""

    @abc.abstractmethod
    async def size(self, path: str) -> int:
        """Size of object ``path`` in bytes; `NotFoundError` if it does not exist."""

    @abc.abstractmethod
    async def delete(self, path: str) -> None:
        """Remove object ``path``. Deleting a missing object is not an error."""

    async def close(self) -> None:
        """Release connections. Safe to call twice."""
        return None

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
