"""`WanEmulator`: an asyncio TCP proxy that puts an emulated long link in front of a server.

>>> emu = WanEmulator(upstream=("127.0.0.1", 8470), link=Link.from_preset("tokyo-fukuoka"))
>>> await emu.start(); url = emu.url_for("http://127.0.0.1:8470/imagenet")
>>> emu.update(rtt=0.030); emu.cut(mode="stall", duration=2.0); await emu.stop()

Each accepted connection gets an upstream connection and two `Pipe`s (up, down), see
`connection`; the pipes share the emulator's `LinkState` (settings, bandwidth clocks, stall).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from farfeed.errors import ConfigError
from farfeed.wan.address import check_address, rewrite_url
from farfeed.wan.connection import Connection, Side
from farfeed.wan.cuts import Cut, CutControls, CutPlan, CutTimers
from farfeed.wan.link import Link, require_link
from farfeed.wan.state import LinkState
from farfeed.wan.stats import RateMeter, WanStats
from farfeed.wan.timers import Timers, clock

#: How often the throughput meter samples the counters, seconds.
METER_TICK = 0.25


class WanEmulator(CutControls):
    """A TCP proxy from ``listen`` to ``upstream`` that behaves like `Link` says."""

    def __init__(
        self,
        *,
        upstream: tuple[str, int],
        link: Link,
        listen: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        link = require_link(link)
        self.upstream = check_address("upstream", upstream)
        self.listen = check_address("listen", listen)
        self.state = LinkState(link)
        self.connections: set[Connection] = set()
        self.total_connections = 0
        self.failed_connections = 0
        self.cuts = 0
        self._refuse_until = 0.0
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._meter = RateMeter()
        self._cut_timers = CutTimers(self.apply_cut)

    @property
    def link(self) -> Link:
        """The link as it is now."""
        return self.state.link

    async def start(self) -> None:
        """Bind ``listen`` and start accepting."""
        if self._server is not None:
            raise ConfigError("this WanEmulator is already started")
        self._loop = asyncio.get_running_loop()
        self.state.timers = Timers(self._loop)
        host, port = self.listen
        try:
            self._server = await self._loop.create_server(self._accept, host, port, backlog=1024)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
        self._tick()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the emulator listens on (the real port when asked for port 0)."""
        if self._server is None:
            raise ConfigError("the WanEmulator is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def url_for(self, base_url: str) -> str:
        """``base_url`` with its host and port replaced by the emulator's."""
        return rewrite_url(base_url, self.address)

    async def stop(self) -> None:
        """Stop accepting, reset every open connection, cancel scheduled cuts."""
        self._cut_timers.cancel()
        if self._server is None:
            return
        self._server.close()
        for conn in list(self.connections):
            conn.abort()
        await asyncio.sleep(0)
        await self._server.wait_closed()
        self._server = None
        if self.state.timers is not None:
            self.state.timers.close()
            self.state.timers = None

    def _accept(self) -> Side:
        loop = self._require_loop()
        conn = Connection(self, loop)
        self.total_connections += 1
        self.connections.add(conn)
        return conn.client

    def opened(self, conn: Connection) -> None:
        """A client connected: hold its bytes until the upstream connection is open."""
        transport = conn.client.transport
        if transport is None or conn.finished:
            return
        if clock() < self._refuse_until:
            self.failed_connections += 1
            conn.abort()
            return
        transport.pause_reading()
        conn.task = asyncio.ensure_future(conn.connect_upstream())

    def update(self, **changes: Any) -> Link:
        """Change link settings now (``update(rtt=0.03, bandwidth=None)``); returns the new link."""
        self.set_link(self.state.link.with_(**changes))
        return self.state.link

    def set_link(self, link: Link) -> None:
        """Replace the link: new settings apply to bytes read from now on."""
        self.state.link = require_link(link)
        for conn in list(self.connections):
            conn.up.retime()
            conn.down.retime()

    def apply_cut(self, cut: Cut) -> None:
        """Cut the link now; see `CutControls.cut`."""
        self._require_loop()
        now = clock()
        self.cuts += 1
        if cut.mode == "reset":
            self._refuse_until = max(self._refuse_until, now + cut.duration)
            for conn in list(self.connections):
                self.failed_connections += 1
                conn.abort()
        else:
            self.state.stall_until = max(self.state.stall_until, now + cut.duration)
            for conn in list(self.connections):
                conn.up.retime()
                conn.down.retime()

    def plan_cuts(self, plan: CutPlan) -> None:
        """Cut the link later; see `CutControls.schedule_cut`."""
        self._cut_timers.add(self._require_loop(), plan)

    def stats(self) -> WanStats:
        """Counters now, with throughput over about the last second."""
        state = self.state
        up, down = state.up.bytes, state.down.bytes
        now = time.monotonic()
        rate_up, rate_down = self._meter.rates(now, up, down)
        return WanStats(
            bytes_up=up,
            bytes_down=down,
            open_connections=len(self.connections),
            total_connections=self.total_connections,
            failed_connections=self.failed_connections,
            throughput_up=rate_up,
            throughput_down=rate_down,
            corrupted_bytes=state.up.corrupted + state.down.corrupted,
            lost_chunks=state.up.lost_chunks + state.down.lost_chunks,
            cuts=self.cuts,
            cpu_seconds=time.process_time(),
        )

    def _tick(self) -> None:
        if self._server is None:
            return
        self._meter.sample(time.monotonic(), self.state.up.bytes, self.state.down.bytes)
        self._require_loop().call_later(METER_TICK, self._tick)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise ConfigError("the WanEmulator is not started")
        return self._loop
