"""One direction of one emulated connection: window, bandwidth clock, delay, faults.

A chunk read from the source is admitted while the connection's window has room,
stamped with its departure on the direction's shared bandwidth clock, delivered to the
destination one-way later (plus jitter, plus one RTT if a segment of it was "lost"),
and its window credit comes back another one-way later (the ACK). Delivery times only
move forward, so bytes never reorder. One timer per pipe for deliveries and one for
ACKs, whatever the number of chunks in flight.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable
from typing import Union

from farfeed.wan.link import SEGMENT, Link
from farfeed.wan.state import Direction, LinkState
from farfeed.wan.timers import Timer, clock

#: Deliver a chunk this early rather than wait for another wake-up (see `timers`).
EPS = 0.0001
#: Smallest and largest bandwidth-clock segment: a large read is split so one chunk's
#: serialisation time never adds much to the RTT a window-limited stream sees.
MIN_SEGMENT = 4096
MAX_SEGMENT = 256 * 1024


class Mark(enum.Enum):
    """Markers that travel in a pipe's queue behind the data before them."""

    EOF = "eof"
    RESET = "reset"


Delivery = Union[bytes, memoryview, Mark]  # what a pipe's queue holds (with its time)


class Pipe:
    """Bytes from ``src`` to ``dst`` across the emulated link, in order."""

    def __init__(
        self,
        state: LinkState,
        direction: Direction,
        *,
        loop: asyncio.AbstractEventLoop,
        gate: float,
        on_eof_sent: Callable[[], None],
    ) -> None:
        self.state = state
        self.dir = direction
        self.loop = loop
        self.gate = gate  # earliest delivery (the handshake)
        self.on_eof_sent = on_eof_sent
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.inflight = 0
        self.backlog: deque[tuple[float, bytes | memoryview]] = deque()  # (read at, bytes)
        self.queue: deque[tuple[float, Delivery]] = deque()
        self.acks: deque[tuple[float, int]] = deque()
        self.last_deliver = 0.0
        self.deliver_timer: Timer | None = None
        self.ack_timer: Timer | None = None
        self.reading_paused = False
        self.sink_paused = False
        self.eof_in = False
        self.eof_queued = False
        self.closed = False

    # -- input side ---------------------------------------------------------------
    def feed(self, data: bytes | memoryview) -> None:
        """Bytes read from the source."""
        if self.closed:
            return
        self.backlog.append((clock(), data))
        self.pump()

    def feed_eof(self) -> None:
        """The source half-closed: send EOF after everything before it."""
        self.eof_in = True
        self.pump()

    def send_reset(self) -> None:
        """The source reset: abort the destination after the bytes already in flight."""
        self.backlog.clear()
        self.eof_queued = True
        self._enqueue(clock() + self.state.link.one_way, Mark.RESET)

    def pump(self, credit_at: float = 0.0) -> None:
        """Admit backlog while the window has room; pause or resume reading to match.

        Bytes that waited for window credit leave when it came back (``credit_at``, the
        ACK's planned time), not when the timer got round to it: no drift per RTT.
        """
        window = self.state.link.window
        backlog = self.backlog
        while backlog and self.inflight < window:
            room = window - self.inflight
            read_at, head = backlog[0]
            if len(head) <= room:
                backlog.popleft()
            else:
                view = memoryview(head)
                head = view[:room]
                backlog[0] = (read_at, view[room:])
            self._admit(head, read_at if read_at > credit_at else credit_at)
        if self.eof_in and not backlog and not self.eof_queued:
            self.eof_queued = True
            self._enqueue(clock() + self.state.link.one_way, Mark.EOF)
        src = self.src
        if src is None or self.closed:
            return
        if backlog and not self.reading_paused:
            self.reading_paused = True
            src.pause_reading()
        elif not backlog and self.reading_paused:
            self.reading_paused = False
            src.resume_reading()

    def _admit(self, data: bytes | memoryview, now: float) -> None:
        state = self.state
        link = state.link
        size = len(data)
        self.inflight += size
        if link.corrupt_rate and link.corrupt_direction in ("both", self.dir.name):
            data = state.corrupt(data, link.corrupt_rate, self.dir)
        bandwidth = link.bandwidth
        if bandwidth is None:
            self._schedule(now, data, link)
            return
        segment = min(MAX_SEGMENT, max(MIN_SEGMENT, link.window // 32))
        if size <= segment:
            self._schedule(self.dir.depart(now, size, bandwidth), data, link)
            return
        view = memoryview(data)
        for offset in range(0, size, segment):
            piece = view[offset : offset + segment]
            self._schedule(self.dir.depart(now, len(piece), bandwidth), piece, link)

    def _schedule(self, departs: float, data: bytes | memoryview, link: Link) -> None:
        deliver = departs + link.one_way
        rand = self.state.random
        if link.jitter:
            deliver += rand.random() * link.jitter
        if link.loss:
            segments = -(-len(data) // SEGMENT)
            if rand.random() < 1.0 - (1.0 - link.loss) ** segments:
                deliver += link.rtt
                self.dir.lost_chunks += 1
        self._enqueue(deliver, data)

    def _enqueue(self, deliver: float, chunk: Delivery) -> None:
        if deliver < self.last_deliver:
            deliver = self.last_deliver  # never overtake: bytes stay in order
        if deliver < self.gate:
            deliver = self.gate
        self.last_deliver = deliver
        if not self.queue and not isinstance(chunk, Mark) and self._write_now(deliver, chunk):
            return
        self.queue.append((deliver, chunk))
        if self.deliver_timer is None and self.dst is not None:
            self.deliver_timer = self._at(deliver, self.flush)

    def _write_now(self, deliver: float, chunk: bytes | memoryview) -> bool:
        """Due already (no delay, e.g. the local preset): write it without a timer."""
        now = clock()
        dst = self.dst
        if deliver > now + EPS or dst is None or self.closed or self.state.stall_until > now:
            return False
        size = len(chunk)
        if not dst.is_closing():
            dst.write(chunk)
            self.dir.bytes += size
        ack = deliver + self.state.link.one_way
        if ack <= now + EPS and not self.acks and not self.sink_paused:
            self.inflight -= size  # the ACK is back already; pump's loop reads on
        else:
            self.acks.append((ack, size))
            self._arm_acks()
        return True

    def _at(self, when: float, callback: Callable[[], None]) -> Timer:
        timers = self.state.timers
        assert timers is not None, "the emulator is not started"
        return timers.call_at(when, callback)

    # -- output side --------------------------------------------------------------
    def flush(self) -> None:
        """Write every chunk that is due; queue its ACK; re-arm for the next one."""
        self.deliver_timer = None
        dst = self.dst
        if self.closed or dst is None:
            return
        now = clock()
        stall = self.state.stall_until
        if stall > now + EPS:
            self.deliver_timer = self._at(stall, self.flush)
            return
        one_way = self.state.link.one_way
        queue = self.queue
        acks = self.acks
        out: list[bytes | memoryview] = []
        total = 0
        mark: Mark | None = None
        limit = now + EPS
        while queue and queue[0][0] <= limit:
            when, chunk = queue.popleft()
            if isinstance(chunk, Mark):
                mark = chunk
                break
            out.append(chunk)
            size = len(chunk)
            total += size
            acks.append(((when if when >= stall else stall) + one_way, size))
        if out and not dst.is_closing():
            dst.writelines(out)
            self.dir.bytes += total
        if mark is Mark.EOF:
            if not dst.is_closing() and dst.can_write_eof():
                dst.write_eof()
            self.on_eof_sent()
        elif mark is Mark.RESET:
            abort_with_rst(dst)
        if queue and self.deliver_timer is None and not self.closed:
            self.deliver_timer = self._at(queue[0][0], self.flush)
        self._arm_acks()

    def _arm_acks(self) -> None:
        if self.ack_timer is None and self.acks and not self.sink_paused and not self.closed:
            self.ack_timer = self._at(self.acks[0][0], self.on_acks)

    def on_acks(self) -> None:
        """ACKs came back: return window credit and read more."""
        self.ack_timer = None
        if self.sink_paused or self.closed:
            return
        limit = clock() + EPS
        acks = self.acks
        freed = 0
        credit_at = 0.0
        while acks and acks[0][0] <= limit:
            credit_at, size = acks.popleft()
            freed += size
        self.inflight -= freed
        if freed:
            self.pump(credit_at)
        self._arm_acks()

    def pause_sink(self) -> None:
        """The destination's buffer is full: hold ACKs (the receiver's window is shut)."""
        self.sink_paused = True
        if self.ack_timer is not None:
            self.ack_timer.cancel()
            self.ack_timer = None

    def resume_sink(self) -> None:
        """The destination drained: ACKs flow again."""
        self.sink_paused = False
        self._arm_acks()

    def retime(self) -> None:
        """Settings changed (window, stall): re-admit and re-arm the delivery timer."""
        if self.closed:
            return
        self.pump()
        if self.deliver_timer is not None:
            self.deliver_timer.cancel()
            self.deliver_timer = None
        if self.queue and self.dst is not None:
            self.deliver_timer = self._at(self.queue[0][0], self.flush)

    def close(self) -> None:
        """Drop everything in flight and stop the timers."""
        self.closed = True
        for timer in (self.deliver_timer, self.ack_timer):
            if timer is not None:
                timer.cancel()
        self.deliver_timer = self.ack_timer = None
        self.backlog.clear()
        self.queue.clear()
        self.acks.clear()


def abort_with_rst(transport: asyncio.Transport) -> None:
    """Close ``transport`` so the peer sees a connection reset (SO_LINGER 0), not a FIN."""
    import socket
    import struct

    if transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
