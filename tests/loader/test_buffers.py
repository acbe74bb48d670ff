"""Buffers the fetch engine reuses: the heap pool (decoded modes) and the batch arenas."""

from __future__ import annotations

import numpy as np
import pytest

from farfeed.loader.arena import Arenas
from farfeed.loader.buffers import BufferPool
from farfeed.loader.planner import Request
from farfeed.store.base import ByteRange


def _address(view: memoryview) -> int:
    return int(np.frombuffer(view, dtype=np.uint8).ctypes.data)


def _request(seq: int, nbytes: int) -> Request:
    span = ByteRange("s.tar", 0, nbytes)
    return Request(seq, 0, np.array([0]), [span], [span])


def test_pool_reuses_a_returned_buffer_that_fits_and_bounds_what_it_keeps() -> None:
    pool = BufferPool(keep_bytes=3000)
    a = pool.allocate(_request(0, 1000))
    a[:] = b"x" * 1000
    pool.give_back(_request(0, 1000))
    b = pool.allocate(_request(1, 800))  # fits in a's 1000 bytes (at most twice as big)
    assert len(b) == 800 and _address(b) == _address(a)  # the same memory, not a fresh buffer
    c = pool.allocate(_request(2, 300))  # a is lent again: a new one
    assert _address(c) != _address(a)
    pool.give_back(_request(1, 800))
    small = pool.allocate(_request(3, 400))  # 1000 is more than twice 400: a new one
    assert _address(small) != _address(a)
    for seq, n in ((2, 300), (3, 400)):
        pool.give_back(_request(seq, n))
    big = [_request(10 + k, 2000) for k in range(3)]
    for req in big:
        pool.allocate(req)
    for req in big:
        pool.give_back(req)
    assert pool._free_bytes <= 3000  # noqa: SLF001 - the bound is the point


def test_arena_first_fit_reuses_released_regions_from_the_start() -> None:
    arenas = Arenas(num_workers=1, capacity=1000)
    arenas.start_iteration()
    writer = arenas.writer(0)
    offsets = []
    for seq in range(4):
        got = writer.reserve(250, last_seq=seq)
        assert got is not None
        offsets.append(got[0])
    assert offsets == [0, 250, 500, 750]
    assert writer.reserve(10, last_seq=4) is None  # full until the consumer releases
    arenas.release(writer.lease(1, 250, 250))  # batches 0 and 1 are done
    got = writer.reserve(400, last_seq=4)
    assert got is not None and got[0] == 0  # the first gap from the start
    lease = writer.lease(2, 500, 250)
    assert lease.valid
    arenas.release(lease)
    assert not lease.valid
    arenas.start_iteration()
    assert not writer.lease(3, 750, 250).valid  # a new iteration: earlier leases are stale
    with pytest.raises(ValueError, match="do not fit"):
        writer.reserve(2000, last_seq=9)
