"""One worker's pipeline: planner -> fetch engine (reorder, verify) -> decode -> consumer.

Built by `Dataset.__iter__` in the process that consumes (a DataLoader worker, or the
main process), so the event loop, its thread and every connection are created after
fork, never shared across processes.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from farfeed.loader.arena import KEEP_BATCHES, Arenas, ArenaSlot
from farfeed.loader.batch import Batch, make_batch
from farfeed.loader.buffers import BatchBuffers, BufferPool
from farfeed.loader.config import FetchConfig
from farfeed.loader.decode import decode_image_sample, image_pipeline, open_image, sample_label
from farfeed.loader.engine import FetchEngine
from farfeed.loader.flow import MIN_REQUEST, Window
from farfeed.loader.planner import Planner
from farfeed.loader.source import Source
from farfeed.loader.stats import SharedStats, WorkerStats
from farfeed.loader.world import World

#: GIL switch interval in DataLoader workers, seconds (Python's default is 0.005).
WORKER_SWITCH_INTERVAL = 0.0005
#: Modules each DataLoader worker needs that the training process may not have imported:
#: the fetch engine's loop (uvloop) and what torch's worker loop seeds (numpy.random).
#: Imported after fork, each worker pays tens of ms of CPU for them, all at once, just
#: when the first batch is awaited; imported before, they are shared pages.
WORKER_MODULES = ("uvloop", "numpy.random")


@contextmanager
def importing_ahead() -> Iterator[None]:
    """Import `WORKER_MODULES` in a thread while the block runs (`farfeed.Dataset` reads
    its index meanwhile: the imports take the time the index spends crossing the link),
    and wait for them when it ends: before any DataLoader worker is forked."""

    def load() -> None:
        for name in WORKER_MODULES:
            try:
                importlib.import_module(name)
            except ImportError:  # uvloop is optional: the engine falls back to asyncio's
                pass

    thread = threading.Thread(target=load, name="farfeed-imports", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def in_main_process() -> bool:
    """True outside DataLoader worker processes."""
    from torch.utils.data import get_worker_info

    return get_worker_info() is None


def make_decoder(
    source: Source,
    decode: str | Callable[[dict[str, Any]], Any],
    *,
    image_size: int,
    train: bool,
    transform: Callable[[Any], Any] | None = None,
    as_dict: bool = False,
) -> Callable[[int, memoryview], Any]:
    """The per-sample decode step chosen by ``decode``, ``transform`` and ``as_dict`` (see
    `farfeed.Dataset`): bytes of sample ``i`` in, the sample the consumer gets out."""
    if decode == "batch":  # `Pipeline` makes whole batches; samples are not decoded
        return lambda i, data: data
    if decode == "image":
        pipeline = transform if transform is not None else image_pipeline(image_size, train=train)
        if as_dict:
            return lambda i, data: _image_dict(source.unpack(i, data), pipeline)
        return lambda i, data: decode_image_sample(source.unpack(i, data), pipeline)
    step: Callable[[int, memoryview], Any]
    if decode == "tokens" and as_dict:  # a TokenSource unpacks to (input_ids, labels)
        step = lambda i, data: _token_dict(i, source.unpack(i, data))  # noqa: E731
    elif decode in ("raw", "tokens"):
        step = source.unpack
    else:
        user = decode
        assert callable(user)
        step = lambda i, data: user(source.unpack(i, data))  # noqa: E731
    if transform is None:
        return step
    after = transform
    return lambda i, data: after(step(i, data))


def _image_dict(sample: dict[str, Any], pipeline: Callable[[Any], Any]) -> dict[str, Any]:
    return {
        "image": pipeline(open_image(sample)),
        "label": sample_label(sample),
        "__key__": sample["__key__"],
        "__index__": sample["__index__"],
    }


def _token_dict(i: int, window: tuple[Any, Any]) -> dict[str, Any]:
    input_ids, labels = window
    return {"input_ids": input_ids, "labels": labels, "__index__": i}


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
        own_arena: ArenaSlot | None = None,
        keep_batches: int = KEEP_BATCHES,
        shuffle_block: int = 1,
    ) -> None:
        self._ids = ids
        self._block = shuffle_block
        self._arenas = arenas
        self._own_arena = own_arena or ArenaSlot()
        self._keep = keep_batches
        self._source = source
        self._decode = decode
        self._batched = batched
        self._config = config
        self._batch_size = batch_size
        self._shared = stats
        self._world = world

    def __iter__(self) -> Iterator[Any]:
        """Start fetching at once (the engine's thread, its first connection and request),
        then yield the samples. A DataLoader worker calls ``iter`` as soon as it is forked,
        while the training process is still forking the others (only then does it send
        the first index): the first batch is on its way meanwhile."""
        stats = self._shared.worker(self._world.worker)
        stats.start()
        in_main = in_main_process()
        if not in_main:
            # This process only serves the DataLoader. Its fetch thread holds the GIL in
            # short slices; hand it over sooner, so the worker answers the training
            # process (batch hand-off, tensor file descriptors) without a 5 ms wait each.
            sys.setswitchinterval(WORKER_SWITCH_INTERVAL)
            _freeze_inherited()
        if len(self._ids) == 0:
            return iter(())
        engine, pool, batches = self._start(stats, in_main=in_main)
        at_exit: Any = None
        if not in_main:
            # A DataLoader worker may be told to stop between two batches (a step limit,
            # an exception in the loop): close the engine, its connections and its thread
            # before the process exits, whatever happens to this generator.
            from multiprocessing.util import Finalize

            at_exit = Finalize(None, engine.close, exitpriority=10)
        samples = self._run(engine, stats, pool, batches, at_exit)
        # and when the generator is dropped unstarted (its finally never runs)
        weakref.finalize(samples, engine.close)
        return samples

    def _start(
        self, stats: WorkerStats, *, in_main: bool
    ) -> tuple[FetchEngine, BufferPool | None, BatchBuffers | None]:
        """The started engine, and where its requests land (a pool, or batch arenas)."""
        source, world = self._source, self._world
        budget = max(1, self._config.memory_budget // world.num_workers)
        batch_bytes = self._batch_size * source.mean_bytes
        first = min(budget // 4, max(MIN_REQUEST, batch_bytes))
        # whole batches per request (decode="batch"): the window must carry two of them
        least = min(budget // 4, batch_bytes) if self._batched else 1
        window = Window(budget=budget, first_request=max(1, first), least_request=max(1, least))
        pool: BufferPool | None = None
        batches: BatchBuffers | None = None
        if self._batched:
            # Requests of whole batches, samples back to back in order: each batch is a
            # slice of its request's buffer, which is where the socket wrote the bytes.
            planner = Planner(self._ids, source.span, unit=self._batch_size, merge=False,
                              **_bulk(source))  # fmt: skip
            if in_main:  # in-process: an arena of our own, released as batches are taken
                own = self._own_arena.take(budget)  # the last iteration's, pages warm
                batches = BatchBuffers(self._batch_size, arenas=own, shared=False, keep=self._keep)
            else:
                batches = BatchBuffers(self._batch_size, arenas=self._arenas,
                                       worker=world.worker, shared=True)  # fmt: skip
            allocate, max_request = batches.allocate, batches.max_request
        else:
            # Exact neighbours and repeats merge here; stores without batch-get (HTTP, S3)
            # also merge near neighbours into one range GET themselves.
            # With shuffle_block, requests hold whole runs (one range each, not cut in two).
            planner = Planner(self._ids, source.span, gap=0, unit=self._block, **_bulk(source))
            pool = BufferPool(keep_bytes=budget // 2)
            allocate, max_request = pool.allocate, None
        hold = None
        if world.worker > 0:  # let the previous worker's first batch have the link first
            hold = _after_first_batch(self._shared.worker(world.worker - 1), timeout=1.0)
        engine = FetchEngine(
            planner,
            config=self._config,
            window=window,
            check=source.check,
            check_many=getattr(source, "check_many", None),
            checksum=getattr(source, "checksum", "xxh64"),
            describe=source.describe,
            stats=stats,
            allocate=allocate,
            max_request=max_request,
            hold_until=hold,
        ).start()
        return engine, pool, batches

    def _run(
        self,
        engine: FetchEngine,
        stats: WorkerStats,
        pool: BufferPool | None,
        batches: BatchBuffers | None,
        at_exit: Any,
    ) -> Iterator[Any]:
        """The samples (or batches) as the engine delivers them; closes it at the end."""
        try:
            if batches is not None:
                yield from self._batches(engine, stats, batches)
                return
            assert pool is not None
            add = stats.add
            decode = self._decode
            while (item := engine.get()) is not None:
                req, _, samples = item
                for i, data in zip(req.ids.tolist(), samples, strict=True):
                    out = decode(i, data)  # a copy: bytes, tensors (never views of data)
                    add("samples")
                    add("bytes", len(data))
                    yield out
                pool.give_back(req)
        finally:
            engine.close()
            if batches is not None and batches.own is not None and engine.stopped:
                self._own_arena.give_back(batches.own)  # nothing writes it any more
            if at_exit is not None:
                at_exit.cancel()

    def _batches(
        self, engine: FetchEngine, stats: WorkerStats, buffers: BatchBuffers
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
                lease = buffers.lease(req, (req.first + b) // size, pos, nbytes)
                batch = make_batch(index, req.ids[b : b + size], data[pos : pos + nbytes], part,
                                   lease=lease)  # fmt: skip
                pos += nbytes
                stats.add("samples", len(part))
                stats.add("bytes", nbytes)
                buffers.handed_out(lease)
                yield batch


_frozen_in: int | None = None  # the process that froze its inherited objects


def _freeze_inherited() -> None:
    """Once per worker process: everything it inherited from the training process stays
    out of its garbage collector. A full collection visits (and writes to) each object it
    tracks, and in a forked worker that copies every page of the parent's heap that holds
    one: 45 MB and 150-250 ms per 3 GB epoch in docs/BENCHMARKS.md ("Steady state")."""
    global _frozen_in
    if _frozen_in != os.getpid():
        gc.freeze()
        _frozen_in = os.getpid()


def _bulk(source: Any) -> dict[str, Any]:
    """The planner's whole-request lookups, for a source that has them (`SampleSource`)."""
    if hasattr(source, "spans") and hasattr(source, "sizes"):
        return {"spans": source.spans, "sizes": source.sizes}
    return {}


def _after_first_batch(stats: WorkerStats, *, timeout: float) -> Callable[[], bool]:
    """True once another worker's first request has arrived, or ``timeout`` s from now.

    The DataLoader needs worker 0's first batch first, then worker 1's...: fetching them
    all at once would share the link and delay the first one N-fold. The engine holds
    only its first request on this: its thread, store and connection are made at once,
    while the CPU is idle, not in the moment worker 0's batch lands and is handed on.
    """
    deadline = time.monotonic() + timeout
    return lambda: stats.get("first_batch_s") != 0 or time.monotonic() >= deadline
