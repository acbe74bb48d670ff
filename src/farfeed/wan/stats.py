"""What the emulator has carried: counters, and throughput over the last second or so."""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WanStats:
    """A snapshot of the emulator. Bytes are those delivered; throughputs are bytes/s, recent."""

    bytes_up: int = 0  # client -> upstream
    bytes_down: int = 0  # upstream -> client
    open_connections: int = 0
    total_connections: int = 0
    failed_connections: int = 0  # upstream refused, or reset by a cut
    throughput_up: float = 0.0
    throughput_down: float = 0.0
    corrupted_bytes: int = 0
    lost_chunks: int = 0
    cuts: int = 0
    cpu_seconds: float = 0.0  # CPU time of the process running the emulator

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WanStats:
        """The inverse of `to_dict`."""
        return cls(**data)

    def describe(self) -> str:
        """One line for the CLI."""
        return (
            f"up {_size(self.bytes_up)} ({_size(self.throughput_up)}/s)  "
            f"down {_size(self.bytes_down)} ({_size(self.throughput_down)}/s)  "
            f"connections {self.open_connections} open / {self.total_connections} total"
            f" / {self.failed_connections} failed  corrupted {self.corrupted_bytes} B  "
            f"lost chunks {self.lost_chunks}  cuts {self.cuts}"
        )


def _size(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} B"


class RateMeter:
    """Throughput over a sliding span: fed (time, up, down) samples every so often."""

    def __init__(self, *, span: float = 1.0) -> None:
        self.span = span
        self.samples: deque[tuple[float, int, int]] = deque()

    def sample(self, now: float, up: int, down: int) -> None:
        """Record the counters at ``now`` and forget samples older than the span."""
        self.samples.append((now, up, down))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.span:
            self.samples.popleft()

    def rates(self, now: float, up: int, down: int) -> tuple[float, float]:
        """Bytes/s up and down between the oldest kept sample and ``now``."""
        if not self.samples:
            return 0.0, 0.0
        then, up0, down0 = self.samples[0]
        elapsed = now - then
        if elapsed <= 0:
            return 0.0, 0.0
        return (up - up0) / elapsed, (down - down0) / elapsed
