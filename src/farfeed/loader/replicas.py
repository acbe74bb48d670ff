"""The URLs one dataset is served at: which one each request goes to, and failing over.

Two policies (`FetchConfig.spread`):

- **failover** (default): every request goes to the first URL of the list that is in the
  rotation: the primary, or while it is out, the first replica that is in.
- **spread**: requests go to every URL in the rotation at once. Each new request goes to
  the URL that should finish it first: the least ``(bytes outstanding there + the
  request's bytes) / that URL's rate``. A URL's rate is measured, not configured: the
  bytes per second of its recently completed requests (each request's bytes over its
  time from sent to complete; the median of the last five, so one request delayed by a
  busy CPU does not count much; a URL's first request, which pays for the connection, is
  not counted). A URL not measured yet, or not used for
  a second, counts as fast as the fastest one, so each gets tried again. Two equal
  gateways then share the requests evenly (the rule becomes "least bytes outstanding");
  a far or overloaded one, whose requests take longer, gets fewer.

A URL leaves the rotation after `FAILOVER_AFTER` failures in a row (when there is another
URL to send reads to). While out, it is probed in the background: one 1-byte read of its
``dataset.json`` after ~1 s, then after doubling waits up to 10 s; the first probe that
succeeds puts it back. A probe never holds up a sample's request, so a URL that hangs
(rather than refusing) costs no stall. When every URL is out, requests try the one whose
probe is due first (the reader's backoff paces them).

Stores are opened lazily inside the fetch engine's event loop (so after fork, one pool
per worker), through `open_store` like every other store.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import time
from collections import deque
from dataclasses import dataclass, field

from farfeed.errors import StoreError
from farfeed.format.meta import DATASET_JSON
from farfeed.loader.config import FetchConfig
from farfeed.store import open_store
from farfeed.store.base import Store

log = logging.getLogger("farfeed.loader")

#: Consecutive failures on one URL before it leaves the rotation.
FAILOVER_AFTER = 2
#: Seconds before the first probe of a URL out of the rotation; then doubling up to PROBE_MAX_S.
PROBE_FIRST_S = 1.0
PROBE_MAX_S = 10.0
#: Seconds a probe may take before it counts as failed.
PROBE_TIMEOUT_S = 5.0
#: Completed requests whose rates make a URL's rate (their median).
RATE_SAMPLES = 5
#: Seconds after which a URL's rate is forgotten when it completed no request meanwhile.
RATE_STALE_S = 1.0


@dataclass
class _Url:
    """One URL's state: its store, whether it is in the rotation, and its measured rate."""

    url: str
    store: Store | None = None
    failures: int = 0  # in a row
    out: bool = False  # out of the rotation
    probe_at: float = 0.0
    probe_wait: float = PROBE_FIRST_S
    probe: asyncio.Task[None] | None = None
    outstanding: int = 0  # bytes of requests in flight here
    completed: int = 0  # requests completed
    rates: deque[float] = field(default_factory=lambda: deque(maxlen=RATE_SAMPLES))
    last_done: float = 0.0  # when a request last completed here

    def rate(self, now: float) -> float | None:
        """Bytes per second of recent requests (their median); None when unknown or stale."""
        if not self.rates or now - self.last_done >= RATE_STALE_S:
            return None
        return statistics.median(self.rates)


