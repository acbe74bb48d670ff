"""Batch arenas: shared memory that DataLoader workers fill and the training process reads.

With ``decode="batch"`` through `farfeed.loader.DataLoader` (workers started by fork,
Linux's default), the training process maps one arena per worker before the workers
start: an anonymous shared mapping (nothing in ``/dev/shm``, nothing to clean up).
Forked workers inherit it. A worker reads each request's bytes straight into its arena
(the socket writes them there), verifies them in place, and hands each batch over as
``(arena, offset, length)`` plus a few small tables: no copy, no fresh pages, no file
descriptor per batch. The pages are faulted in once, in each process, and reused.

A region is reused only after the training loop has moved on: the loader releases a
batch once ``keep_batches`` newer batches were taken (the training process writes
that into a shared counter per worker; the worker reads it before reserving). A
`farfeed.loader.Batch` whose region was released refuses `member`/`sample` with an
error that says to ``clone()`` it; raw ``batch.data`` views are not checked.

    arenas = Arenas(num_workers=4, capacity=128 * 2**20)       # training process
    writer = arenas.writer(worker)                             # in worker ``worker``
    offset, view = writer.reserve(nbytes, last_seq=7)          # None: wait for a release
"""

from __future__ import annotations

import ctypes
import itertools
import mmap
import multiprocessing as mp
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: Batches the training loop may hold at once before the oldest one's bytes are reused.
KEEP_BATCHES = 2
#: A writer maps its arena's pages ahead of the regions it reserves, this many bytes at a
#: time, with one ``madvise(MADV_POPULATE_WRITE)`` each (Linux >= 5.14; the GIL released).
#: Each forked worker maps its pages anew every epoch, and this costs about half of
#: faulting them in page by page (scripts/probe_populate.py: 0.20-0.22 against 0.35-0.44
#: CPU-s per GB of region).
POPULATE_STEP = 8 << 20
_MADV_POPULATE_WRITE = 23  # linux/mman.h; Python 3.11's mmap module does not name it

_tokens = itertools.count(1)
#: Arenas made in this process, by token: a batch crossing from a worker names its arena.
_REGISTRY: weakref.WeakValueDictionary[tuple[int, int], Arenas] = weakref.WeakValueDictionary()


class ArenaError(RuntimeError):
    """A batch's bytes were reused, or its arena is not mapped in this process."""


class Arenas:
    """One arena of ``capacity`` bytes per worker, made in the training process before fork.

    ``released[w]``: worker ``w``'s batches with seq below it may be overwritten.
    ``generation``: bumped per iteration, so a batch kept from a previous epoch is stale.
    """

    def __init__(self, *, num_workers: int, capacity: int) -> None:
        if num_workers < 1 or capacity < 1:
            raise ValueError(f"need num_workers >= 1 and capacity >= 1, got {num_workers}, {capacity}")
        self.capacity = capacity
        self.token = (os.getpid(), next(_tokens))
        self._maps = [mmap.mmap(-1, capacity) for _ in range(num_workers)]  # MAP_SHARED
        self._tensors = [torch.from_numpy(np.frombuffer(m, dtype=np.uint8)) for m in self._maps]
        self._released: Any = mp.RawArray("q", num_workers)
        self._generation: Any = mp.RawValue("q", 0)
        _REGISTRY[self.token] = self

    @property
    def num_workers(self) -> int:
        return len(self._maps)

    def start_iteration(self) -> None:
        """A new set of workers is about to fork: every earlier batch becomes stale."""
        self._generation.value += 1
        for w in range(self.num_workers):
            self._released[w] = 0

    @property
    def generation(self) -> int:
        return int(self._generation.value)

    def tensor(self, worker: int) -> torch.Tensor:
        """Worker ``worker``'s whole arena as one uint8 tensor (a view of the mapping)."""
        return self._tensors[worker]

    def release(self, lease: Lease) -> None:
        """The training loop is done with ``lease``'s batch (and every earlier one of its worker)."""
        if lease.generation == self.generation and lease.seq + 1 > self._released[lease.worker]:
            self._released[lease.worker] = lease.seq + 1

    def released(self, worker: int) -> int:
        return int(self._released[worker])

    def writer(self, worker: int) -> ArenaWriter:
        """The allocator for worker ``worker`` (used in that worker only)."""
        return ArenaWriter(self, worker)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Arenas live in the training process and its forked workers only: a pickled copy
        (a spawned worker, a deepcopy) gets none, and its batches use fresh shared memory."""
        return (_no_arenas, ())


def _no_arenas() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Lease:
    """Where one batch lies in an arena, and how to tell that it is still there."""

    arenas: Arenas
    worker: int
    generation: int
    seq: int
    offset: int
    nbytes: int

    @property
    def valid(self) -> bool:
        arenas = self.arenas
        return self.generation == arenas.generation and self.seq >= arenas.released(self.worker)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_lease_by_token, (self.arenas.token, self.worker, self.generation, self.seq,
                                  self.offset, self.nbytes))  # fmt: skip

    def tensor(self) -> torch.Tensor:
        """The batch's bytes: a view of the arena (no copy)."""
        return self.arenas.tensor(self.worker)[self.offset : self.offset + self.nbytes]


