"""`WanThread`: the emulator on its own event loop in a thread of the caller's process.

>>> with WanThread(upstream=("127.0.0.1", 8470), link=Link(rtt=0.015)) as wan:
...     ds = farfeed.Dataset(wan.url + "/imagenet"); wan.emulator.update(rtt=0.030)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from farfeed.errors import ConfigError
from farfeed.wan.address import http_url, rewrite_url
from farfeed.wan.cuts import Cut, CutControls, CutPlan
from farfeed.wan.emulator import WanEmulator
from farfeed.wan.link import Link
from farfeed.wan.loop import fast_event_loop
from farfeed.wan.stats import WanStats

T = TypeVar("T")


class ThreadSafeEmulator(CutControls):
    """Calls into a `WanEmulator` that runs on another thread's loop; each call waits for it."""

    def __init__(self, emulator: WanEmulator, loop: asyncio.AbstractEventLoop) -> None:
        self._emulator = emulator
        self._loop = loop

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def run() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    @property
    def link(self) -> Link:
        """The link as it is now."""
        return self._emulator.link

    def update(self, **changes: Any) -> Link:
        """Change link settings now; see `WanEmulator.update`."""
        return self._call(self._emulator.update, **changes)

    def set_link(self, link: Link) -> None:
        """Replace the link; see `WanEmulator.set_link`."""
        self._call(self._emulator.set_link, link)

    def apply_cut(self, cut: Cut) -> None:
        """Cut the link now; see `CutControls.cut`."""
        self._call(self._emulator.apply_cut, cut)

    def plan_cuts(self, plan: CutPlan) -> None:
        """Cut the link later; see `CutControls.schedule_cut`."""
        self._call(self._emulator.plan_cuts, plan)

    def stats(self) -> WanStats:
        """Counters now; see `WanEmulator.stats`."""
        return self._call(self._emulator.stats)


class WanThread:
    """A `WanEmulator` on its own event loop in a daemon thread (tests, in-process benchmarks).

    Its CPU shares the caller's GIL: for throughput figures use `WanProcess`.
    """

    def __init__(
        self,
        *,
        upstream: tuple[str, int],
        link: Link,
        listen: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        self._emulator = WanEmulator(upstream=upstream, link=link, listen=listen)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._proxy: ThreadSafeEmulator | None = None

    def start(self) -> WanThread:
        """Start the thread and wait until the emulator listens (its errors raise here)."""
        if self._thread is not None:
            raise ConfigError("this WanThread is already started")
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        loop = fast_event_loop()
        self._loop = loop

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._emulator.start())
            except BaseException as exc:
                started.set_exception(exc)
                loop.close()
                return
            started.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._emulator.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=main, name="farfeed-wan", daemon=True)
        self._thread.start()
        started.result(timeout=30)
        self._proxy = ThreadSafeEmulator(self._emulator, loop)
        return self

    def stop(self) -> None:
        """Reset open connections, stop the loop, join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> WanThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def emulator(self) -> ThreadSafeEmulator:
        """Thread-safe handle: ``update``, ``set_link``, ``cut``, ``schedule_cut``, ``stats``."""
        if self._proxy is None:
            raise ConfigError("the WanThread is not started")
        return self._proxy

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the emulator listens on."""
        return self._emulator.address

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the emulator."""
        return http_url(self.address)

    def url_for(self, base_url: str) -> str:
        """``base_url`` with its host:port replaced by the emulator's."""
        return rewrite_url(base_url, self.address)
