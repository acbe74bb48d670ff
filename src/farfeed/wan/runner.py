"""Run the emulator beside other code: `WanThread` (own loop in a thread), and helpers.

>>> with WanThread(upstream=("127.0.0.1", 8470), link=Link(rtt=0.015)) as wan:
...     ds = farfeed.Dataset(wan.url + "/imagenet"); wan.emulator.update(rtt=0.030)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import urllib.parse
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from farfeed.errors import ConfigError
from farfeed.wan.emulator import CutMode, WanEmulator
from farfeed.wan.link import Link
from farfeed.wan.stats import WanStats

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed (faster), else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def parse_address(text: str, *, what: str = "address") -> tuple[str, int]:
    """``"HOST:PORT"`` (or ``"[v6]:PORT"``) as a (host, port) tuple; ConfigError quotes bad text."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port)


def format_address(address: tuple[str, int]) -> str:
    """(host, port) as ``HOST:PORT`` (IPv6 hosts in brackets)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def rewrite_url(url: str, address: tuple[str, int]) -> str:
    """``url`` sent through the emulator: same scheme, path and query, host:port replaced.

    >>> rewrite_url("http://127.0.0.1:8470/imagenet", ("127.0.0.1", 9470))
    'http://127.0.0.1:9470/imagenet'
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ConfigError(f"expected an absolute URL like http://host:port/path, got {url!r}")
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = format_address(address)
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class ThreadSafeEmulator:
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

    def cut(self, *, mode: CutMode = "reset", duration: float = 0.0) -> None:
        """Cut the link now; see `WanEmulator.cut`."""
        self._call(self._emulator.cut, mode=mode, duration=duration)

    def schedule_cut(
        self,
        at: float,
        *,
        mode: CutMode = "reset",
        duration: float = 0.0,
        every: float | None = None,
    ) -> None:
        """Cut the link later; see `WanEmulator.schedule_cut`."""
        self._call(self._emulator.schedule_cut, at, mode=mode, duration=duration, every=every)

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
        loop = new_event_loop()
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
        return f"http://{format_address(self.address)}"

    def url_for(self, base_url: str) -> str:
        """``base_url`` with its host:port replaced by the emulator's."""
        return rewrite_url(base_url, self.address)
