"""Flow control: how many bytes to keep in flight, how many to hold, and how big a request is.

Two limits, both measured while running and capped by the memory budget.

- **In flight** (requested, not arrived): ``margin x rate x RTT`` plus two requests, as
  big as they really are (``decode="batch"`` asks for whole batches, ``least_request``).
  Enough to carry the consumption rate across the distance, and no more: bytes in
  flight share the link, so a burst of them would delay the request needed next. With
  ``margin > 1`` this is also the slow start: while the consumer waits, the rate it
  sees is what the window delivers, and the window is ``margin`` times that.
- **Held** (in flight + arrived, not yet consumed): the in-flight target plus a
  ``cushion`` of ``rate x cushion`` seconds of samples, to absorb hiccups.

``rate`` is the consumption rate (bytes/s, smoothed over about ``tau`` seconds) and
RTT the smallest time to first byte seen: queueing behind our own bytes is not
distance, and counting it would feed the window with itself.
"""

from __future__ import annotations

import math
import time

from farfeed.errors import ConfigError

MIN_REQUEST = 256 * 1024
MAX_REQUEST = 32 * 2**20
#: A request costs a fixed ~1 ms of CPU at the gateway (HTTP, JSON, thread hops) and 1-2 ms
#: in the fetch thread (planning, the event loop) on top of its bytes
#: (scripts/gateway_per_request.py, scripts/cpu_by_thread.py). Carrying at least this many
#: seconds of consumption keeps that cost to a few % at any rate (at 700 MB/s, 35 MB
#: requests: `MAX_REQUEST` and the memory budget cap them), while a slow consumer still
#: gets small requests (a short first batch on a thin link). 0.05 against 0.02: the
#: gateway's CPU per GB 0.87-0.89 x, the client's 0.94-0.97 x (interleaved A/B,
#: docs/BENCHMARKS.md, "Bigger requests").
CPU_REQUEST_S = 0.05


class Window:
    """The in-flight and held targets of one worker.

    >>> w = Window(budget=128 * 2**20, first_request=4 * 2**20)
    >>> w.update(), w.inflight, w.request_bytes()
    """

    def __init__(
        self,
        *,
        budget: int,
        first_request: int,
        margin: float = 2.0,
        cushion: float = 1.0,
        tau: float = 1.0,
        least_request: int = 1,
    ) -> None:
        if budget < 1 or first_request < 1 or margin <= 1 or cushion < 0 or tau <= 0:
            raise ConfigError(
                f"bad window settings: budget={budget!r} first_request={first_request!r} "
                f"margin={margin!r} (must be > 1) cushion={cushion!r} tau={tau!r}"
            )
        self.budget = budget
        self.margin = margin
        self.cushion = cushion
        self.tau = tau
        self.first_request = min(first_request, budget)
        #: requests are never smaller (whole batches: the planner rounds them up)
        self.least_request = least_request
        self.rtt = 0.0  # smallest time to first byte seen, seconds
        self.rate = 0.0  # consumption, bytes/s (exponentially smoothed)
        self.recent = 0.0  # consumption over the last ~0.1 s, bytes/s (sizes requests)
        self.started = False  # True once the first request arrived
        self._consumed = 0
        self._rate_t = time.monotonic()
        self.inflight = self.first_request  # target for bytes in flight
        self.target = self.first_request  # target for bytes held (in flight + buffered)

    def on_first_byte(self, seconds: float) -> None:
        """A request's first item arrived ``seconds`` after it was sent."""
        self.rtt = seconds if self.rtt == 0 else min(self.rtt, seconds)

    def on_arrival(self) -> None:
        """A request completed: the window may open beyond the first request."""
        if not self.started:
            self.started = True
            self._rate_t = time.monotonic()
            self._consumed = 0

    def on_consumed(self, nbytes: int) -> None:
        """The consumer took ``nbytes`` (called from the consumer thread)."""
        self._consumed += nbytes

    def update(self) -> int:
        """Recompute both targets from the latest measurements; returns the held target."""
        if not self.started:
            self.inflight = self.target = self.first_request
            return self.target
        now = time.monotonic()
        dt = now - self._rate_t
        if dt >= 0.1:
            inst = self._consumed / dt
            self.recent = inst
            self.rate += (inst - self.rate) * (1 - math.exp(-dt / self.tau))
            self._consumed, self._rate_t = 0, now
        request = max(self.request_bytes(), self.least_request)  # what will really be asked
        carry = self.margin * self.rate * self.rtt + 2 * request
        self.inflight = int(min(self.budget, max(self.first_request, carry)))
        held = self.inflight + self.rate * self.cushion
        self.target = int(min(self.budget, max(2 * self.first_request, held)))
        return self.target

    def request_bytes(self) -> int:
        """Size of the next request: about half the bytes the rate needs per RTT, so a few
        requests (on a few connections) are always in flight, and at least
        ``CPU_REQUEST_S`` of consumption, so the fixed cost of a request stays small.

        Between the first arrival and the first measured rate (~0.1 s), half the first
        request: the window (one first request) then goes out as two requests, on the
        connection just used and one more, not as a burst of `MIN_REQUEST` ones whose
        connections and handshakes would compete for the CPU with handing the first
        batch on."""
        if not self.started:
            return self.first_request
        if self.rate == 0 and self.recent == 0:
            return max(1, min(self.budget // 8, max(MIN_REQUEST, self.first_request // 2)))
        share = max(self.rate * max(self.rtt, 0.01) / 2, max(self.rate, self.recent) * CPU_REQUEST_S)
        return max(1, min(self.budget // 8, max(MIN_REQUEST, min(MAX_REQUEST, int(share)))))
