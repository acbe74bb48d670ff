"""What one `farfeed bench train` runs: the job, the placements and the schedule (`TrainBenchSpec`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.sites import LOCAL, NEAR, REMOTE
from farfeed.errors import ConfigError

SCHEDULES = ("auto", "sequential", "lockstep")


def sweep_name(rtt: float) -> str:
    """Placement name of one extra RTT of a sweep, e.g. ``rtt-50ms``."""
    return f"rtt-{rtt * 1000:g}ms"


@dataclass(frozen=True)
class TrainBenchSpec:
    """One `farfeed bench train` invocation (see module docstring).

    ``dataset`` is a packed dataset folder; its parent folder is served as the storage
    root. ``sweep_rtts`` (seconds) add remote placements for the overhead-vs-RTT plot.
    ``remote_url``: a real storage site's dataset URL (``https://storage:8470/imagenet``)
    to use as "remote" instead of the emulated link; ``dataset`` is then its local copy.
    """

    config: TrainConfig
    dataset: Path
    link_name: str
    link: Any
    sweep_rtts: tuple[float, ...] = ()
    rounds: int = 3
    nproc: int = 1
    checkpoints: bool = True
    workdir: Path = field(default_factory=lambda: Path("bench-out"))
    remote_url: str | None = None
    #: "sequential" (rounds of local, near, remote one after another), "lockstep" (the
    #: placements of a round step by step in turn in one process: a neighbour's load hits
    #: all alike), or "auto": lockstep for one CPU rank, sequential otherwise.
    schedule: str = "auto"

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds!r}")
        if self.nproc < 1:
            raise ConfigError(f"nproc must be >= 1, got {self.nproc!r}")
        if not (Path(self.dataset) / "dataset.json").is_file():
            raise ConfigError(f"{str(self.dataset)!r} is not a packed dataset (no dataset.json)")
        if any(r < 0 for r in self.sweep_rtts):
            raise ConfigError(f"RTTs must be >= 0 seconds, got {self.sweep_rtts!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "lockstep" and self.nproc > 1:
            raise ConfigError(f"the lockstep schedule runs one rank, got nproc={self.nproc!r}")
        if self.remote_url is not None and ("://" not in self.remote_url or self.sweep_rtts):
            raise ConfigError(
                f"remote_url must be a URL and excludes RTT sweeps, got {self.remote_url!r} "
                f"with sweep {self.sweep_rtts!r}"
            )

    @property
    def resolved_schedule(self) -> str:
        """The schedule "auto" stands for here."""
        if self.schedule != "auto":
            return self.schedule
        return "lockstep" if self.nproc == 1 and self.config.device == "cpu" else "sequential"

    def links(self) -> dict[str, Any]:
        """Emulated links by placement name: near (0 ms), remote, and each sweep RTT."""
        near = self.link.with_(rtt=0.0, jitter=0.0, loss=0.0)
        if self.remote_url is not None:
            return {NEAR: near}  # remote is the real link
        links = {NEAR: near, REMOTE: self.link}
        for rtt in self.sweep_rtts:
            links.setdefault(sweep_name(rtt), self.link.with_(rtt=rtt))
        return links

    def placements(self) -> list[str]:
        """Placement names in their first round's order: local, the emulated links, then a
        real remote."""
        return [LOCAL, *self.links()] + ([REMOTE] if self.remote_url else [])


def link_for(preset: str, rtts_ms: Sequence[float]) -> tuple[str, Any, tuple[float, ...]]:
    """(link name, remote Link, extra sweep RTTs in s) from ``--link`` and ``--rtt-ms`` values.

    Without RTTs the preset is the remote link. With RTTs the first is the remote one
    (the preset's bandwidth and window, that RTT) and the rest are sweep points.
    """
    from farfeed.wan import Link

    link = Link.from_preset(preset)
    if not rtts_ms:
        return preset, link, ()
    bad = [r for r in rtts_ms if not r >= 0]
    if bad:
        raise ConfigError(f"--rtt-ms values must be >= 0 ms, got {bad!r}")
    first, *rest = rtts_ms
    return (
        f"rtt-{first:g}ms",
        link.with_(rtt=first / 1000),
        tuple(r / 1000 for r in rest if r != first),
    )
