"""`farfeed.store.threads`: a fork waits until the TLS threads that ended have left the
process (OpenSSL's clean-up at a thread's end holds a lock a forked child would inherit held)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from farfeed.store import threads
from farfeed.store.threads import tls_thread, wait_for_ended_threads

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux: /proc/self/task")


def present(tid: int) -> bool:
    return os.path.exists(f"/proc/self/task/{tid}")


def lingering_thread(seconds: float) -> tuple[threading.Thread, int]:
    """A thread that is still there for ``seconds``, noted as if its work were over: what a
    tls_thread looks like while OpenSSL's clean-up runs after its join() returned."""
    thread = threading.Thread(target=time.sleep, args=(seconds,), daemon=True)
    thread.start()
    assert thread.native_id is not None
    with threads._lock:
        threads._ended.add(thread.native_id)
    return thread, thread.native_id


def test_a_tls_thread_is_noted_as_it_ends_and_waited_for() -> None:
    seen: list[int] = []
    thread = tls_thread(lambda: seen.append(threading.get_native_id()), name="t")
    thread.start()
    thread.join()
    assert seen and seen[0] in threads._ended
    wait_for_ended_threads()
    assert not present(seen[0])
    assert seen[0] not in threads._ended  # waited for once


def test_a_fork_waits_for_an_ended_thread_to_leave() -> None:
    thread, tid = lingering_thread(0.4)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: nothing to do
        os._exit(0)
    waited = time.monotonic() - t0
    os.waitpid(pid, 0)
    assert waited >= 0.3, f"fork did not wait for thread {tid}: {waited:.3f} s"
    assert not present(tid)
    thread.join()


def test_the_wait_is_bounded() -> None:
    thread, tid = lingering_thread(1.0)
    t0 = time.monotonic()
    wait_for_ended_threads(timeout=0.1)
    assert time.monotonic() - t0 < 0.5
    assert present(tid) and tid not in threads._ended  # not waited for again
    thread.join()


def test_run_sync_runs_its_loop_in_a_tls_thread() -> None:
    """The index read (`farfeed.Dataset`) goes through run_sync just before the DataLoader
    forks: its thread is one a fork waits for."""
    from farfeed.transfer.sync import run_sync

    async def native_id() -> int:
        return threading.get_native_id()

    tid = run_sync(native_id)
    assert tid != threading.get_native_id()
    assert tid in threads._ended
    wait_for_ended_threads()
    assert not present(tid)


def test_a_process_that_never_forks_keeps_few_ended_threads_noted() -> None:
    for _ in range(3 * threads._PRUNE_AT):
        thread = tls_thread(lambda: None, name="t")
        thread.start()
        thread.join()
    assert len(threads._ended) <= threads._PRUNE_AT + 1
