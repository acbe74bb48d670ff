"""Reading byte ranges for the fetch engine: retries with backoff, failover, re-fetch on a bad checksum.

Bytes land straight in the caller's buffers (`Store.read_into`). Keeps the ranges that
did arrive across retries (a cut batch-get resumes with the rest), times each request's
first byte for the RTT estimate, and names the samples, the URL and the cause when it
gives up. A store that stops sending is cut by the store's own ``timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from farfeed.errors import IntegrityError, StoreError, TransientError
from farfeed.loader.config import FetchConfig
from farfeed.loader.flow import Window
from farfeed.loader.replicas import Replicas
from farfeed.loader.stats import WorkerStats
from farfeed.store.base import ByteRange


class RangeReader:
    """Reads ranges through the active replica; one per fetch engine, in its event loop."""

    def __init__(
        self,
        replicas: Replicas,
        *,
        config: FetchConfig,
        window: Window,
        stats: WorkerStats,
        check: Callable[[int, memoryview], bool],
        describe: Callable[[int], str],
    ) -> None:
        self._replicas = replicas
        self._config = config
        self._window = window
        self._stats = stats
        self._check = check
        self._describe = describe

    async def refetch(self, i: int, span: ByteRange) -> memoryview:
        """Fetch one sample again until its checksum holds; never deliver bad bytes."""
        out = np.empty(span.length, dtype=np.uint8).data
        for attempt in range(1, self._config.retries + 2):
            self._stats.add("refetches")
            await asyncio.sleep(self._config.retry.delay(attempt))
            await self.read_into([span], [out], lambda: self._describe(i))
            if self._check(i, out):
                return out
        raise IntegrityError(
            f"{self._describe(i)} from {self._replicas.active_url}: checksum mismatch on "
            f"{self._config.retries + 2} fetches in a row"
        )

    async def read_into(
        self, ranges: Sequence[ByteRange], outs: Sequence[memoryview], what: Callable[[], str]
    ) -> None:
        """Read range ``k`` into ``outs[k]``, keeping what landed across retries and replicas."""
        replicas = self._replicas
        todo = list(range(len(ranges)))
        attempt = 0
        while True:
            idx = replicas.active
            landed: list[int] = []
            mark = partial(self._landed, landed, time.monotonic(), [ranges[k].length for k in todo])
            try:
                store = await replicas.store(idx)
                await store.read_into(
                    [ranges[k] for k in todo], [outs[k] for k in todo], landed=mark
                )
                replicas.succeeded(idx)
                return
            except (TransientError, asyncio.TimeoutError) as exc:
                arrived = set(landed)
                todo = [k for j, k in enumerate(todo) if j not in arrived]
                attempt += 1
                self._stats.add("retries")
                if replicas.failed(idx):
                    self._stats.add("failovers")
                if attempt > self._config.retries:
                    cause = str(exc) or type(exc).__name__
                    named = isinstance(exc, StoreError) and exc.url is not None
                    raise TransientError(
                        f"{what()}: gave up after {attempt} attempts, last cause: {cause}",
                        url=None if named else replicas.urls[idx],
                    ) from exc
                await asyncio.sleep(self._config.retry.delay(attempt))
            except StoreError as exc:  # not found, access denied, bad request: not retried
                raise type(exc)(f"{what()}: {exc}") from exc

    def _landed(self, landed: list[int], sent: float, lengths: list[int], j: int) -> None:
        """Range ``j`` of this try arrived; the first one times the round trip."""
        if not landed:
            self._window.on_first_byte(time.monotonic() - sent)
        landed.append(j)
        self._stats.add("wire_bytes", lengths[j])
