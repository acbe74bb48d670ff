"""How busy this machine was while the demo ran: the load average before, during and after,
the CPU count, and how many cores other processes used.

    with LoadWatch() as load:
        ...                      # the demo
    load.summary()["others_cores"]   # e.g. 0.9: the rest of the box used 0.9 of 2 cores

The 1-minute load average counts the demo's own processes too, so on a 2-core box a
quiet run still shows ~1-2. ``others_cores`` is the one figure that tells a quiet run
from a shared one: all CPU time the machine spent (/proc/stat) minus the demo's own
(this process and every child it waited for, `resource.getrusage`), per second of wall
time. Linux only, like the rest of the benchmarks; elsewhere it is NaN.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import threading
import time
from types import TracebackType
from typing import Any

#: Seconds between two samples of the load average during the run.
INTERVAL = 5.0


def busy_cpu_seconds() -> float:
    """CPU seconds all processes on this machine have used since boot (user, nice, system,
    irq, softirq); NaN where /proc/stat is missing."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds this process and its waited-for children (and theirs) have used."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class LoadWatch:
    """Samples the machine's load while the ``with`` block runs (see module docstring)."""

    def __init__(self, *, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="farfeed-load", daemon=True)
        self._start: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self._end: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.before: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __enter__(self) -> LoadWatch:
        self.before = os.getloadavg()
        self._start = (time.monotonic(), busy_cpu_seconds(), own_cpu_seconds())
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.after = os.getloadavg()
        self._end = (time.monotonic(), busy_cpu_seconds(), own_cpu_seconds())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, Any]:
        """The figures results.json keeps under ``load`` (load averages: 1, 5, 15 min)."""
        wall = max(1e-9, self._end[0] - self._start[0])
        busy = self._end[1] - self._start[1]
        own = self._end[2] - self._start[2]
        others = max(0.0, busy - own) / wall if math.isfinite(busy) else float("nan")
        return {
            "cpus": os.cpu_count(),
            "load_before": list(self.before),
            "load_after": list(self.after),
            "load_during_mean": statistics.fmean(self.samples) if self.samples else self.after[0],
            "load_during_max": max(self.samples, default=self.after[0]),
            "own_cores": own / wall,
            "others_cores": others,
            "seconds": wall,
        }


def describe(load: dict[str, Any]) -> str:
    """One sentence for the report: ``2 CPUs; load average (1 min) 1.9 before, ...``."""
    others = load["others_cores"]
    verdict = ""
    if math.isfinite(others):
        quiet = "quiet" if others < 0.25 else "shared: other work ran beside the demo"
        verdict = (
            f"; other processes used {others:.2f} of {load['cpus']} cores on average ({quiet})"
        )
    return (
        f"{load['cpus']} CPUs; load average (1 min) {load['load_before'][0]:.1f} before, "
        f"{load['load_during_mean']:.1f} on average during (max {load['load_during_max']:.1f}), "
        f"{load['load_after'][0]:.1f} after; the demo itself used {load['own_cores']:.2f} "
        f"cores{verdict}"
    )
