"""How to cut a large object into parts and how many to move at once, from the link.

The same arithmetic as the loader's (DESIGN.md, "The physics"): to fill a link of
bandwidth B at round trip RTT, B x RTT bytes must be in flight, and one TCP stream
carries at most window / RTT; so we need at least B x RTT / window streams. Each part
costs one idle round trip on its connection (request out, first byte back), so a part
must take many RTTs to send for that idle time to be small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from farfeed.errors import ConfigError
from farfeed.transfer.retry import RETRY_FOR_S, RetryPolicy

MiB = 1024 * 1024
#: Part sizes are multiples of this.
UNIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Transfer:
    """The link a transfer is planned for; defaults are the design target (100 Gb/s, 15 ms).

    >>> Transfer(rtt=0.015, bandwidth=100e9 / 8).connections
    90
    >>> Transfer(retry_for=600.0)   # ride out outages of up to 10 minutes

    ``retry_for``: seconds a transfer keeps retrying transient errors after the first
    failure (`farfeed.transfer.RetryPolicy`); checkpoints and weights use it for every call.
    """

    #: Round-trip time in seconds.
    rtt: float = 0.015
    #: Link bandwidth in bytes per second.
    bandwidth: float = 100e9 / 8
    #: Largest TCP window one connection reaches, in bytes (Linux default send cap).
    window: int = 4 * MiB
    #: Fraction of each part's time allowed for the idle round trip it costs.
    overhead: float = 0.05
    #: Smallest part, in bytes.
    min_part: int = 8 * MiB
    #: Largest part, in bytes.
    max_part: int = 256 * MiB
    #: Fewest parallel connections.
    min_connections: int = 4
    #: Most parallel connections.
    max_connections: int = 128
    #: Seconds to keep retrying after a transient failure (a cut link, a gateway restart).
    retry_for: float = RETRY_FOR_S

    def __post_init__(self) -> None:
        RetryPolicy(retry_for=self.retry_for)  # a bad retry_for fails here, quoted
        if not (self.rtt >= 0 and self.bandwidth > 0 and self.window > 0):
            raise ConfigError(
                f"need rtt >= 0, bandwidth > 0, window > 0; got rtt={self.rtt!r} "
                f"bandwidth={self.bandwidth!r} window={self.window!r}"
            )
        if not 0 < self.overhead < 1:
            raise ConfigError(f"overhead must be in (0, 1), got {self.overhead!r}")
        if not UNIT <= self.min_part <= self.max_part:
            raise ConfigError(f"need 64 KiB <= min_part <= max_part, got {self.min_part!r}, {self.max_part!r}")
        if not 0 < self.min_connections <= self.max_connections:
            raise ConfigError(
                f"need 0 < min_connections <= max_connections, got {self.min_connections!r}, {self.max_connections!r}"
            )

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of every call this transfer makes."""
        return RetryPolicy(retry_for=self.retry_for)

    @property
    def in_flight(self) -> float:
        """Bytes that must be in flight to fill the link: bandwidth x RTT."""
        return self.bandwidth * self.rtt

    @property
    def connections(self) -> int:
        """Streams needed: twice the window-limited minimum (parts spend time idle), bounded."""
        need = 2 * math.ceil(self.in_flight / self.window)
        return max(self.min_connections, min(self.max_connections, need))

    def part_size(self, total: int) -> int:
        """Part size for an object of ``total`` bytes, a multiple of 64 KiB.

        Large enough that the idle RTT per part is at most ``overhead`` of its send time
        at the per-connection share of the bandwidth; small enough that every
        connection gets a few parts.
        """
        per_stream = min(self.bandwidth / self.connections, self.window / max(self.rtt, 1e-6))
        want = per_stream * self.rtt * (1 - self.overhead) / self.overhead
        spread = total / (2 * self.connections)
        size = max(self.min_part, min(self.max_part, want, spread))
        return max(UNIT, int(size) // UNIT * UNIT)
