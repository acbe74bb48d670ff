"""Threads that may use TLS, and ``fork``: a fork waits until those that ended are gone.

OpenSSL 3 keeps some state per thread. A thread that used it runs OpenSSL's clean-up as
its OS thread ends (a thread-local destructor), *after* Python's ``join()`` has returned,
and that clean-up holds one of OpenSSL's locks for a moment (its registry of per-thread
state). A process forked in that moment inherits the lock held, for good: the child's
first thread that touches OpenSSL waits forever. This is farfeed's usual sequence:
``farfeed.Dataset(...)`` reads the index over https in a helper thread, which ends, and the
DataLoader forks its workers at once; a worker's first TLS connection then hung (seen in
CI; here 3 stalls in 167 short epochs of `scripts/fork_after_tls.py` on a busy box).

So every thread farfeed starts for work that may use TLS is made by `tls_thread`: it
notes its OS thread id as its work ends, and before any fork of the process
(`os.register_at_fork`) the forking thread waits, `FORK_WAIT_S` at most, until those
threads are gone from ``/proc/self/task`` (Linux; elsewhere fork is not the default start
method and there is nothing to wait on). A thread still at work during a fork is not
covered: it holds an OpenSSL lock only in the middle of a TLS call, and farfeed's own
sequence (read the index, then start the workers) never forks while one runs.

    thread = tls_thread(work, name="farfeed-index")
    thread.start()
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

#: Most seconds a fork waits for the threads that ended to be gone (it takes microseconds).
FORK_WAIT_S = 2.0
_POLL_S = 0.0002
#: Ended threads noted before those already gone are dropped (in a process that never forks).
_PRUNE_AT = 64
_TASKS = "/proc/self/task"

_ended: set[int] = set()  # OS thread ids of tls_threads whose work is over
_lock = threading.Lock()


def tls_thread(
    target: Callable[..., Any], *, name: str, args: tuple[Any, ...] = (), daemon: bool | None = True
) -> threading.Thread:
    """A (not yet started) thread running ``target(*args)`` whose end a fork waits for
    (``daemon=None``: as the thread that starts it)."""

    def run(*call_args: Any) -> None:
        try:
            target(*call_args)
        finally:
            with _lock:
                if len(_ended) >= _PRUNE_AT:  # a process that never forks: keep the set small
                    _ended.difference_update([t for t in _ended if not _present(t)])
                _ended.add(threading.get_native_id())

    return threading.Thread(target=run, args=args, name=name, daemon=daemon)


def wait_for_ended_threads(timeout: float = FORK_WAIT_S) -> None:
    """Wait until every `tls_thread` whose work is over has left the process (what a fork
    does first); one still there after ``timeout`` s in all is not waited for again."""
    if not os.path.isdir(_TASKS):
        return
    with _lock:
        tids = list(_ended)
    deadline = time.monotonic() + timeout
    for tid in tids:
        while _present(tid) and time.monotonic() < deadline:
            time.sleep(_POLL_S)  # releases the GIL: the thread's last Python steps need it
    with _lock:
        _ended.difference_update(tids)


def _present(tid: int) -> bool:
    return os.path.exists(f"{_TASKS}/{tid}")


def _reset_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    _ended.clear()  # the parent's threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=wait_for_ended_threads, after_in_child=_reset_in_child)
