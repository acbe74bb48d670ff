"""Flow control: how many bytes to keep in flight, and how big each request is.

The target is ``margin x consumption rate x RTT`` plus a few requests' worth (so
several connections stay busy), measured while running, times a ``boost`` that
doubles whenever the consumer had to wait while the window was the limit (the slow
start at the beginning, or a rate/RTT estimate that was too low) and decays back
slowly. It never exceeds the memory budget.
"""

from __future__ import annotations

import time

from farfeed.errors import ConfigError

MIN_REQUEST = 256 * 1024
MAX_REQUEST = 8 * 2**20


class Window:
    """The in-flight target of one worker, from measured consumption rate and RTT.

    >>> w = Window(budget=128 * 2**20, first_request=4 * 2**20)
    >>> w.target, w.request_bytes()
    """

    def __init__(
        self,
        *,
        budget: int,
        first_request: int,
        margin: float = 2.0,
        concurrency: int = 8,
        decay_s: float = 30.0,
    ) -> None:
        if budget < 1 or first_request < 1 or margin <= 0 or concurrency < 1:
            raise ConfigError(
                f"bad window settings: budget={budget!r} first_request={first_request!r} "
                f"margin={margin!r} concurrency={concurrency!r}"
            )
        self.budget = budget
        self.margin = margin
        self.concurrency = concurrency
        self.decay_s = decay_s
        self.first_request = min(first_request, budget)
        self.rtt = 0.0  # min recent time to first byte, seconds
        self.rate = 0.0  # consumption, bytes/s (EWMA)
        self.boost = 1.0
        self.started = False  # True once the first request arrived
        self._consumed = 0
        self._rate_t = time.monotonic()
        self._rtt_samples: list[float] = []
        self._boost_t = time.monotonic()
        self.target = self.first_request

    def on_first_byte(self, seconds: float) -> None:
        """A request's first item arrived ``seconds`` after it was sent (RTT + server time)."""
        self._rtt_samples.append(seconds)
        del self._rtt_samples[:-32]
        self.rtt = min(self._rtt_samples)

    def on_arrival(self) -> None:
        """A request completed: the slow start may open beyond the first request."""
        self.started = True

    def on_consumed(self, nbytes: int) -> None:
        """The consumer took ``nbytes`` (called from the consumer thread)."""
        self._consumed += nbytes

    def on_limited_stall(self) -> None:
        """The consumer waited while the window was full: open it (doubling)."""
        self.boost = min(self.boost * 2.0, 1024.0)
        self._boost_t = time.monotonic()

    def update(self) -> int:
        """Recompute the target from the latest measurements; returns it."""
        now = time.monotonic()
        dt = now - self._rate_t
        if dt >= 0.25:
            inst = self._consumed / dt
            self.rate = inst if self.rate == 0 else 0.7 * self.rate + 0.3 * inst
            self._consumed, self._rate_t = 0, now
        if self.boost > 1.0 and now - self._boost_t > 1.0:  # decay without stalls
            self.boost = max(1.0, self.boost * 0.5 ** ((now - self._boost_t) / self.decay_s))
            self._boost_t = now
        if not self.started:
            self.target = self.first_request
            return self.target
        need = self.margin * self.rate * max(self.rtt, 0.001)
        floor = 2 * self.first_request + self.concurrency * MIN_REQUEST
        self.target = int(min(self.budget, max(floor, need) * self.boost + self.request_bytes()))
        return self.target

    def request_bytes(self) -> int:
        """Size of the next request: a slice of the window, so many run at once."""
        if not self.started:
            return self.first_request
        share = int(self.margin * self.rate * max(self.rtt, 0.001) * self.boost) // self.concurrency
        return max(MIN_REQUEST, min(MAX_REQUEST, share, self.budget // 4))
