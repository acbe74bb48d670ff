"""Failover: the primary URL and its replicas, and which one reads go to now.

Stores are opened lazily inside the fetch engine's event loop (so after fork, one
pool per worker), through `open_store` like every other store. Two failures in a row
on the active URL switch to the next one.
"""

from __future__ import annotations

from farfeed.errors import StoreError
from farfeed.loader.config import FetchConfig
from farfeed.store import open_store
from farfeed.store.base import Store

#: Consecutive failures on one URL before the next replica is tried.
FAILOVER_AFTER = 2


class Replicas:
    """The URLs one dataset is served at; hands out the active store and fails over."""

    def __init__(self, config: FetchConfig) -> None:
        self.urls = config.urls
        self._config = config
        self._stores: dict[int, Store] = {}
        self._active = 0
        self._failures = 0
        self.failovers = 0

    @property
    def active_url(self) -> str:
        return self.urls[self._active]

    @property
    def active(self) -> int:
        """Index of the URL reads go to now."""
        return self._active

    async def store(self, idx: int) -> Store:
        """The store of URL ``idx``, opened on first use."""
        if idx not in self._stores:
            url = self.urls[idx]
            cfg = self._config
            self._stores[idx] = await open_store(
                url,
                token=cfg.token,
                gateway_info=cfg.gateway_info.get(url),  # known gateway: no probe
                **cfg.store_options,
            )
        return self._stores[idx]

    def failed(self, idx: int) -> bool:
        """Note a failure at URL ``idx``; True when that switched to another replica."""
        if idx != self._active:
            return False
        self._failures += 1
        if self._failures >= FAILOVER_AFTER and len(self.urls) > 1:
            self._active = (self._active + 1) % len(self.urls)
            self._failures = 0
            self.failovers += 1
            return True
        return False

    def succeeded(self, idx: int) -> None:
        if idx == self._active:
            self._failures = 0

    async def close(self) -> None:
        """Close every opened store; errors while closing are not worth raising."""
        stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            try:
                await store.close()
            except StoreError:
                pass
