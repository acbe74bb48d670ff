"""Where the fetch engine's requests land: buffers that are reused, not made per request.

A fresh buffer per request costs a page fault per 4 KiB (and the kernel's zeroing) on
top of the copy from the socket: on these VMs about as much CPU as the copy itself.
So buffers come back:

- `BufferPool` (``decode="raw"``, ``"image"``, ``"tokens"`` or a callable): every sample
  is decoded into objects of its own (bytes, tensors) before the consumer sees it, so a
  request's buffer is free again once its last sample was decoded.
- `BatchBuffers` (``decode="batch"``): the batches *are* views of the buffer, so it is
  free only once the consumer moved on. Requests land in an arena (`farfeed.loader.arena`):
  the DataLoader's shared one per worker, or in the training process the Dataset's own
  (`farfeed.loader.arena.ArenaSlot`, kept from epoch to epoch);
  with neither (another DataLoader, workers not forked), fresh shared memory per request.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
import torch

from farfeed.loader.arena import Arenas, ArenaWriter, Lease
from farfeed.loader.batch import new_buffer
from farfeed.loader.planner import Request


class BufferPool:
    """Heap buffers handed out per request and given back once its samples are decoded.

    Keeps at most ``keep_bytes`` of free buffers; a request takes the smallest free one
    that fits (and is at most twice its size), else a new one.
    """

    def __init__(self, keep_bytes: int) -> None:
        self._keep = keep_bytes
        self._free: list[np.ndarray] = []
        self._free_bytes = 0
        self._lent: dict[int, np.ndarray] = {}  # request seq -> its buffer
        self._lock = threading.Lock()

    def allocate(self, req: Request) -> memoryview:
        """A buffer of ``req.wire_bytes`` (fetch thread)."""
        n = req.wire_bytes
        with self._lock:
            fits = [k for k, b in enumerate(self._free) if n <= b.nbytes <= 2 * n]
            if fits:
                buf = self._free.pop(min(fits, key=lambda k: self._free[k].nbytes))
                self._free_bytes -= buf.nbytes
            else:
                buf = np.empty(n, dtype=np.uint8)  # not zeroed: every byte is read
            self._lent[req.seq] = buf
        return buf[:n].data

    def give_back(self, req: Request) -> None:
        """Every sample of ``req`` was decoded: its buffer may be reused (consumer thread)."""
        with self._lock:
            buf = self._lent.pop(req.seq, None)
            if buf is None:
                return
            self._free.append(buf)
            self._free_bytes += buf.nbytes
            while self._free_bytes > self._keep and self._free:
                biggest = max(range(len(self._free)), key=lambda k: self._free[k].nbytes)
                self._free_bytes -= self._free.pop(biggest).nbytes


class BatchBuffers:
    """Where ``decode="batch"`` requests land, and the lease of each batch cut from them.

    ``arenas`` and ``worker``: the arena to fill (None: fresh memory per request, shared
    when ``shared``). With ``keep`` set, this process also releases the batches itself
    (in-process iteration): a batch is released once ``keep`` newer ones were handed out.
    """

    def __init__(
        self,
        batch_size: int,
        *,
        arenas: Arenas | None,
        worker: int = 0,
        shared: bool,
        keep: int | None = None,
    ) -> None:
        self._size = batch_size
        self._shared = shared
        self._writer: ArenaWriter | None = None
        if arenas is not None and worker < arenas.num_workers:
            self._writer = arenas.writer(worker)
        self._tensors: dict[int, torch.Tensor] = {}  # request seq -> its own tensor
        self._offsets: dict[int, int] = {}  # request seq -> its offset in the arena
        self._keep = keep
        self._handed: deque[Lease] = deque()
        #: the arena this process filled for itself (in-process), else None
        self.own = arenas if keep is not None and self._writer is not None else None

    @property
    def max_request(self) -> int | None:
        """An arena holds at least four requests (one batch each, at the least)."""
        return None if self._writer is None else self._writer.capacity // 4

    def allocate(self, req: Request) -> memoryview | None:
        """The request's buffer, or None when the arena has no room until a release."""
        writer = self._writer
        if writer is not None and req.wire_bytes <= writer.capacity // 4:
            last = (req.first + len(req.ids) - 1) // self._size
            got = writer.reserve(req.wire_bytes, last_seq=last)
            if got is None:
                return None  # the consumer still holds the arena: the engine asks again
            self._offsets[req.seq], view = got
            return view
        tensor = new_buffer(req.wire_bytes, shared=self._shared)
        self._tensors[req.seq] = tensor
        return tensor.numpy().data

    def tensor_of(self, req: Request) -> torch.Tensor:
        """The request's whole buffer as a uint8 tensor (no copy)."""
        offset = self._offsets.get(req.seq)
        if offset is not None:
            assert self._writer is not None
            whole = self._writer.arenas.tensor(self._writer.worker)
            return whole[offset : offset + req.wire_bytes]
        return self._tensors.pop(req.seq)

    def lease(self, req: Request, seq: int, pos: int, nbytes: int) -> Lease | None:
        """The lease of batch ``seq``: ``nbytes`` at ``pos`` in ``req``'s buffer."""
        offset = self._offsets.get(req.seq)
        if offset is None or self._writer is None:
            return None
        if (req.first + len(req.ids) - 1) // self._size == seq:
            del self._offsets[req.seq]  # the request's last batch: forget the request
        return self._writer.lease(seq, offset + pos, nbytes)

    def handed_out(self, lease: Lease | None) -> None:
        """In-process: the consumer now holds ``lease``'s batch; release the one ``keep``
        batches older."""
        if self._keep is None or lease is None:
            return
        self._handed.append(lease)
        while len(self._handed) > self._keep:
            old = self._handed.popleft()
            old.arenas.release(old)
