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

from farfeed.loader.batch import Batch, make_batch
from farfeed.loader.config import FetchConfig
from farfeed.loader.decode import decode_image_sample, image_transform
from farfeed.loader.engine import FetchEngine
from farfeed.loader.flow import MIN_REQUEST, Window
from farfeed.loader.planner import Planner
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
    if decode == "batch":  # samples stay as verified views until `make_batch` copies them
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
    ) -> None:
        self._ids = ids
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
        # Exact neighbours and repeats merge here; stores without batch-get (HTTP, S3)
        # also merge near neighbours into one range GET themselves.
        planner = Planner(self._ids, source.span, gap=0)
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
        ).start()
        try:
            if self._batched:
                yield from self._batches(engine, stats)
                return
            add = stats.add
            while (item := engine.get()) is not None:
                req, samples = item
                for i, data in zip(req.ids.tolist(), samples, strict=True):
                    out = decode(i, data)
                    add("samples")
                    add("bytes", len(data))
                    yield out
        finally:
            engine.close()

    def _batches(self, engine: FetchEngine, stats: WorkerStats) -> Iterator[Batch]:
        """``decode="batch"``: whole batches, each copied once into one (shared) tensor."""
        shared = not in_main_process()
        index = getattr(self._source, "index", None)
        ids: list[int] = []
        views: list[memoryview] = []
        while (item := engine.get()) is not None:
            req, samples = item
            for i, data in zip(req.ids.tolist(), samples, strict=True):
                ids.append(i)
                views.append(data)
                if len(ids) == self._batch_size:
                    yield self._emit(index, ids, views, stats, shared=shared)
                    ids, views = [], []
        if ids:
            yield self._emit(index, ids, views, stats, shared=shared)

    @staticmethod
    def _emit(
        index: Any, ids: list[int], views: list[memoryview], stats: WorkerStats, *, shared: bool
    ) -> Batch:
        batch = make_batch(index, ids, views, shared=shared)
        stats.add("samples", len(ids))
        stats.add("bytes", batch.nbytes)
        return batch


def _wait_for_first_batch(stats: WorkerStats, *, timeout: float) -> None:
    """Wait (at most ``timeout`` s) until another worker's first request has arrived.

    The DataLoader needs worker 0's first batch first, then worker 1's...: fetching them
    all at once would share the link and delay the first one N-fold.
    """
    deadline = time.monotonic() + timeout
    while stats.get("first_batch_s") == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
