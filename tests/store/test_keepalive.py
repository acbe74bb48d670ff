"""The receiver threads behind batch-get and S3 GETs (`farfeed.store._keepalive`)."""

from __future__ import annotations

import threading
import time

import pytest

from farfeed.store import _keepalive
from farfeed.store._keepalive import _Threads


def test_idle_receiver_threads_end_and_a_new_job_never_waits_for_a_busy_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_keepalive, "THREAD_IDLE_S", 0.05)
    threads = _Threads(limit=4)
    for _ in range(3):  # jobs, then a pause long enough for every thread to end
        done = [threads.submit(lambda k=k: k * 2) for k in range(6)]
        assert [f.result(timeout=5) for f in done] == [0, 2, 4, 6, 8, 10]
        deadline = time.monotonic() + 5
        while threads._threads and time.monotonic() < deadline:
            time.sleep(0.01)
        assert threads._threads == 0
    release = threading.Event()
    busy = threads.submit(lambda: release.wait(5))
    t0 = time.monotonic()
    assert threads.submit(lambda: "next").result(timeout=5) == "next"
    assert time.monotonic() - t0 < 1  # not after the busy job
    release.set()
    assert busy.result(timeout=5) is True
    threads.close()
