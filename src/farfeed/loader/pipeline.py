"""One worker's pipeline: planner -> fetch engine (reorder, verify) -> decode -> consumer.

Built by `Dataset.__iter__` in the process that consumes (a DataLoader worker, or the
main process), so the event loop, its thread and every connection are created after
fork, never shared across processes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from farfeed.loader.arena import Arenas, ArenaWriter
from farfeed.loader.batch import Batch, make_batch, new_buffer
from farfeed.loader.config import FetchConfig
from farfeed.loader.decode import decode_image_sample, image_transform
from farfeed.loader.engine import FetchEngine, heap_buffer
from farfeed.loader.flow import MIN_REQUEST, Window
from farfeed.loader.planner import Planner, Request
from farfeed.loader.source import Source
from farfeed.loader.stats import SharedStats, WorkerStats
from farfeed.loader.world import World

#: GIL switch interval in DataLoader workers, seconds (Python's default is 0.005).
WORKER_SWITCH_INTERVAL = 0.0005


def in_main_process() -> bool:
    """True outside DataLoader worker processes."""
    from torch.utils.data import get_worker_info

    return get_worker_info() is None


def make_decoder(
    source: Source, decode: str | Callable[[dict[str, Any]], Any], *, image_size: int, train: bool
) -> Callable[[int, memoryview], Any]:
    """The per-sample decode step chosen by ``decode`` (see `farfeed.Dataset`)."""
    if decode == "batch":  # `Pipeline` makes whole batches; samples are not decoded
        return lambda i, data: data
    if decode in ("raw", "tokens"):  # a TokenSource unpacks to (input_ids, labels)
        return source.unpack
    if decode == "image":
        transform = image_transform(image_size, train=train)
        return lambda i, data: decode_image_sample(source.unpack(i, data), transform)
    user = decode
    assert callable(user)
    return lambda i, data: user(source.unpack(i, data))


class Pipeline:
    """Yields this worker's samples in order; stops its engine when done or abandoned."""

    def __init__(
        self,
        ids: npt.NDArray[np.int64],
        *,
        source: Source,
        decode: Callable[[int, memoryview], Any],
        batched: bool = False,
        config: FetchConfig,
        batch_size: int,
        stats: SharedStats,
        world: World,
        arenas: Arenas | None = None,
    ) -> None:
        self._ids = ids
        self._arenas = arenas
        self._source = source
        self._decode = decode
        self._batched = batched
        self._config = config
        self._batch_size = batch_size
        self._shared = stats
        self._world = world

    def __iter__(self) -> Iterator[Any]:
        source, world = self._source, self._world
        stats = self._shared.worker(world.worker)
        stats.start()
        if not in_main_process():
            # This process only serves the DataLoader. Its fetch thread holds the GIL in
            # short slices; hand it over sooner, so the worker answers the training
            # process (batch hand-off, tensor file descriptors) without a 5 ms wait each.
            sys.setswitchinterval(WORKER_SWITCH_INTERVAL)
        if len(self._ids) == 0:
            return
        budget = max(1, self._config.memory_budget // world.num_workers)
        first = min(budget // 4, max(MIN_REQUEST, self._batch_size * source.mean_bytes))
        window = Window(budget=budget, first_request=max(1, first))
        if self._batched:
            # Requests of whole batches, samples back to back in order: each batch is a
            # slice of its request's buffer, which is where the socket wrote the bytes.
            planner = Planner(self._ids, source.span, unit=self._batch_size, merge=False)
            batches = _BatchBuffers(self._batch_size, self._arenas, world, shared=not in_main_process())
            allocate, max_request = batches.allocate, batches.max_request
        else:
            # Exact neighbours and repeats merge here; stores without batch-get (HTTP, S3)
            # also merge near neighbours into one range GET themselves.
            planner = Planner(self._ids, source.span, gap=0)
            allocate, max_request = heap_buffer, None
        decode = self._decode
        if world.worker > 0:  # let the previous worker's first batch have the link first
            _wait_for_first_batch(self._shared.worker(world.worker - 1), timeout=1.0)
        engine = FetchEngine(
            planner,
            config=self._config,
            window=window,
            check=source.check,
            describe=source.describe,
            stats=stats,
            allocate=allocate,
            max_request=max_request,
        ).start()
        try:
            if self._batched:
                yield from self._batches(engine, stats, batches)
                return
            add = stats.add
            while (item := engine.get()) is not None:
                req, _, samples = item
                for i, data in zip(req.ids.tolist(), samples, strict=True):
                    out = decode(i, data)
                    add("samples")
                    add("bytes", len(data))
                    yield out
        finally:
            engine.close()

    def _batches(
        self, engine: FetchEngine, stats: WorkerStats, buffers: _BatchBuffers
    ) -> Iterator[Batch]:
        """``decode="batch"``: each request holds whole batches; each batch is a view."""
        index = getattr(self._source, "index", None)
        size = self._batch_size
        while (item := engine.get()) is not None:
            req, _, samples = item
            data = buffers.tensor_of(req)
            lengths = [len(v) for v in samples]
            pos = 0
            for b in range(0, len(samples), size):
                part = lengths[b : b + size]
                nbytes = sum(part)
                seq = (req.first + b) // size
                view = data[pos : pos + nbytes]
                batch = make_batch(index, req.ids[b : b + size], view, part,
                                   lease=buffers.lease(req, seq, pos, nbytes))  # fmt: skip
                pos += nbytes
                stats.add("samples", len(part))
                stats.add("bytes", nbytes)
                yield batch


class _BatchBuffers:
    """Where ``decode="batch"`` requests land: the worker's arena (farfeed's DataLoader,
    fork), else fresh shared memory (other DataLoaders), or the heap (in-process)."""

    def __init__(self, batch_size: int, arenas: Arenas | None, world: World, *, shared: bool) -> None:
        self._size = batch_size
        self._shared = shared
        self._writer: ArenaWriter | None = None
        if shared and arenas is not None and world.worker < arenas.num_workers:
            self._writer = arenas.writer(world.worker)
        self._tensors: dict[int, Any] = {}  # request seq -> its tensor (set in the fetch thread)
        self._offsets: dict[int, int] = {}  # request seq -> its offset in the arena

    @property
    def max_request(self) -> int | None:
        """An arena holds at least four requests (one batch each, at the least)."""
        return None if self._writer is None else self._writer.capacity // 4

    def allocate(self, req: Request) -> memoryview | None:
        writer = self._writer
        if writer is not None and req.wire_bytes <= writer.capacity // 4:
            last = (req.first + len(req.ids) - 1) // self._size
            got = writer.reserve(req.wire_bytes, last_seq=last)
            if got is None:
                return None  # the training process still holds the arena: ask again soon
            self._offsets[req.seq], view = got
            return view
        tensor = new_buffer(req.wire_bytes, shared=self._shared)
        self._tensors[req.seq] = tensor
        return tensor.numpy().data

    def tensor_of(self, req: Request) -> Any:
        offset = self._offsets.get(req.seq)
        if offset is not None:
            assert self._writer is not None
            arena = self._writer.arenas.tensor(self._writer.worker)
            return arena[offset : offset + req.wire_bytes]
        return self._tensors.pop(req.seq)

    def lease(self, req: Request, seq: int, pos: int, nbytes: int) -> Any:
        offset = self._offsets.get(req.seq)
        if offset is None or self._writer is None:
            return None
        if (req.first + len(req.ids) - 1) // self._size == seq:
            del self._offsets[req.seq]  # the request's last batch: forget it
        return self._writer.lease(seq, offset + pos, nbytes)


def _wait_for_first_batch(stats: WorkerStats, *, timeout: float) -> None:
    """Wait (at most ``timeout`` s) until another worker's first request has arrived.

    The DataLoader needs worker 0's first batch first, then worker 1's...: fetching them
    all at once would share the link and delay the first one N-fold.
    """
    deadline = time.monotonic() + timeout
    while stats.get("first_batch_s") == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
