"""Peak memory of a process tree (this process and its DataLoader workers), sampled from /proc.

RSS summed over processes counts every page shared after fork (torch's libraries, the
parent's heap) once per process, so it overstates. The data path's own memory is
anonymous and shared-memory pages (heaps, fetched bytes, batches on their way to the
training process): their proportional share (``Pss_Anon + Pss_Shmem``) sums to the tree's
real use and does not move with unrelated processes. Linux only (the bench's platform).
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
    """(RSS, proportional anonymous + shared-memory bytes) of one process; (0, 0) when gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            kb = {}
            for line in f:
                name, _, rest = line.partition(":")
                if rest.strip().endswith("kB"):
                    kb[name] = int(rest.split()[0])
        return kb["Rss"] * 1024, (kb["Pss_Anon"] + kb["Pss_Shmem"]) * 1024
    except (OSError, KeyError, ValueError):
        return 0, 0


class MemorySampler:
    """Samples the tree's summed RSS and anonymous memory every ``interval`` seconds; keeps the peaks."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss = self.peak_anon = self.start_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="farfeed-memory", daemon=True)

    def sample(self) -> tuple[int, int]:
        rss = anon = 0
        for pid in tree(os.getpid()):
            r, p = footprint(pid)
            rss, anon = rss + r, anon + p
        self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)
        return rss, anon

    def start(self, *, background: bool = True) -> MemorySampler:
        """Take the first sample; with ``background``, then one every ``interval`` in a
        thread (else from `start_background`)."""
        self.start_anon = self.sample()[1]
        if background:
            self.start_background()
        return self

    def start_background(self) -> None:
        """Sample every ``interval`` seconds in a thread from now on (once)."""
        if self._thread.ident is None:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()
        return {
            "peak_rss_mb": self.peak_rss / MB,
            "peak_anon_mb": self.peak_anon / MB,
            "start_anon_mb": self.start_anon / MB,
        }
