"""What one `farfeed bench cpu` run does: a small validated value object.

>>> CpuBenchConfig(links=("none", "tokyo-fukuoka"), size=300_000_000, repeats=3)
>>> CpuBenchConfig.quick_defaults(links=("none",))     # ~30 MB, 1 repeat: a smoke test
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farfeed.errors import ConfigError
from farfeed.wan import PRESETS, Link

FLOOR = "floor"  # the plain socket reader, into one reused (cache-warm) 1 MiB buffer
FLOOR_STORE = "floor-store"  # the same reader storing each body in its own place of an arena
CURL = "curl"  # the floor again, with curl (added when curl is on PATH)
IN_PROCESS = "in-process"
WORKERS = "workers-"
BATCH = "batch-"  # prefix: the same, with decode="batch" (farfeed.loader.Batch) instead of dicts
NO_LINK = "none"  # loopback straight to the gateway, no emulator
DEFAULT_MODES = (
    "floor",
    "floor-store",
    "in-process",
    "batch-in-process",
    "workers-2",
    "batch-workers-1",
    "batch-workers-2",
    "batch-workers-4",
)
SAMPLE_BYTES = 114_660  # MLPerf Storage's ResNet-50 sample (an ImageNet JPEG)
LINE_RATE = 12.5e9  # bytes/s: the 100 Gb/s line the projection is for
QUICK_SIZE = 30_000_000
ARENA_BYTES = 256 << 20  # the storing floor's arena: far beyond any CPU cache, as a loader's
_RTT = re.compile(r"(\d+(?:\.\d*)?)ms")


def decode_of(mode: str) -> str:
    """The `farfeed.Dataset` decode a loader mode uses: "batch" for ``batch-...``, else "raw"."""
    return "batch" if mode.startswith(BATCH) else "raw"


def workers_of(mode: str) -> int | None:
    """N for ``[batch-]workers-N``; 0 for ``[batch-]in-process``; None for the floors
    (floor, floor-store); ConfigError otherwise."""
    if mode in (FLOOR, FLOOR_STORE):
        return None
    if mode.startswith(BATCH):
        mode = mode[len(BATCH) :]
    if mode == IN_PROCESS:
        return 0
    if mode.startswith(WORKERS) and mode[len(WORKERS) :].isdigit():
        n = int(mode[len(WORKERS) :])
        if n >= 1:
            return n
    raise ConfigError(
        f"unknown mode {mode!r}: expected floor, floor-store, [batch-]in-process or "
        "[batch-]workers-N (N >= 1)"
    )


def cpu_link(name: str) -> Link | None:
    """The emulated link a name stands for: None for "none"; a `farfeed.wan.PRESETS` name;
    or "Nms": N ms round trip on a 100 Gb/s line with the presets' 4 MiB window."""
    if name == NO_LINK:
        return None
    if name in PRESETS:
        return PRESETS[name]
    match = _RTT.fullmatch(name)
    if match is None:
        raise ConfigError(
            f"unknown link {name!r}; known: {NO_LINK}, {', '.join(PRESETS)}, or an RTT like 5ms"
        )
    return Link(rtt=float(match.group(1)) / 1000, bandwidth=LINE_RATE)


@dataclass(frozen=True)
class CpuBenchConfig:
    """Links ("none", `farfeed.wan.PRESETS` names or RTTs like "5ms"), client modes, the dataset (``size``
    bytes of ``sample_bytes`` samples, or ``samples``), and how to measure."""

    links: tuple[str, ...] = (NO_LINK, "tokyo-fukuoka")
    modes: tuple[str, ...] = DEFAULT_MODES
    size: int = 300_000_000
    samples: int | None = None  # overrides size
    sample_bytes: int = SAMPLE_BYTES
    batch_size: int = 32
    repeats: int = 3
    warmup: float = 0.1  # fraction of the last epoch before the window opens
    epochs: int = 3  # loader modes read this many epochs; the window is in the last one
    # (the in-process arena reaches its working size over the first two: scripts/faults_per_epoch.py)
    connections: int = 4  # the floor (socket) reader's keep-alive connections; curl and
    # floor-store use one
    floor_passes: int = (
        3  # the floors read every shard this many times: a window long enough to time
    )
    curl: bool = True  # also a curl floor row when curl is on PATH
    workdir: Path = field(default=Path("bench-out/cpu"))
    timeout: float = 600.0  # seconds per client run

    def __post_init__(self) -> None:
        if not self.links:
            raise ConfigError("need at least one link (none, or a preset name)")
        for link in self.links:
            cpu_link(link)
        if not self.modes:
            raise ConfigError("need at least one mode")
        for mode in self.modes:
            workers_of(mode)
        if len(set(self.links)) != len(self.links) or len(set(self.modes)) != len(self.modes):
            raise ConfigError(
                f"links and modes must not repeat, got {self.links!r}, {self.modes!r}"
            )
        positive = {"sample_bytes": self.sample_bytes, "batch_size": self.batch_size,
                    "repeats": self.repeats, "connections": self.connections,
                    "floor_passes": self.floor_passes, "epochs": self.epochs}  # fmt: skip
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        if self.samples is not None and (not isinstance(self.samples, int) or self.samples < 1):
            raise ConfigError(f"samples must be an int >= 1, got {self.samples!r}")
        if self.samples is None and self.size < self.sample_bytes:
            raise ConfigError(
                f"size must hold at least one {self.sample_bytes}-byte sample, got {self.size!r}"
            )
        if not 0 <= self.warmup < 0.9:
            raise ConfigError(f"warmup must be a fraction in [0, 0.9), got {self.warmup!r}")
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout!r}")

    @classmethod
    def quick_defaults(cls, **changes: Any) -> CpuBenchConfig:
        """A smoke test: ~30 MB, 1 repeat, 1 floor pass (``changes`` override)."""
        return cls(**{"size": QUICK_SIZE, "repeats": 1, "floor_passes": 1, **changes})

    @property
    def sample_count(self) -> int:
        """Samples in the dataset."""
        return self.samples if self.samples is not None else self.size // self.sample_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (saved beside the figures)."""
        out = dataclasses.asdict(self)
        out["links"], out["modes"] = list(self.links), list(self.modes)
        out["workdir"] = str(self.workdir)
        out["sample_count"] = self.sample_count
        return out
