"""Feeding parts to an upload: re-cut them to a part size, and keep a bounded window of
part uploads in flight whose every outcome is retrieved."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import Any

from farfeed.store.base import Chunk


class PartUploads:
    """At most ``limit`` part uploads in flight. The first failure is raised, and every task's
    outcome is retrieved (no "Task exception was never retrieved" for the others)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tasks: set[asyncio.Future[None]] = set()

    async def add(self, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Wait for room, then start one upload (created only now: never left un-awaited)."""
        while len(self.tasks) >= self.limit:
            done, self.tasks = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
            reap(done)
        self.tasks.add(asyncio.ensure_future(start()))

    async def join(self) -> None:
        """Wait for every upload; raise the first failure as soon as it happens."""
        while self.tasks:
            done, self.tasks = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_EXCEPTION)
            reap(done)

    async def cancel(self) -> None:
        """Cancel what is still running and retrieve every outcome."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = set()


def reap(done: set[asyncio.Future[None]]) -> None:
    """Retrieve the outcome of every finished task, then raise the first failure among them."""
    errors = [t.exception() for t in done if not t.cancelled()]  # retrieves each one
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first


async def peek(
    source: AsyncIterator[Chunk], n: int
) -> tuple[list[Chunk], AsyncIterator[Chunk]]:
    """The first ``n`` items (fewer when it ends) and an iterator over all of them again."""
    head: list[Chunk] = []
    async for item in source:
        head.append(item)
        if len(head) == n:
            break

    async def chained() -> AsyncIterator[Chunk]:
        for item in head:
            yield item
        async for item in source:
            yield item

    return head, chained()


def adopted_part_size(head: list[Chunk], default: int) -> int:
    """The part size to declare, from the first two parts: the first one's size when the
    second is no larger (the usual even cut), else the store's ``part_size``."""
    first = nbytes(head[0]) if head else 0
    if first == 0 or (len(head) > 1 and nbytes(head[1]) > first):
        return default
    return first


def nbytes(chunk: Chunk) -> int:
    """Length in bytes of any bytes-like chunk (a memoryview's len counts items)."""
    return memoryview(chunk).nbytes


async def recut(parts: AsyncIterator[Chunk], size: int | None) -> AsyncGenerator[Chunk, None]:
    """The same bytes in pieces of exactly ``size`` (the last may be shorter; None: the parts
    as they are). A part that is a whole piece, or slices into some, is not copied."""
    if size is None:
        async for part in parts:
            yield part
        return
    held = bytearray()
    async for part in parts:
        view = memoryview(part).cast("B")
        start = 0
        if held:
            start = min(size - len(held), len(view))
            held += view[:start]
            if len(held) < size:
                continue
            piece, held = held, bytearray()
            yield piece
        while len(view) - start >= size:
            yield view[start : start + size]
            start += size
        held += view[start:]
    if held:
        yield held
