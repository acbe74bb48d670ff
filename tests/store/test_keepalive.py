"""The receiver threads behind batch-get and S3 GETs (`farfeed.store._keepalive`)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from farfeed.errors import TransientError
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


def _plain_connection(timeout: float) -> tuple[_keepalive.Connection, socket.socket]:
    """A `Connection` set up as `ConnectionPool` sets up plain TCP (blocking, the kernel's
    receive timeout), and the other end of its socket."""
    ours, theirs = socket.socketpair()
    ours.settimeout(None)
    limit = struct.pack("ll", int(timeout), int((timeout % 1) * 1e6))
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    return _keepalive.Connection(ours, "http://peer", tls=False, timeout=timeout), theirs


def test_a_chunk_that_trickles_in_slower_than_the_timeout_is_not_timed_out() -> None:
    """One ``recvmsg_into(MSG_WAITALL)`` over a whole chunk can wait longer than the
    timeout while bytes keep coming: the call returns what arrived, the next goes on."""
    conn, peer = _plain_connection(0.3)
    outs = [memoryview(bytearray(600)), memoryview(bytearray(600))]

    def trickle() -> None:
        for _ in range(12):  # 1,200 bytes over ~1.2 s: four timeouts' worth
            time.sleep(0.1)
            peer.sendall(b"x" * 100)

    feeder = threading.Thread(target=trickle)
    t0 = time.monotonic()
    feeder.start()
    conn.recv_many(outs)
    feeder.join()
    assert time.monotonic() - t0 > 1.0 and bytes(outs[0]) + bytes(outs[1]) == b"x" * 1200
    assert not conn.broken
    with pytest.raises(TransientError, match=r"no data for 0.3 s \(timeout\)"):
        conn.recv_many([memoryview(bytearray(10))])  # the peer says nothing more
    assert conn.broken
    peer.close()
