"""Link cuts, written once for the emulator and both its handles (thread, process): what a
cut does, when cuts come, the timers that fire them, and the ``cut``/``schedule_cut`` methods.

>>> wan.emulator.schedule_cut(5.0, mode="stall", duration=2.0, every=60.0)
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from farfeed.errors import ConfigError

CutMode = Literal["reset", "stall"]


@dataclass(frozen=True)
class Cut:
    """One cut of the link: ``Cut(mode="stall", duration=2.0)``.

    ``reset`` resets every connection and refuses new ones for ``duration`` s; ``stall``
    lets nothing through for ``duration`` s, then everything resumes.
    """

    mode: CutMode = "reset"
    duration: float = 0.0

    def __post_init__(self) -> None:
        mode, duration = self.mode, self.duration
        if mode not in ("reset", "stall"):
            raise ConfigError(f"cut mode must be 'reset' or 'stall', got {mode!r}")
        if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0:
            raise ConfigError(f"cut duration must be >= 0 seconds, got {duration!r}")
        object.__setattr__(self, "duration", float(duration))


@dataclass(frozen=True)
class CutPlan:
    """Cuts to come: ``CutPlan(at=5.0, cut=Cut(), every=60.0)`` cuts in 5 s, then every minute."""

    at: float
    cut: Cut = Cut()
    every: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.at, (int, float)) or self.at < 0:
            raise ConfigError(f"cut time must be >= 0 seconds from now, got {self.at!r}")
        _check_every(self.every)

    @classmethod
    def periodic(cls, every: float, cut: Cut) -> CutPlan:
        """A cut every ``every`` seconds, the first ``every`` seconds from now (``--cut-every``)."""
        _check_every(every)
        return cls(at=every, cut=cut, every=every)

    def then(self) -> CutPlan | None:
        """The plan once its first cut has happened: the next one, or None if it does not repeat."""
        return None if self.every is None else CutPlan.periodic(self.every, self.cut)


def _check_every(every: object) -> None:
    if every is not None and (not isinstance(every, (int, float)) or every <= 0):
        raise ConfigError(f"cut interval must be > 0 seconds, got {every!r}")


class CutTimers:
    """Planned cuts waiting on an event loop; ``fire(cut)`` does each. `cancel` drops them all."""

    def __init__(self, fire: Callable[[Cut], None]) -> None:
        self._fire = fire
        self._handles: set[asyncio.TimerHandle] = set()

    def add(self, loop: asyncio.AbstractEventLoop, plan: CutPlan) -> None:
        """Fire ``plan.cut`` ``plan.at`` seconds from now, then every ``plan.every`` seconds."""

        def fire() -> None:
            self._handles.discard(handle)
            self._fire(plan.cut)
            following = plan.then()
            if following is not None:
                self.add(loop, following)

        handle = loop.call_later(plan.at, fire)
        self._handles.add(handle)

    def cancel(self) -> None:
        """Forget every planned cut (the emulator is stopping)."""
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()


class CutControls(ABC):
    """``cut`` and ``schedule_cut``, arguments checked here; each handle implements
    `apply_cut` and `plan_cuts` (the emulator does them, the others pass them on)."""

    def cut(self, *, mode: CutMode = "reset", duration: float = 0.0) -> None:
        """Cut the link now: ``reset`` every connection (and refuse new ones for
        ``duration`` s), or ``stall`` it (nothing passes for ``duration`` s, then all resumes).
        """
        self.apply_cut(Cut(mode=mode, duration=duration))

    def schedule_cut(
        self,
        at: float,
        *,
        mode: CutMode = "reset",
        duration: float = 0.0,
        every: float | None = None,
    ) -> None:
        """Cut the link ``at`` seconds from now (then every ``every`` seconds, if given)."""
        self.plan_cuts(CutPlan(at=at, cut=Cut(mode=mode, duration=duration), every=every))

    @abstractmethod
    def apply_cut(self, cut: Cut) -> None:
        """`cut` with a checked `Cut`: the link is cut when this returns."""

    @abstractmethod
    def plan_cuts(self, plan: CutPlan) -> None:
        """`schedule_cut` with a checked `CutPlan`."""
