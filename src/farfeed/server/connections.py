"""Every open connection of one gateway process: a cap, and timeouts on what a client owes.

aiohttp closes a keep-alive connection after ``keepalive_timeout`` but has no header or
body timeout and no cap, so one slow or hostile client could hold connections (and file
descriptors) forever. Each connection's aiohttp protocol is wrapped in a `Guard`, which
notes when bytes arrive and hands everything on unchanged; `connection_middleware` tells
it when a request starts and ends. Once every `Connections.interval` seconds the pool
closes (see `farfeed.server.limits.ConnectionLimits`):

- ``idle``: no request for ``keepalive_timeout`` (also a connection that sent nothing);
- ``header``: a request header still incomplete ``header_timeout`` after its first byte;
- ``body``: no byte of a request body the client still owes for ``body_timeout``
  (while the gateway itself has paused reading, e.g. a slow disk, the clock stands still).

The cap: a new connection over ``max_connections`` makes room by closing the oldest idle
connection, first among those that never had a successful request (anonymous, stalled,
or only ``/healthz``), else the one idle longest; a client between two requests keeps its
connection while newer idle ones exist. Only when every connection is in the middle of a
request is the newcomer answered ``503`` with ``Retry-After`` and closed. So a flood of
idle connections can neither exhaust file descriptors (the default cap is three
quarters of the limit) nor lock out a client that is doing real work.

TLS connections are seen from the end of their handshake (asyncio bounds the handshake
itself, 60 s). The cap and the timers are per process (``--workers N``: each its own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from farfeed.server.limits import ConnectionLimits
from farfeed.server.logs import Summary, install_log_filters, quiet_accept_errors
from farfeed.server.metrics import Metrics
from farfeed.server.responses import RETRY_AFTER, Handler

log = logging.getLogger("farfeed.server")


class Guard(asyncio.Protocol):
    """One connection: its aiohttp protocol (``inner``) plus the times the pool checks."""

    def __init__(self, pool: Connections, inner: asyncio.Protocol) -> None:
        self.pool = pool
        self.inner = inner
        self.transport: Any = None
        now = pool.loop.time()
        self.idle_since = now  # when the last request ended (or the connection opened)
        self.last_byte = now
        self.header_since: float | None = None  # first byte of a request not yet started
        self.request: web.BaseRequest | None = None
        self.proven = False  # has had a successful request (not /healthz)
        self.refused = False

    # -- asyncio.Protocol: note, then hand on -------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if not self.pool.admit(self):
            self.refused = True
            transport.write(self.pool.busy_answer)  # type: ignore[attr-defined]
            transport.close()
            return
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        now = self.pool.loop.time()
        self.last_byte = now
        if self.request is None and self.header_since is None:
            self.header_since = now
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self.refused else self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.forget(self)
        if not self.refused:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # -- from the middleware ------------------------------------------------------------
    def started(self, request: web.BaseRequest) -> None:
        self.request = request
        self.header_since = None

    def finished(self, *, ok: bool) -> None:
        self.request = None
        self.proven = self.proven or ok
        self.idle_since = self.last_byte = self.pool.loop.time()


class Connections:
    """The open connections of one listening socket, with the cap and the timers (see the
    module docstring). Make it inside the running loop; `stop` it before the loop ends."""

    def __init__(self, limits: ConnectionLimits, *, metrics: Metrics | None = None) -> None:
        self.limits = limits
        self.cap = limits.connection_cap()
        self.metrics = metrics or Metrics()
        self.loop = asyncio.get_running_loop()
        self._open: dict[Guard, None] = {}  # oldest connection first
        shortest = min(limits.keepalive_timeout, limits.header_timeout, limits.body_timeout)
        self.interval = min(1.0, max(0.05, shortest / 10))
        message = (
            f"the gateway has {self.cap} connections open (--max-connections), all in the middle "
            "of a request; retry shortly"
        )
        body = json.dumps({"error": message}).encode()
        self.busy_answer = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        self._refused = Summary("refused a connection with 503 (every connection busy)", f"the cap is {self.cap} (--max-connections)")
        self._evicted = Summary("closed an idle connection to make room", f"the cap is {self.cap} (--max-connections)")
        self._ticker = self.loop.create_task(self._tick())

    def factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], Guard]:
        """A protocol factory for ``loop.create_server`` that guards what ``make`` builds."""
        return lambda: Guard(self, make())

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, guard: Guard) -> bool:
        """Take a new connection, closing an idle one if at the cap; False: answer 503."""
        if len(self._open) >= self.cap:
            victim = self._victim()
            if victim is None:
                self.metrics.connections_refused += 1
                self._refused.add(f"{len(self._open)} open", self.loop)
                return False
            self._close(victim, "evicted")
            self._evicted.add(f"{len(self._open)} open", self.loop)
        self._open[guard] = None
        self.metrics.connections_open = len(self._open)
        return True

    def _victim(self) -> Guard | None:
        """The oldest idle connection that never had a successful request, else the one idle longest."""
        longest: Guard | None = None
        for guard in self._open:
            if guard.request is not None:
                continue
            if not guard.proven:
                return guard
            if longest is None or guard.idle_since < longest.idle_since:
                longest = guard
        return longest

    def forget(self, guard: Guard) -> None:
        """Stop tracking a connection (closed by either side)."""
        if guard in self._open:
            del self._open[guard]
            self.metrics.connections_open = len(self._open)

    def _close(self, guard: Guard, reason: str) -> None:
        self.forget(guard)
        self.metrics.connections_closed[reason] += 1
        transport = guard.transport
        if transport is None or transport.is_closing():
            return
        if reason == "body":
            transport.abort()  # the request is cut: its handler sees the connection go
        else:
            transport.close()

    def check(self, now: float) -> None:
        """Close every connection whose client ran past a timeout."""
        limits = self.limits
        for guard in list(self._open):
            request = guard.request
            if request is None:
                if guard.header_since is not None:
                    if now - guard.header_since > limits.header_timeout:
                        self._close(guard, "header")
                elif now - guard.idle_since > limits.keepalive_timeout:
                    self._close(guard, "idle")
            elif not request.content.is_eof():
                if not guard.transport.is_reading():
                    guard.last_byte = now  # the gateway paused reading: not the client's fault
                elif now - guard.last_byte > limits.body_timeout:
                    self._close(guard, "body")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check(self.loop.time())

    async def stop(self) -> None:
        """Stop the timers (open connections are left to aiohttp's shutdown)."""
        self._ticker.cancel()
        try:
            await self._ticker
        except asyncio.CancelledError:
            pass


@web.middleware
async def connection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: tell the connection's `Guard` when a request starts and ends."""
    transport = request.transport
    guard = transport.get_protocol() if transport is not None else None
    if not isinstance(guard, Guard):
        return await handler(request)  # served without a guard (e.g. web.run_app)
    guard.started(request)
    ok = False
    try:
        resp = await handler(request)
        ok = resp.status < 400 and request.path != "/healthz"
        return resp
    finally:
        guard.finished(ok=ok)


#: aiohttp's own keep-alive timer runs this much later than the pool's: only a backstop.
BACKSTOP = 10.0


def aiohttp_keepalive(limits: ConnectionLimits) -> float:
    """The ``keepalive_timeout`` to give aiohttp's runner (the pool closes idle connections
    first, and counts them; aiohttp's default, an hour, would be no backstop at all)."""
    return limits.keepalive_timeout + BACKSTOP


class Listener:
    """A listening socket serving an aiohttp runner through guarded connections."""

    def __init__(self, server: asyncio.Server, connections: Connections) -> None:
        self.server = server
        self.connections = connections

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting and stop the timers; then ``runner.cleanup()`` closes the connections."""
        self.server.close()
        await self.connections.stop()


async def listen(
    runner: web.BaseRunner,
    sock: socket.socket,
    *,
    limits: ConnectionLimits,
    metrics: Metrics | None = None,
    ssl_context: Any = None,
    backlog: int = 1024,
) -> Listener:
    """Serve ``runner`` (set up) on the bound socket ``sock`` with `Connections` guarding it;
    accept() failures are logged as one summary line per interval."""
    loop = asyncio.get_running_loop()
    quiet_accept_errors(loop)
    install_log_filters()
    server_factory = runner.server
    assert server_factory is not None, "call runner.setup() first"
    connections = Connections(limits, metrics=metrics)
    server = await loop.create_server(
        connections.factory(server_factory), sock=sock, ssl=ssl_context, backlog=backlog
    )
    return Listener(server, connections)
