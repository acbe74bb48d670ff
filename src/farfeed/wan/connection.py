"""One proxied connection: the client's socket, the upstream socket, two `Pipe`s between.

Reads go straight into uninitialised numpy buffers (the loop's buffered-protocol
path), and slices of them travel through the pipes: each byte is copied by the kernel
only. A reset on either side travels to the other behind the bytes already in flight.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

import numpy as np

from farfeed.wan.pipe import Pipe, abort_with_rst
from farfeed.wan.state import LinkState
from farfeed.wan.timers import clock

#: Transport write buffer above which a destination counts as full (ACKs are held).
WRITE_HIGH_WATER = 1 << 20
#: Bytes of each receive buffer, and the least room worth offering the loop for one read.
READ_BUFFER = 1 << 20
MIN_READ = 64 << 10


class Side(asyncio.BufferedProtocol):
    """One socket of a proxied connection: what it reads goes to ``out``, ``into`` writes to it."""

    def __init__(self, conn: Connection, out: Pipe, into: Pipe, *, is_client: bool) -> None:
        self.conn = conn
        self.out = out
        self.into = into
        self.is_client = is_client
        self.transport: asyncio.Transport | None = None
        self._buf = memoryview(b"")  # allocated at the first read
        self._used = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.out.src = transport
        self.into.dst = transport
        if self.is_client:
            self.conn.emu.opened(self.conn)

    def get_buffer(self, sizehint: int) -> memoryview:
        if len(self._buf) - self._used < MIN_READ:
            self._buf = _new_buffer()
            self._used = 0
        return self._buf[self._used :]

    def buffer_updated(self, nbytes: int) -> None:
        start = self._used
        self._used += nbytes
        self.out.feed(self._buf[start : self._used])

    def eof_received(self) -> bool:
        self.out.feed_eof()
        return True  # keep the other half open until our EOF is delivered

    def pause_writing(self) -> None:
        self.into.pause_sink()

    def resume_writing(self) -> None:
        self.into.resume_sink()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost(self, exc)


class Owner(Protocol):
    """What a connection needs of the emulator that accepted it (a `WanEmulator`)."""

    state: LinkState
    upstream: tuple[str, int]
    connections: set[Connection]
    failed_connections: int

    def opened(self, conn: Connection) -> None:
        """The client side is connected: start (or refuse) the upstream connection."""


def _new_buffer() -> memoryview:
    return memoryview(np.empty(READ_BUFFER, dtype=np.uint8)).cast("B")  # type: ignore[arg-type]


class Connection:
    """A client connection, its upstream connection, and the two pipes between them."""

    def __init__(self, emu: Owner, loop: asyncio.AbstractEventLoop) -> None:
        self.emu = emu
        now = clock()
        link = emu.state.link
        rtt = link.rtt if link.handshake else 0.0
        # Real TCP: the client's data leaves after SYN/SYN-ACK (1 RTT) and lands 1.5 RTT
        # after connect(); the server's first bytes reach the client at 2 RTT.
        self.up = Pipe(
            emu.state, emu.state.up, loop=loop, gate=now + 1.5 * rtt, on_eof_sent=self._eof_sent
        )
        self.down = Pipe(
            emu.state, emu.state.down, loop=loop, gate=now + 2 * rtt, on_eof_sent=self._eof_sent
        )
        self.client = Side(self, out=self.up, into=self.down, is_client=True)
        self.server = Side(self, out=self.down, into=self.up, is_client=False)
        self.lost = 0
        self.finished = False
        self.task: asyncio.Task[None] | None = None

    async def connect_upstream(self) -> None:
        """Open the upstream connection; until then the client is not read."""
        host, port = self.emu.upstream
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self.server, host, port)
        except OSError:
            self.emu.failed_connections += 1
            self.abort()
            return
        if self.finished:
            self.abort()
            return
        self.up.retime()
        assert self.client.transport is not None
        if not self.up.reading_paused:
            self.client.transport.resume_reading()

    def _eof_sent(self) -> None:
        if (
            self.up.eof_queued
            and self.down.eof_queued
            and not self.up.queue
            and not self.down.queue
        ):
            for side in (self.client, self.server):
                if side.transport is not None:
                    side.transport.close()

    def side_lost(self, side: Side, exc: Exception | None) -> None:
        """One socket closed: a reset travels to the other side; both gone ends the connection."""
        self.lost += 1
        if exc is not None and not self.finished:
            side.into.close()
            side.out.send_reset()
        other = self.server if side is self.client else self.client
        if self.lost == 2 or other.transport is None:
            self._finish()

    def abort(self) -> None:
        """Reset both sockets now (a link cut, or the upstream refused)."""
        for side in (self.client, self.server):
            if side.transport is not None:
                abort_with_rst(side.transport)
        self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if (
            self.task is not None
            and not self.task.done()
            and self.task is not asyncio.current_task()
        ):
            self.task.cancel()  # still connecting upstream
        self.up.close()
        self.down.close()
        self.emu.connections.discard(self)
