"""Where a hung test's processes are: every process under pytest has its Python stacks
printed (``py-spy dump``) a little before pytest-timeout fails the test.

pytest-timeout shows the stacks of the pytest process only. A test that hangs waits, there,
for a DataLoader worker or a gateway process, and those are where the hang is. The dump
goes to stderr, which the test's report shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

from helpers.procs import process_tree

#: Seconds before the test's timeout at which the processes under pytest are dumped.
DUMP_BEFORE_TIMEOUT_S = 20.0
#: Most seconds the dumps may take, all together.
DUMP_TIMEOUT_S = 15.0


def py_spy() -> str | None:
    """The ``py-spy`` beside this Python (a virtual environment's), or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return beside if os.access(beside, os.X_OK) else shutil.which("py-spy")


def dump_processes_under(pid: int, title: str) -> str:
    """The Python stacks (native frames too) of every process under ``pid``, as text. The
    dumps run at once: a test with many workers still gets them all before its timeout."""
    spy = py_spy()
    if spy is None:
        return f"{title}: py-spy is not installed, no stacks\n"
    dumps: list[tuple[int, str, subprocess.Popen[str] | None]] = []
    for child in process_tree(pid)[1:]:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
            spying = subprocess.Popen([spy, "dump", "--native", "--pid", str(child)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        except OSError:
            cmd, spying = "(gone)", None
        dumps.append((child, cmd, spying))
    parts = [f"+++++ {title}: stacks of the processes under pid {pid} +++++\n"]
    deadline = time.monotonic() + DUMP_TIMEOUT_S
    for child, cmd, spying in dumps:
        text = "(no dump)\n"
        if spying is not None:
            try:
                text = spying.communicate(timeout=max(0.1, deadline - time.monotonic()))[0]
            except subprocess.TimeoutExpired:
                spying.kill()
                text = f"(no dump within {DUMP_TIMEOUT_S:g} s)\n"
        parts.append(f"----- pid {child}: {cmd}\n{text}")
    return "".join(parts)


class HangWatch:
    """A timer per test that dumps the processes under pytest shortly before its timeout."""

    def __init__(self) -> None:
        self._timers: dict[str, threading.Timer] = {}

    def start(self, nodeid: str, timeout: float) -> None:
        if timeout <= 2 * DUMP_BEFORE_TIMEOUT_S:
            return
        timer = threading.Timer(timeout - DUMP_BEFORE_TIMEOUT_S, self._dump, (nodeid,))
        timer.daemon = True
        timer.name = f"hang-watch {nodeid}"
        self._timers[nodeid] = timer
        timer.start()

    def cancel(self, nodeid: str) -> None:
        timer = self._timers.pop(nodeid, None)
        if timer is not None:
            timer.cancel()

    @staticmethod
    def _dump(nodeid: str) -> None:
        sys.stderr.write(dump_processes_under(os.getpid(), f"{nodeid} is about to time out"))
        sys.stderr.flush()
