"""The test suite's own hang watch (`helpers.hangs`): a hung test's report shows the stacks
of the processes under pytest, where DataLoader workers and gateway processes wait."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from helpers.hangs import dump_processes_under, py_spy

CHILD = textwrap.dedent(
    """
    import sys, time
    def waiting_for_something_that_never_comes():
        print("ready", flush=True)
        time.sleep(120)
    waiting_for_something_that_never_comes()
    """
)


def test_the_processes_under_pytest_have_their_stacks_dumped() -> None:
    assert py_spy() is not None, "py-spy is one of the test extras: pip install -e '.[test]'"
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(0.2)  # into its sleep
        text = dump_processes_under(os.getpid(), "a test")
    finally:
        child.kill()
        child.wait()
    assert f"pid {child.pid}" in text
    assert "waiting_for_something_that_never_comes" in text, text
