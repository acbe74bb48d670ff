"""Concurrent range reads for stores without a batch-get (static HTTP, S3).

Ranges of the same object that lie close together are merged into one request (a
"span"), so a sorted run of samples in one shard costs one GET instead of many; the
spans are fetched concurrently, earliest-needed first, and cut back into the ranges.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from farfeed.store.base import ByteRange, Store
from farfeed.store.options import MiB


@dataclass(slots=True)
class Span:
    """One GET: ``length`` bytes of ``path`` at ``offset``, holding the listed ranges.

    ``members`` are (index in the request, offset inside the span, length).
    """

    path: str
    offset: int
    length: int
    members: list[tuple[int, int, int]] = field(default_factory=list)


def coalesce(ranges: Sequence[ByteRange], *, max_gap: int, max_span: int) -> list[Span]:
    """Merge ranges of one object whose gap is at most ``max_gap`` bytes into spans of at
    most ``max_span`` bytes (a single longer range stays whole). Spans come out ordered by
    the first range each one holds, which is the order a consumer needs them in."""
    order = sorted(range(len(ranges)), key=lambda i: (ranges[i].path, ranges[i].offset))
    spans: list[Span] = []
    current: Span | None = None
    for i in order:
        r = ranges[i]
        end = r.offset + r.length
        if (
            current is not None
            and current.path == r.path
            and r.offset <= current.offset + current.length + max_gap
            and max(end, current.offset + current.length) - current.offset <= max_span
        ):
            current.length = max(end, current.offset + current.length) - current.offset
        else:
            current = Span(r.path, r.offset, r.length)
            spans.append(current)
        current.members.append((i, r.offset - current.offset, r.length))
    spans.sort(key=lambda s: min(m[0] for m in s.members))
    return spans


class CoalescingReads(Store):
    """`read_many` / `iter_many` built from `read`: coalesced spans, ``concurrency`` at once."""

    #: Merge two ranges of one object when at most this many bytes lie between them.
    coalesce_gap: int = 128 * 1024
    #: Never merge ranges into a GET larger than this.
    max_span: int = 16 * MiB
    #: Most span GETs in flight for one `read_many` call.
    concurrency: int = 64

    async def read_many(self, ranges: Sequence[ByteRange]) -> list[bytes]:
        return [data async for data in self.iter_many(ranges)]

    async def iter_many(self, ranges: Sequence[ByteRange]) -> AsyncIterator[bytes]:
        ranges = list(ranges)
        spans = coalesce(ranges, max_gap=self.coalesce_gap, max_span=self.max_span)
        where: list[tuple[int, int, int]] = [(0, 0, 0)] * len(ranges)
        for s, span in enumerate(spans):
            for index, start, length in span.members:
                where[index] = (s, start, length)
        gate = asyncio.Semaphore(self.concurrency)

        async def fetch(span: Span) -> bytes:
            async with gate:
                return await self.read(span.path, span.offset, span.length)

        tasks = [asyncio.ensure_future(fetch(span)) for span in spans]
        try:
            for s, start, length in where:
                data = await tasks[s]
                yield data if (start, length) == (0, len(data)) else data[start : start + length]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
