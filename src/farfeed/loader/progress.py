"""A progress bar for an epoch, with the loader's live stats on a line below (rich, stderr)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text


def stats_line(stats: dict[str, float]) -> str:
    """One short line: rate, throughput, RTT, in flight, stall time, retries."""
    stall = stats.get("wait_s", stats.get("stall_s", 0.0))
    return (
        f"{stats.get('samples_per_s', 0):,.0f} samples/s  {stats.get('bytes_per_s', 0) / 1e6:,.1f} MB/s  "
        f"rtt {stats.get('rtt_s', 0) * 1e3:.1f} ms  in flight {stats.get('bytes_in_flight', 0) / 2**20:.1f} MiB  "
        f"stall {stall:.1f} s  retries {stats.get('retries', 0):.0f}"
    )


class _BarWithLine(Progress):
    """A rich Progress that renders one more line (the stats) under its bar."""

    line = ""

    def get_renderables(self) -> Iterable[Any]:
        yield self.make_tasks_table(self.tasks)
        yield Text(self.line, no_wrap=True, overflow="ellipsis")


class EpochProgress:
    """``with EpochProgress(total, stats) as bar: bar.advance(n)``; redraws at most 5 times/s."""

    def __init__(
        self, total: int, stats: Callable[[], dict[str, float]], *, unit: str = "samples"
    ) -> None:
        self._stats = stats
        self._last = 0.0
        self._bar = _BarWithLine(
            TextColumn("[bold]farfeed[/]"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task("epoch", total=total)

    def __enter__(self) -> EpochProgress:
        self._bar.start()
        return self

    def advance(self, n: int = 1) -> None:
        self._bar.advance(self._task, n)
        now = time.monotonic()
        if now - self._last > 0.2:
            self._last = now
            self._bar.line = stats_line(self._stats())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.line = stats_line(self._stats())
        self._bar.stop()
