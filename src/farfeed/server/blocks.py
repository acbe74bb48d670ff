"""A bounded in-memory cache of aligned object blocks, shared by every client of one gateway.

A bucket-backed gateway (`farfeed.server.bucket`) never asks its store for one sample: it
reads the aligned block of ``block_bytes`` (the whole object when it is smaller) that
holds it, keeps the block here, and cuts every sample of every later request out of it.
With 8 MiB blocks and ~115 KB samples one store request serves ~70 samples; while the
cache holds the data set, store requests per sample delivered are ~1 / samples-per-block
for the first epoch and ~0 after.

- **Bounded**: cached blocks hold at most ``capacity`` bytes (least recently used go
  first); at most ``concurrency`` store reads are in flight. A process's cache memory is
  therefore at most ``capacity + concurrency x block_bytes`` plus the one block each
  response is writing from (an evicted block lives until that response moves on).
- **In order**: block reads wait for a free connection lowest `Priority` first (the
  response that came first, then its earliest piece), not first come: with a cold cache
  the loader's first batch does not queue behind the read-ahead of its later requests.
  Exact reads (`read_exact`) have connections of their own (``exact_slots``).
- **Single-flight**: concurrent misses for the same block share one store read; a waiter
  that goes away (its client hung up) does not cancel the read the others wait on.
- **Blocks must pay off**: a block read for one sample is worth it only if more of it is
  delivered before it is evicted. Each evicted block's *yield* (bytes delivered from it /
  its size) feeds a running average; while the cache is full and that average is under
  `MIN_YIELD` (a dataset far larger than the cache, fully shuffled), a miss reads just
  the bytes asked for (`read_exact`, not cached), and only one miss in `PROBE_EVERY` still
  reads its block, so the average keeps up with the workload. Bytes read from the store
  thus stay within a few times those delivered (3.4 x in tests/server/test_server_bucket.py:
  20 KB samples, 1 MiB blocks, a cache of a quarter of the data set), never block / sample.
- Blocks are keyed by (path, object size, block number): an object replaced with one of a
  different size is never served from the old blocks. Objects are treated as immutable
  otherwise (shards are written once); publish changed data under new names.

One cache belongs to one event loop (the gateway process's); it is not thread-safe.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from farfeed.errors import ConfigError, TransientError

#: (path, object size, block number)
BlockKey = tuple[str, int, int]

#: Store reads go lowest first: (response number, position in it). The earliest response's
#: blocks are read before a later one's read-ahead, so a cold start serves batches in order.
Priority = tuple[int, int]

#: Reads ``length`` bytes of ``path`` at ``offset`` from the store.
Fetch = Callable[[str, int, int], Awaitable[bytes]]

#: Below this average yield of evicted blocks (with the cache full), misses read exact ranges.
MIN_YIELD = 0.25
#: In exact-range mode, one miss in this many still reads (and caches) its block.
PROBE_EVERY = 32


@dataclass
class CacheStats:
    """What a `BlockCache` did: ``hits`` and ``misses`` of `BlockCache.get`, ``joined``
    (misses that waited on a read already in flight), ``store_reads`` and
    ``store_bytes`` (what was asked of the store), ``exact_reads`` (misses served by
    reading just the bytes asked for: blocks did not pay off), ``evicted`` blocks."""

    hits: int = 0
    misses: int = 0
    joined: int = 0
    store_reads: int = 0
    store_bytes: int = 0
    exact_reads: int = 0
    evicted: int = 0


class PriorityGate:
    """At most ``slots`` holders at once; waiters get in lowest priority first.

    >>> async with gate.slot((3, 0)):
    ...     await store.read(...)
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: list[tuple[Priority, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (priority, next(self._order), turn))
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()  # the slot was handed over as this waiter left: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            turn = heapq.heappop(self._waiting)[2]
            if not turn.done():  # skips waiters that left
                turn.set_result(None)
                return
        self._free += 1


class BlockCache:
    """Aligned blocks of objects, read with ``fetch`` and kept under ``capacity`` bytes.

    >>> cache = BlockCache(store_read, capacity=1 << 30, block_bytes=8 << 20, concurrency=32)
    >>> block = await cache.get("imagenet/shard-00000.tar", size, 3)   # bytes 24..32 MiB
    """

    def __init__(
        self, fetch: Fetch, *, capacity: int, block_bytes: int, concurrency: int, exact_slots: int = 8
    ) -> None:
        for name, value in (("capacity", capacity), ("block_bytes", block_bytes), ("concurrency", concurrency)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"BlockCache {name} must be an int >= 1, got {value!r}")
        if capacity < block_bytes:
            raise ConfigError(
                f"cache of {capacity} bytes cannot hold one {block_bytes}-byte block: "
                "raise the cache size or lower the block size"
            )
        self._fetch = fetch
        self.capacity = capacity
        self.block_bytes = block_bytes
        self._blocks: OrderedDict[BlockKey, bytes] = OrderedDict()
        self._served: dict[BlockKey, int] = {}  # bytes delivered from each cached block
        self.block_yield = 1.0  # running average over evicted blocks (optimistic at start)
        self._cold = 0
        self._inflight: dict[BlockKey, asyncio.Task[bytes]] = {}
        self._gate = PriorityGate(concurrency)
        self._exact_gate = PriorityGate(max(1, exact_slots))
        self.used = 0
        self.stats = CacheStats()

    def span(self, size: int, index: int) -> tuple[int, int]:
        """(offset, length) of block ``index`` of an object of ``size`` bytes."""
        offset = index * self.block_bytes
        return offset, max(0, min(self.block_bytes, size - offset))

    def cached(self, key: BlockKey) -> bytes | None:
        """The block if it is in the cache (counted as a hit, made most recent), else None."""
        data = self._blocks.get(key)
        if data is not None:
            self._blocks.move_to_end(key)
            self.stats.hits += 1
        return data

    def pending(self, key: BlockKey) -> bool:
        """True while the block is being read."""
        return key in self._inflight

    def has(self, key: BlockKey) -> bool:
        """True when the block is cached or on its way (not counted as a lookup)."""
        return key in self._blocks or key in self._inflight

    def served(self, key: BlockKey, n: int) -> None:
        """Note ``n`` bytes delivered from block ``key`` (its yield when evicted)."""
        if key in self._served:
            self._served[key] += n

    def filling(self) -> bool:
        """True while whole blocks are read on a miss: the cache has room, or evicted
        blocks paid off (average yield at least `MIN_YIELD`)."""
        return self.used + self.block_bytes <= self.capacity or self.block_yield >= MIN_YIELD

    def worth_filling(self) -> bool:
        """Whether this cold miss should read its whole block (else `read_exact`): while
        `filling`, and for one miss in `PROBE_EVERY` otherwise."""
        if self.filling():
            return True
        self._cold += 1
        return self._cold % PROBE_EVERY == 0

    async def read_exact(self, path: str, offset: int, length: int, *, priority: Priority = (0, 0)) -> bytes:
        """Just these bytes from the store (not cached): a miss when blocks do not pay off."""
        async with self._exact_gate.slot(priority):
            self.stats.store_reads += 1
            self.stats.store_bytes += length
            self.stats.exact_reads += 1
            data = await self._fetch(path, offset, length)
        if len(data) != length:
            raise TransientError(f"store returned {len(data)} of {length} bytes", url=path)
        return data

    async def get(self, path: str, size: int, index: int, *, priority: Priority = (0, 0)) -> bytes:
        """Block ``index`` of ``path`` (an object of ``size`` bytes): from the cache, from
        a read already in flight, or read now (at ``priority``). Store errors propagate
        (nothing is cached)."""
        key = (path, size, index)
        data = self.cached(key)
        if data is not None:
            return data
        self.stats.misses += 1
        task = self._inflight.get(key)
        if task is None:
            task = self._start(key, priority)
        else:
            self.stats.joined += 1
        return await asyncio.shield(task)  # a waiter that leaves does not cancel the read

    def prefetch(self, path: str, size: int, index: int, *, priority: Priority = (0, 0)) -> None:
        """Start reading block ``index`` (at ``priority``) unless it is cached or on its way."""
        key = (path, size, index)
        if key not in self._blocks and key not in self._inflight:
            self._start(key, priority)

    def _start(self, key: BlockKey, priority: Priority) -> asyncio.Task[bytes]:
        task = asyncio.ensure_future(self._read(key, priority))
        self._inflight[key] = task
        task.add_done_callback(lambda t: self._done(key, t))
        return task

    def _done(self, key: BlockKey, task: asyncio.Task[bytes]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited prefetch's failure is not logged as lost

    async def _read(self, key: BlockKey, priority: Priority) -> bytes:
        path, size, index = key
        offset, length = self.span(size, index)
        async with self._gate.slot(priority):
            cached = self._blocks.get(key)  # read by another path while this one queued
            if cached is not None:
                return cached
            self.stats.store_reads += 1
            self.stats.store_bytes += length
            data = await self._fetch(path, offset, length)
        if len(data) != length:
            raise TransientError(f"store returned {len(data)} of {length} bytes of block {index}", url=path)
        self._insert(key, data)
        return data

    def _insert(self, key: BlockKey, data: bytes) -> None:
        if key in self._blocks:
            return
        while self._blocks and self.used + len(data) > self.capacity:
            old_key, old = self._blocks.popitem(last=False)
            self.used -= len(old)
            self.stats.evicted += 1
            gained = min(1.0, self._served.pop(old_key, 0) / max(1, len(old)))
            self.block_yield = 0.9 * self.block_yield + 0.1 * gained
        self._blocks[key] = data
        self._served[key] = 0
        self.used += len(data)

    def __len__(self) -> int:
        return len(self._blocks)
