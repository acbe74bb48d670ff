"""Reading byte ranges for the fetch engine: retries in time, failover and spreading over
replicas, and re-fetching a bad sample from every URL in turn.

Bytes land straight in the caller's buffers (`Store.read_into`). Each request goes to the
URL `Replicas.choose` picks; a transient failure (reset, refused, timeout, 5xx, a cut
response) keeps the ranges that did arrive and retries the rest, at once on another URL
in the rotation, else after the policy's backoff, for up to ``FetchConfig.retry_for``
seconds (`farfeed.transfer.Retries`, the same as checkpoints and weights); then the error
names the samples, the URL(s) and the cause. The first byte of each request times the
round trip. A store that stops sending is cut by the store's own ``timeout``.

A checksum mismatch is not transient: the same bytes at rest fail every time. So a bad
sample is fetched again from each URL in turn, the others first (`refetch`), and an
`IntegrityError` naming the sample and every URL tried comes within a few fetches.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from farfeed.errors import IntegrityError, StoreError, TransientError
from farfeed.loader.config import FetchConfig
from farfeed.loader.flow import Window
from farfeed.loader.replicas import Replicas
from farfeed.loader.stats import WorkerStats
from farfeed.store.base import ByteRange
from farfeed.transfer.retry import Retries, link_of

#: Fetches of a bad sample: at least this many, and at least two per URL.
MIN_REFETCHES = 4
#: Ranges remembered with the URL that sent them (to re-fetch a bad sample elsewhere first).
SERVED_MEMORY = 8192


class RangeReader:
    """Reads ranges through the replicas; one per fetch engine, in its event loop."""

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
        self._policy = config.retry
        self._window = window
        self._stats = stats
        self._log = stats.link_log
        self._links = [link_of(url) for url in replicas.urls]
        self._check = check
        self._describe = describe
        # (path, start, end, URL index) of recent ranges, when there is more than one URL
        self._served: deque[tuple[str, int, int, int]] = deque(maxlen=SERVED_MEMORY)

    async def refetch(self, i: int, span: ByteRange) -> memoryview:
        """Sample ``i`` arrived with a bad checksum: fetch it again, from each URL in turn
        (the one that sent the bad copy last), until a copy checks out. Never delivers bad
        bytes; `IntegrityError` naming the sample and every URL when no copy is good."""
        self._stats.add("corrupt")
        urls = self._replicas.urls
        origin = self._origin(span)
        bad: Counter[str] = Counter()
        if origin is not None:
            bad[urls[origin]] += 1
        out = np.empty(span.length, dtype=np.uint8).data
        first = 0 if origin is None else origin + 1
        for k in range(max(MIN_REFETCHES, 2 * len(urls))):
            self._stats.add("refetches")
            served = await self.read_into(
                [span], [out], lambda: self._describe(i), prefer=(first + k) % len(urls)
            )
            if self._check(i, out):
                if len(urls) > 1 and served != origin:
                    self._stats.add("integrity_failovers")
                return out
            bad[urls[served]] += 1
        copies = ", ".join(f"{url} ({n}x)" for url, n in bad.items())
        hint = (
            ""
            if len(urls) > 1
            else "; a good copy on another gateway could serve it (replicas=[...])"
        )
        raise IntegrityError(
            f"{self._describe(i)}: checksum mismatch in every copy fetched: {copies}. The bytes "
            f"stored there differ from the dataset's index (a corrupt or rewritten shard): "
            f"repair the shard{hint}"
        )

    def _origin(self, span: ByteRange) -> int | None:
        """The URL that most recently sent a range holding ``span`` (None when forgotten)."""
        if len(self._replicas.urls) == 1:
            return 0
        end = span.offset + span.length
        for path, start, stop, idx in reversed(self._served):
            if path == span.path and start <= span.offset and end <= stop:
                return idx
        return None

    async def read_into(
        self,
        ranges: Sequence[ByteRange],
        outs: Sequence[memoryview],
        what: Callable[[], str],
        *,
        prefer: int | None = None,
        digests: np.ndarray | None = None,
        checksum: str = "xxh64",
    ) -> int:
        """Read range ``k`` into ``outs[k]``, keeping what landed across retries and URLs;
        returns the index of the URL that sent the last of them. ``prefer``: the URL to try
        first (when it is in the rotation). ``digests``: filled where the store computed a
        range's ``checksum`` as it landed (see `farfeed.store.Store.read_into`), else left 0."""
        replicas = self._replicas
        todo = list(range(len(ranges)))
        left = sum(r.length for r in ranges)
        retries: Retries | None = None
        while True:
            idx = replicas.choose(left, prefer=prefer)
            prefer = None
            lengths = [ranges[k].length for k in todo]
            landed: list[int] = []
            sent = replicas.begin(idx, left)
            started = self._log.now()
            mark = partial(self._landed, landed, sent)
            sums = None if digests is None else np.zeros(len(todo), dtype=np.uint64)
            try:
                store = await replicas.store(idx)
                await store.read_into(
                    [ranges[k] for k in todo], [outs[k] for k in todo], landed=mark, digests=sums,
                    checksum=checksum,
                )
            except (TransientError, asyncio.TimeoutError) as exc:
                if digests is not None and sums is not None:
                    digests[todo] = sums  # the ranges that landed keep theirs
                arrived = set(landed)
                got = sum(lengths[j] for j in arrived)
                self._stats.add("wire_bytes", got)
                replicas.end(idx, left, sent, ok=False)
                self._remember(ranges, [k for j, k in enumerate(todo) if j in arrived], idx)
                todo = [k for j, k in enumerate(todo) if j not in arrived]
                left -= got
                self._stats.add("retries")
                if replicas.failed(idx):
                    self._stats.add("failovers")
                if retries is None:
                    retries = Retries(self._policy, what=what, links=self._log)
                wait = retries.wait_after(exc, url=replicas.urls[idx])  # raises once time is spent
                if replicas.in_rotation(idx) or not replicas.others_in_rotation(idx):
                    await asyncio.sleep(wait)  # else: on to another URL at once
                continue
            except StoreError as exc:  # not found, access denied, bad request: not retried
                replicas.end(idx, left, sent, ok=False)
                raise type(exc)(f"{what()}: {exc}") from exc
            except BaseException:  # cancelled: the engine is closing
                replicas.end(idx, left, sent, ok=False)
                raise
            if digests is not None and sums is not None:
                digests[todo] = sums
            self._stats.add("wire_bytes", sum(lengths))
            replicas.end(idx, left, sent, ok=True)
            replicas.succeeded(idx)
            self._log.up(self._links[idx], started=started)
            self._remember(ranges, todo, idx)
            return idx

    def _remember(self, ranges: Sequence[ByteRange], ks: Sequence[int], idx: int) -> None:
        if len(self._replicas.urls) > 1:
            for k in ks:
                r = ranges[k]
                self._served.append((r.path, r.offset, r.offset + r.length, idx))

    def _landed(self, landed: list[int], sent: float, j: int) -> None:
        """Range ``j`` of this try arrived; the first one times the round trip."""
        if not landed:
            self._window.on_first_byte(time.monotonic() - sent)
        landed.append(j)
