"""Loader statistics, shared by a rank's DataLoader workers with its main process.

Each worker writes its own row of a small shared-memory table (created before the
workers fork, inherited by them); `Dataset.stats()` in the main process sums the rows.
No locks: every field has one writer, and a reader may see a row mid-update, which
only blurs a rate for one reading. Two more shared floats gate the "link down" log lines
(`farfeed.transfer.retry.LinkLog`), so a rank logs an outage once, not once per worker.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

from farfeed.transfer.retry import LinkLog

#: Columns of one worker's row. Counters add up across workers; gauges are current values.
FIELDS = (
    "started",  # wall clock (time.time) when the worker began this iteration, 0 = idle
    "updated",  # wall clock of the last update
    "samples",  # samples handed to the consumer
    "bytes",  # sample bytes handed to the consumer
    "wire_bytes",  # bytes read from the link (coalesced ranges, re-fetches included)
    "stall_s",  # seconds the consumer waited for data
    "retries",  # failed reads that were retried (network errors, timeouts, 5xx)
    "corrupt",  # samples that arrived with a wrong checksum (never delivered)
    "refetches",  # fetches of such samples again (from every URL in turn)
    "integrity_failovers",  # corrupt samples whose good copy came from another URL
    "failovers",  # URLs taken out of the rotation after failures (others took their reads)
    "requests",  # requests completed
    "rtt_s",  # gauge: estimated round-trip time (min recent time to first byte)
    "bytes_in_flight",  # gauge: requested, not yet arrived
    "bytes_buffered",  # gauge: arrived, not yet taken by the consumer
    "window_bytes",  # gauge: the current in-flight target
    "peak_bytes_held",  # most bytes in flight + buffered at once (the memory budget's use)
    "first_batch_s",  # seconds from iteration start to the first request's arrival
)
_COL = {name: i for i, name in enumerate(FIELDS)}
MAX_WORKERS = 64


class WorkerStats:
    """One worker's row: `add` to counters, `set` gauges (fast plain-float writes), and
    the worker's `LinkLog` (its lines gated with the rank's other workers)."""

    def __init__(self, table: Any, row: int, *, links: Any = None) -> None:
        self._table = table
        self._base = row * len(FIELDS)
        self.link_log = LinkLog(shared=links)

    def start(self) -> None:
        base = self._base
        for k in range(len(FIELDS)):
            self._table[base + k] = 0.0
        now = time.time()
        self._table[base + _COL["started"]] = now
        self._table[base + _COL["updated"]] = now

    def add(self, name: str, value: float = 1.0) -> None:
        self._table[self._base + _COL[name]] += value
        self._table[self._base + _COL["updated"]] = time.time()

    def set(self, name: str, value: float) -> None:
        self._table[self._base + _COL[name]] = value

    def get(self, name: str) -> float:
        return float(self._table[self._base + _COL[name]])


class SharedStats:
    """The rank's table of worker rows; pickles to its workers only while they spawn."""

    def __init__(self) -> None:
        self._table: Any = mp.RawArray("d", MAX_WORKERS * len(FIELDS))
        self._links: Any = mp.RawArray("d", 2)

    def worker(self, row: int) -> WorkerStats:
        """The writer for one worker's row (rows past MAX_WORKERS share the last one)."""
        return WorkerStats(self._table, min(row, MAX_WORKERS - 1), links=self._links)

    def reset(self) -> None:
        """Clear every row (before a new iteration starts its workers)."""
        for k in range(len(self._table)):
            self._table[k] = 0.0
        self._links[0] = self._links[1] = 0.0

    def summary(self) -> dict[str, float]:
        """Totals and rates over the rows of workers that started this iteration."""
        n = len(FIELDS)
        rows = [list(self._table[r * n : (r + 1) * n]) for r in range(MAX_WORKERS)]
        rows = [r for r in rows if r[_COL["started"]] > 0]
        out = {name: 0.0 for name in FIELDS if name not in ("started", "updated")}
        out.update(workers=float(len(rows)), elapsed_s=0.0, samples_per_s=0.0, bytes_per_s=0.0)
        if not rows:
            return out
        for name in FIELDS[2:]:
            out[name] = sum(r[_COL[name]] for r in rows)
        rtts = [r[_COL["rtt_s"]] for r in rows if r[_COL["rtt_s"]] > 0]
        out["rtt_s"] = min(rtts) if rtts else 0.0
        firsts = [r[_COL["first_batch_s"]] for r in rows if r[_COL["first_batch_s"]] > 0]
        out["first_batch_s"] = min(firsts) if firsts else 0.0
        elapsed = max(r[_COL["updated"]] for r in rows) - min(r[_COL["started"]] for r in rows)
        out["elapsed_s"] = elapsed
        if elapsed > 0:
            out["samples_per_s"] = out["samples"] / elapsed
            out["bytes_per_s"] = out["bytes"] / elapsed
        return out

    def __getstate__(self) -> dict[str, Any]:
        from multiprocessing import context

        if context.get_spawning_popen() is None:  # a copy outside process start: own table
            return {"_table": None, "_links": None}
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._table is None:
            self._table = mp.RawArray("d", MAX_WORKERS * len(FIELDS))
        if getattr(self, "_links", None) is None:
            self._links = mp.RawArray("d", 2)
