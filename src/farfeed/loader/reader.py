"""Reading byte ranges for the fetch engine: retries with backoff, failover, re-fetch on a bad checksum.

Keeps the ranges that did arrive across retries (a cut batch-get resumes with the
rest), times each request's first byte for the RTT estimate, and names the samples,
the URL and the cause when it gives up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

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
        check: Callable[[int, bytes], bool],
        describe: Callable[[int], str],
    ) -> None:
        self._replicas = replicas
        self._config = config
        self._window = window
        self._stats = stats
        self._check = check
        self._describe = describe

    async def refetch(self, i: int, span: ByteRange) -> bytes:
        """Fetch one sample again until its checksum holds; never deliver bad bytes."""
        for attempt in range(1, self._config.retries + 2):
            self._stats.add("refetches")
            await asyncio.sleep(self._config.retry.delay(attempt))
            [blob] = await self.read([span], lambda: self._describe(i))
            if self._check(i, blob):
                return blob
        raise IntegrityError(
            f"{self._describe(i)} from {self._replicas.active_url}: checksum mismatch on "
            f"{self._config.retries + 2} fetches in a row"
        )

    async def read(self, ranges: Sequence[ByteRange], what: Callable[[], str]) -> list[bytes]:
        """Read ``ranges``, keeping what arrived across retries and replicas."""
        replicas = self._replicas
        got: list[bytes | None] = [None] * len(ranges)
        attempt = 0
        while True:
            idx = replicas.active
            try:
                store = await replicas.store(idx)
                await self._read_once(store, ranges, got)
                replicas.succeeded(idx)
                return [b for b in got if b is not None]
            except (TransientError, asyncio.TimeoutError) as exc:
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

    async def _read_once(
        self, store: Any, ranges: Sequence[ByteRange], got: list[bytes | None]
    ) -> None:
        todo = [k for k, b in enumerate(got) if b is None]
        sent = time.monotonic()
        agen = store.iter_many([ranges[k] for k in todo]).__aiter__()
        try:
            for n, k in enumerate(todo):
                try:
                    blob = await asyncio.wait_for(agen.__anext__(), self._config.timeout)
                except StopAsyncIteration:
                    raise TransientError(
                        f"response ended after {n} of {len(todo)} ranges"
                    ) from None
                if n == 0:
                    self._window.on_first_byte(time.monotonic() - sent)
                if len(blob) != ranges[k].length:
                    raise TransientError(
                        f"short read: {len(blob)} of {ranges[k].length} bytes of {ranges[k].path!r}"
                    )
                got[k] = blob
                self._stats.add("wire_bytes", len(blob))
        finally:
            await agen.aclose()