def _lease_by_token(
    token: tuple[int, int], worker: int, generation: int, seq: int, offset: int, nbytes: int
) -> Lease:
    arenas = _REGISTRY.get(token)
    if arenas is None:
        raise ArenaError(
            "this batch's arena is not mapped in this process: a Batch from a DataLoader "
            "worker can only be read in the process that iterates the loader (clone() it "
            "there to send it elsewhere)"
        )
    return Lease(arenas, worker, generation, seq, offset, nbytes)


class ArenaSlot:
    """The arena an in-process iteration of one Dataset fills, kept for its next iteration.

    A fresh mapping per epoch costs a page fault and the kernel's zeroing for every 4 KiB
    the epoch's requests reach: on these VMs about a quarter of the loader's CPU in a short
    epoch. So an iteration `take`s the arena and `give_back`s it once its engine has
    stopped writing; the next one reuses the same (warm) pages. Taking it starts a new
    generation: batches kept from an earlier epoch are stale, as with workers' arenas. An
    iteration that starts while another still holds the arena gets one of its own. The
    pages an epoch touched (at most the memory budget) stay allocated while the Dataset
    lives, ready for the next epoch.
    """

    def __init__(self) -> None:
        self._free: Arenas | None = None
        self._lock = threading.Lock()

    def take(self, capacity: int) -> Arenas:
        with self._lock:
            arenas, self._free = self._free, None
        if arenas is None or arenas.capacity != capacity:
            arenas = Arenas(num_workers=1, capacity=capacity)
        arenas.start_iteration()
        return arenas

    def give_back(self, arenas: Arenas) -> None:
        """Nothing writes ``arenas`` any more: the next iteration may take it."""
        with self._lock:
            self._free = arenas

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """A copy in another process (a spawned worker) starts without an arena."""
        return (ArenaSlot, ())


class ArenaWriter:
    """Reserves regions of one worker's arena; frees them as batches are released.

    Each region remembers the last batch seq it holds; it is free again once the training
    process has released that seq. A new region goes in the first gap that fits, from the
    start: the pages in use stay those of the working set (bytes in flight and held),
    already faulted in and warm, however large the arena may grow.
    """

    def __init__(self, arenas: Arenas, worker: int) -> None:
        self.arenas = arenas
        self.worker = worker
        self.generation = arenas.generation
        self._array = arenas.tensor(worker).numpy()
        self._regions: list[tuple[int, int, int]] = []  # (start, end, last seq), by start
        self._mapped = 0  # pages before this offset are mapped in this process

    @property
    def capacity(self) -> int:
        return self.arenas.capacity

    def reclaim(self) -> None:
        """Free the regions whose batches the training process has released."""
        released = self.arenas.released(self.worker)
        if any(last < released for _, _, last in self._regions):
            self._regions = [r for r in self._regions if r[2] >= released]

    def reserve(self, nbytes: int, *, last_seq: int) -> tuple[int, memoryview] | None:
        """``(offset, writable view)`` of ``nbytes`` for batches up to ``last_seq``, or
        None when no gap fits until the training process releases more."""
        if nbytes > self.capacity:
            raise ValueError(f"{nbytes} bytes do not fit an arena of {self.capacity}")
        self.reclaim()
        start = self._first_fit(nbytes)
        if start is None:
            return None
        self._regions.append((start, start + nbytes, last_seq))
        self._regions.sort()
        if start + nbytes > self._mapped:
            self._map_ahead(start + nbytes)
        return start, self._array[start : start + nbytes].data

    def _map_ahead(self, end: int) -> None:
        """Map the pages up to ``end`` rounded up to `POPULATE_STEP`, in one system call
        (where the kernel cannot, the first writes fault them in, as before)."""
        upto = min(self.capacity, -(-end // POPULATE_STEP) * POPULATE_STEP)
        madvise = _madvise()
        if madvise is not None:
            base = self._array.ctypes.data  # the mapping's start: page-aligned
            if madvise(base + self._mapped, upto - self._mapped, _MADV_POPULATE_WRITE) != 0:
                _MADVISE[0] = None  # an older kernel (EINVAL): stop asking
        self._mapped = upto

    def _first_fit(self, nbytes: int) -> int | None:
        pos = 0
        for start, end, _ in self._regions:
            if start - pos >= nbytes:
                return pos
            pos = max(pos, end)
        return pos if self.capacity - pos >= nbytes else None

    def lease(self, seq: int, offset: int, nbytes: int) -> Lease:
        return Lease(self.arenas, self.worker, self.generation, seq, offset, nbytes)


_MADVISE: list[Any] = []  # [libc's madvise, or None where there is none], made once


def _madvise() -> Any:
    """libc's ``madvise`` through ctypes (which releases the GIL while it runs), or None."""
    if not _MADVISE:
        fn = None
        if sys.platform.startswith("linux"):  # 23 is MADV_POPULATE_WRITE on Linux only
            try:
                fn = ctypes.CDLL(None, use_errno=True).madvise
                fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                fn.restype = ctypes.c_int
            except (OSError, AttributeError):
                fn = None
        _MADVISE.append(fn)
    return _MADVISE[0]
