"""What every connection shares: the live link settings, each direction's bandwidth
clock and counters, the stall, the random sources and the timers."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from farfeed.wan.link import Link
from farfeed.wan.timers import Timers


class Direction:
    """State shared by every connection in one direction: the bandwidth clock, counters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.free_at = 0.0  # when the link finishes sending what it already accepted
        self.bytes = 0  # delivered
        self.corrupted = 0
        self.lost_chunks = 0

    def depart(self, now: float, nbytes: int, bandwidth: float | None) -> float:
        """When ``nbytes`` read at ``now`` have left, after everything queued before them."""
        if bandwidth is None:
            return now
        start = now if now > self.free_at else self.free_at
        self.free_at = start + nbytes / bandwidth
        return self.free_at


class LinkState:
    """The emulator's live settings as pipes see them (the link may change while running)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.stall_until = 0.0  # nothing is delivered before this `clock()` time
        self.up = Direction("up")
        self.down = Direction("down")
        self.random = random.Random()
        self.timers: Timers | None = None  # set when the emulator starts
        self._np_rng: Any = None

    def corrupt(
        self, data: bytes | memoryview, rate: float, direction: Direction
    ) -> bytes | memoryview:
        """Flip bytes of ``data`` independently with probability ``rate`` (numpy, no per-byte Python)."""
        if self._np_rng is None:
            self._np_rng = np.random.default_rng()
        rng = self._np_rng
        count = int(rng.binomial(len(data), rate))
        if count == 0:
            return data
        positions = np.unique(rng.integers(0, len(data), count))
        buf = bytearray(data)
        arr = np.frombuffer(buf, dtype=np.uint8)
        arr[positions] ^= rng.integers(1, 256, len(positions), dtype=np.uint8)
        direction.corrupted += len(positions)
        return memoryview(buf)
