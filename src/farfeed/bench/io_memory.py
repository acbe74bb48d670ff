"""Peak memory of a process tree (this process and its DataLoader workers), sampled from /proc.

RSS summed over processes counts pages shared after fork once per process; USS splits
them, so the sum of USS is the tree's real footprint. Linux only (the bench's platform).
"""

from __future__ import annotations

import os
import threading

MB = 2**20


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def footprint(pid: int) -> tuple[int, int]:
    """(RSS, USS) bytes of one process; (0, 0) when it is gone.

    USS (private clean + dirty) leaves out pages shared with any other process
    (libraries, pages inherited at fork), so it does not move with the machine's load.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            kb = {}
            for line in f:
                name, _, rest = line.partition(":")
                if rest.strip().endswith("kB"):
                    kb[name] = int(rest.split()[0])
        return kb["Rss"] * 1024, (kb["Private_Clean"] + kb["Private_Dirty"]) * 1024
    except (OSError, KeyError, ValueError):
        return 0, 0


class MemorySampler:
    """Samples the tree's summed RSS and USS every ``interval`` seconds; keeps the peaks."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss = self.peak_uss = self.start_uss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="farfeed-memory", daemon=True)

    def sample(self) -> tuple[int, int]:
        rss = uss = 0
        for pid in tree(os.getpid()):
            r, p = footprint(pid)
            rss, uss = rss + r, uss + p
        self.peak_rss, self.peak_uss = max(self.peak_rss, rss), max(self.peak_uss, uss)
        return rss, uss

    def start(self) -> MemorySampler:
        self.start_uss = self.sample()[1]
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {
            "peak_rss_mb": self.peak_rss / MB,
            "peak_uss_mb": self.peak_uss / MB,
            "start_uss_mb": self.start_uss / MB,
        }
