"""What the emulated link does: a small, validated value object, and named presets.

>>> Link(rtt=0.015, bandwidth=100e9 / 8)          # the PoC's line: 15 ms, 100 Gb/s
>>> Link.from_preset("tokyo-fukuoka").with_(window=8 * 2**20)
>>> Link.from_distance(500)                         # 4.9 us/km each way + equipment
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from farfeed.errors import ConfigError

#: Light in fibre, one way, seconds per km.
FIBRE_S_PER_KM = 4.9e-6
#: Round-trip allowance for equipment and route detours, added by `Link.from_distance`.
#: 5.2 ms makes 1,000 km come out at the PoC's measured 15 ms.
EQUIPMENT_MS = 5.2
#: Bytes per TCP segment; `Link.loss` is a per-segment probability.
SEGMENT = 1448
#: Values of `Link.corrupt_direction`.
CORRUPT_DIRECTIONS = ("both", "down", "up")


@dataclass(frozen=True)
class Link:
    """The emulated path, the same each way: ``Link(rtt=0.015, bandwidth=100e9 / 8)``.

    rtt: seconds, round trip, half each way. bandwidth: bytes/s per direction shared by
    all connections (None: unlimited). window: bytes in flight per connection per
    direction (read until its ACK would return). jitter: seconds, bound of the extra
    one-way delay (bytes never reorder). loss: probability that a 1448-byte segment is
    lost; a chunk holding a lost segment arrives one RTT late, and so does what follows
    it on that connection. handshake: a new connection waits one extra RTT.
    corrupt_rate: probability per byte of flipping it. corrupt_direction: which bytes
    may be flipped: ``"both"``, ``"down"`` (upstream server to client: responses only,
    what an integrity test of a data path wants) or ``"up"`` (client to server).
    """

    rtt: float = 0.0
    bandwidth: float | None = None
    window: int = 4 * 2**20
    jitter: float = 0.0
    loss: float = 0.0
    handshake: bool = True
    corrupt_rate: float = 0.0
    corrupt_direction: str = "both"

    def __post_init__(self) -> None:
        _check_seconds("rtt", self.rtt)
        _check_seconds("jitter", self.jitter)
        if self.bandwidth is not None:
            if not _is_number(self.bandwidth) or not math.isfinite(self.bandwidth):
                raise ConfigError(f"bandwidth must be bytes/s or None, got {self.bandwidth!r}")
            if self.bandwidth <= 0:
                raise ConfigError(
                    f"bandwidth must be > 0 bytes/s (None: unlimited), got {self.bandwidth!r}"
                )
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1024:
            raise ConfigError(f"window must be an int >= 1024 bytes, got {self.window!r}")
        _check_probability("loss", self.loss)
        _check_probability("corrupt_rate", self.corrupt_rate)
        if self.corrupt_direction not in CORRUPT_DIRECTIONS:
            raise ConfigError(
                f"corrupt_direction must be one of {', '.join(CORRUPT_DIRECTIONS)},"
                f" got {self.corrupt_direction!r}"
            )
        if not isinstance(self.handshake, bool):
            raise ConfigError(f"handshake must be True or False, got {self.handshake!r}")

    @property
    def one_way(self) -> float:
        """Seconds one way: half the RTT."""
        return self.rtt / 2

    @classmethod
    def from_preset(cls, name: str) -> Link:
        """The named route (see `PRESETS`); ConfigError names the known ones."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None

    @classmethod
    def from_distance(
        cls, km: float, *, equipment_ms: float = EQUIPMENT_MS, **changes: Any
    ) -> Link:
        """A link over ``km`` of fibre: RTT = 2 x 4.9 us/km x km + ``equipment_ms``."""
        if not _is_number(km) or not math.isfinite(km) or km < 0:
            raise ConfigError(f"distance must be >= 0 km, got {km!r}")
        if not _is_number(equipment_ms) or not math.isfinite(equipment_ms) or equipment_ms < 0:
            raise ConfigError(f"equipment allowance must be >= 0 ms, got {equipment_ms!r}")
        rtt = 2 * km * FIBRE_S_PER_KM + equipment_ms / 1000
        return cls(rtt=rtt).with_(**changes)

    def with_(self, **changes: Any) -> Link:
        """A copy with some fields changed; unknown names are refused."""
        unknown = sorted(set(changes) - _FIELDS)
        if unknown:
            raise ConfigError(f"unknown link setting(s) {unknown!r}; known: {sorted(_FIELDS)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (for the child process and reports)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Link:
        """The inverse of `to_dict`; unknown keys are refused."""
        return cls().with_(**data)

    def describe(self) -> str:
        """One human line: ``rtt 15.0 ms, bandwidth 100 Gb/s, window 4096 KiB``."""
        parts = [f"rtt {self.rtt * 1000:.1f} ms", f"bandwidth {format_rate_bits(self.bandwidth)}"]
        parts.append(f"window {self.window // 1024} KiB")
        if self.jitter:
            parts.append(f"jitter {self.jitter * 1000:.1f} ms")
        if self.loss:
            parts.append(f"loss {self.loss:g}/segment")
        if self.corrupt_rate:
            where = "" if self.corrupt_direction == "both" else f" ({self.corrupt_direction} only)"
            parts.append(f"corrupt {self.corrupt_rate:g}/byte{where}")
        if not self.handshake:
            parts.append("no handshake")
        return ", ".join(parts)


_FIELDS = {f.name for f in dataclasses.fields(Link)}


def require_link(value: object) -> Link:
    """``value`` if it is a `Link`; ConfigError quoting it otherwise."""
    if not isinstance(value, Link):
        raise ConfigError(f"link must be a farfeed.wan.Link, got {value!r}")
    return value


def format_rate_bits(bandwidth: float | None) -> str:
    """Bytes/s as a human bit rate: ``100 Gb/s``, ``unlimited``."""
    if bandwidth is None:
        return "unlimited"
    bits = bandwidth * 8
    for unit, scale in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bits >= scale:
            return f"{bits / scale:g} {unit}"
    return f"{bits:g} b/s"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_seconds(name: str, value: object) -> None:
    if not _is_number(value) or not math.isfinite(value) or value < 0:  # type: ignore[arg-type,operator]
        raise ConfigError(f"{name} must be >= 0 seconds, got {value!r}")


def _check_probability(name: str, value: object) -> None:
    if not _is_number(value) or not 0.0 <= value <= 1.0:  # type: ignore[operator]
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")


_LINE = 100e9 / 8  # the PoC's 100 GbE line, bytes/s

#: Named routes. Distances are route kilometres; RTTs are what such routes measure.
PRESETS: dict[str, Link] = {
    "local": Link(rtt=0.0, bandwidth=None),
    "tokyo-osaka": Link(rtt=0.010, bandwidth=_LINE),
    "tokyo-fukuoka": Link(rtt=0.015, bandwidth=_LINE),
    "transpacific": Link(rtt=0.110, bandwidth=_LINE),
}
#: The distance each preset stands for, km.
PRESET_DISTANCE_KM: dict[str, int] = {
    "local": 0,
    "tokyo-osaka": 500,
    "tokyo-fukuoka": 1000,
    "transpacific": 9000,
}


def preset_table() -> str:
    """The presets, one per line, with their numbers (for ``--help``)."""
    lines = []
    for name, link in PRESETS.items():
        km = PRESET_DISTANCE_KM[name]
        lines.append(
            f"{name}: {km:,} km, rtt {link.rtt * 1000:g} ms, "
            f"bandwidth {format_rate_bits(link.bandwidth)}"
        )
    return "\n".join(lines)
