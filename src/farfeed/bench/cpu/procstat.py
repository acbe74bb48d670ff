"""CPU time of process trees, from /proc, precise enough for a one-second window.

``/proc/PID/stat`` (utime + stime) counts every thread that ever ran, but in 10 ms ticks:
a gateway that spends 0.13 CPU-s/GB uses only ~40 ms on 300 MB, so ticks alone would be
+-25 %. ``/proc/PID/task/*/schedstat`` gives each live thread's run time in nanoseconds.
A process's delta is the nanosecond one unless a thread exited inside the window (then
the nanosecond sum falls short of the ticks by more than their resolution, and the ticks
are used). Processes that exit inside the window are counted through their parent's
``cutime + cstime`` (their whole life), minus what they had used at the window's start.
Linux only (the bench's platform).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from farfeed.bench.io.memory import tree

TICK = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessCpu:
    """One process's counters, seconds: ``ticks`` (all threads, 10 ms steps), ``live``
    (its live threads, ns precision), ``reaped`` (children it waited for, whole lives)."""

    ticks: float
    live: float
    reaped: float


def read_process(pid: int) -> ProcessCpu | None:
    """The counters of ``pid``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        live_ns = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    live_ns += int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # the thread exited between listdir and open
    except (OSError, IndexError, ValueError):
        return None
    # fields after "pid (comm)": state=0 ... utime=11 stime=12 cutime=13 cstime=14
    ticks = (int(fields[11]) + int(fields[12])) * TICK
    reaped = (int(fields[13]) + int(fields[14])) * TICK
    return ProcessCpu(ticks=ticks, live=live_ns / 1e9, reaped=reaped)


def snapshot(roots: Iterable[int | None]) -> dict[int, ProcessCpu]:
    """Counters of every process in the trees under ``roots`` (None entries are skipped)."""
    out: dict[int, ProcessCpu] = {}
    for root in roots:
        if root is None:
            continue
        for pid in tree(root):
            cpu = read_process(pid)
            if cpu is not None:
                out[pid] = cpu
    return out


def process_delta(start: ProcessCpu, end: ProcessCpu) -> float:
    """CPU seconds one process used between two readings (see the module docstring)."""
    precise = end.live - start.live
    ticks = end.ticks - start.ticks
    return precise if precise >= ticks - 2 * TICK else ticks


def tree_delta(start: dict[int, ProcessCpu], end: dict[int, ProcessCpu]) -> float:
    """CPU seconds a tree used between two snapshots, counting processes that started or
    ended in between."""
    total = 0.0
    for pid, cpu in end.items():
        before = start.get(pid)
        if before is None:
            total += max(cpu.ticks, cpu.live)  # started inside the window: its whole life
        else:
            total += process_delta(before, cpu) + (cpu.reaped - before.reaped)
    for pid, cpu in start.items():
        if pid not in end:
            total -= cpu.ticks  # ended inside the window: its parent's cutime holds its life
    return max(total, 0.0)