class Replicas:
    """The URLs one dataset is served at; `choose` picks the URL of each request."""

    def __init__(self, config: FetchConfig) -> None:
        self.urls = config.urls
        self.spread = config.spread and len(config.urls) > 1
        self._config = config
        self._state = [_Url(url) for url in config.urls]
        self.failovers = 0

    def in_rotation(self, idx: int) -> bool:
        return not self._state[idx].out

    def others_in_rotation(self, idx: int) -> bool:
        """True when a URL other than ``idx`` takes reads now."""
        return any(not u.out for k, u in enumerate(self._state) if k != idx)

    def choose(self, nbytes: int, *, prefer: int | None = None) -> int:
        """The URL (index) for a request of ``nbytes``: ``prefer`` when it is in the rotation,
        else by the policy (module docstring)."""
        now = time.monotonic()
        state = self._state
        live = [k for k, u in enumerate(state) if not u.out]
        if not live:  # everything is out: try the one due first
            return min(range(len(state)), key=lambda k: state[k].probe_at)
        if len(live) < len(state):
            self._start_probes(now)
        if prefer is not None and not state[prefer].out:
            return prefer
        if not self.spread or len(live) == 1:
            return live[0]
        rates = [u.rate(now) for u in state]
        fastest = max((r for r in rates if r is not None), default=1.0)
        return min(live, key=lambda k: (state[k].outstanding + nbytes) / (rates[k] or fastest))

    def begin(self, idx: int, nbytes: int) -> float:
        """A request of ``nbytes`` goes out to URL ``idx`` now; returns the time (for `end`)."""
        self._state[idx].outstanding += nbytes
        return time.monotonic()

    def end(self, idx: int, nbytes: int, sent: float, *, ok: bool) -> None:
        """The request of ``nbytes`` sent to URL ``idx`` at ``sent`` ended (``ok``: complete)."""
        u = self._state[idx]
        u.outstanding -= nbytes
        if not ok or nbytes == 0:
            return
        now = time.monotonic()
        u.completed += 1
        if u.completed > 1:  # the first one paid for the connection (and the gateway probe)
            if now - u.last_done >= RATE_STALE_S:
                u.rates.clear()  # an old measurement: start again
            u.rates.append(nbytes / max(now - sent, 1e-6))
        u.last_done = now

    def failed(self, idx: int) -> bool:
        """Note a failure at URL ``idx``; True when that took it out of the rotation (other
        URLs take its reads: a failover)."""
        u = self._state[idx]
        u.failures += 1
        if u.out or u.failures < FAILOVER_AFTER or len(self._state) < 2:
            return False
        u.out = True
        u.probe_wait = PROBE_FIRST_S
        u.probe_at = time.monotonic() + u.probe_wait
        self.failovers += 1
        if self.others_in_rotation(idx):
            log.info(
                "%s out of the rotation after %d failures in a row; probing it", u.url, u.failures
            )
        return True

    def succeeded(self, idx: int) -> None:
        """A request at URL ``idx`` went through: it is (back) in the rotation."""
        u = self._state[idx]
        u.failures = 0
        if u.out:
            u.out = False
            log.info("%s back in the rotation", u.url)

    async def store(self, idx: int) -> Store:
        """The store of URL ``idx``, opened on first use."""
        u = self._state[idx]
        if u.store is None:
            cfg = self._config
            u.store = await open_store(
                u.url,
                token=cfg.token,
                gateway_info=cfg.gateway_info.get(u.url),  # known gateway: no probe
                **cfg.store_options,
            )
        return u.store

    async def connect_ahead(self) -> None:
        """Open the store of the URL the first request will go to, and start its first
        connection (`Store.connect_ahead`): the handshake crosses the link while the first
        request is planned. A failure here is left for that request to meet and retry."""
        try:
            store = await self.store(self.choose(0))
            await store.connect_ahead()
        except (StoreError, OSError):
            pass

    def _start_probes(self, now: float) -> None:
        for idx, u in enumerate(self._state):
            if u.out and u.probe is None and u.probe_at <= now:
                u.probe = asyncio.get_running_loop().create_task(self._probe(idx))

    async def _probe(self, idx: int) -> None:
        """One small read at URL ``idx``; back in the rotation when it succeeds."""
        u = self._state[idx]
        try:
            store = await self.store(idx)
            await asyncio.wait_for(store.read(DATASET_JSON, 0, 1), PROBE_TIMEOUT_S)
        except (StoreError, asyncio.TimeoutError, OSError):
            u.probe_wait = min(PROBE_MAX_S, u.probe_wait * 2)
            u.probe_at = time.monotonic() + u.probe_wait * (0.5 + random.random() / 2)
        else:
            self.succeeded(idx)
        finally:
            u.probe = None

    async def close(self) -> None:
        """Stop the probes and close every opened store; errors while closing are not worth raising."""
        probes = [u.probe for u in self._state if u.probe is not None]
        for task in probes:
            task.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        for u in self._state:
            store, u.store = u.store, None
            if store is not None:
                try:
                    await store.close()
                except Exception:  # noqa: BLE001 - close the others whatever this one raised
                    pass
