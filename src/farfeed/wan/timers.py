"""Timers to the tenth of a millisecond, for delays that must not drift by a whole one.

The event loop's own timers are millisecond timers (uvloop rounds delays and caches its
clock per pass; asyncio rounds epoll timeouts up), which is a 5-10 % error on a 15 ms
RTT. Here one Linux ``timerfd`` (absolute CLOCK_MONOTONIC time, the clock of
`time.monotonic`) wakes the loop at the earliest deadline of a heap of timers. Where
``timerfd`` is missing, the loop's ``call_later`` stands in.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import os
import sys
import time
from collections.abc import Callable

#: The clock every deadline is expressed in (CLOCK_MONOTONIC on Linux).
clock = time.monotonic
#: A timer due within this many seconds runs now rather than waiting for another wake-up.
SLACK = 0.00005

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class Timer:
    """A pending callback; `cancel` stops it (it stays in the heap until its turn)."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run this timer."""
        self.cancelled = True


class Timers:
    """Deadline timers on ``loop`` driven by one timerfd (or by ``call_later`` without one)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._armed = float("inf")
        self._fallback: asyncio.TimerHandle | None = None
        self._fd = _timerfd_create()
        self._libc: ctypes.CDLL | None = None
        if self._fd is not None:
            self._libc = ctypes.CDLL(None, use_errno=True)
            loop.add_reader(self._fd, self._fire)

    @property
    def precise(self) -> bool:
        """True when a timerfd drives the timers."""
        return self._fd is not None

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` at ``when`` (a `clock` time)."""
        timer = Timer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        if when < self._armed:
            self._arm(when)
        return timer

    def _arm(self, when: float) -> None:
        self._armed = when
        if self._fd is None:
            if self._fallback is not None:
                self._fallback.cancel()
            self._fallback = self.loop.call_later(max(0.0, when - clock()), self._fire)
            return
        assert self._libc is not None
        when = max(when, 1e-6)  # an all-zero time would disarm the timer
        sec = int(when)
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, int((when - sec) * 1e9)))
        if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"timerfd_settime: {os.strerror(errno)}")

    def _fire(self) -> None:
        if self._fd is not None:
            try:
                os.read(self._fd, 8)
            except BlockingIOError:
                pass
        self._fallback = None
        heap = self._heap
        while heap:
            when, _, timer = heap[0]
            if when > clock() + SLACK:
                break
            heapq.heappop(heap)
            if timer.cancelled:
                continue
            try:
                timer.callback()
            except Exception as exc:  # one bad callback must not stop the others
                self.loop.call_exception_handler(
                    {"message": "farfeed.wan timer failed", "exception": exc}
                )
        self._armed = float("inf")
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])

    def close(self) -> None:
        """Forget every timer and release the timerfd."""
        self._heap.clear()
        if self._fallback is not None:
            self._fallback.cancel()
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None


def _timerfd_create() -> int | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
    except (OSError, AttributeError):
        return None
    return fd if fd >= 0 else None
