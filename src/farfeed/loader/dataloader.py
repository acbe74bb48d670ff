"""`farfeed.loader.DataLoader`: a torch DataLoader that knows how far the training loop got.

DataLoader workers hold copies of the Dataset, so the main process's Dataset cannot
see what was consumed. This thin subclass counts the batches it hands out; since
workers take whole batches in turn (the sampler's rule 5), the position is exactly
``batches x batch_size`` samples of this rank, whatever ``num_workers`` is, and
`state_dict` / `load_state_dict` resume mid-epoch like torchdata's StatefulDataLoader.

    loader = DataLoader(ds, batch_size=256, num_workers=8)
    ...
    torch.save({"loader": loader.state_dict(), ...}, path)
    loader.load_state_dict(torch.load(path)["loader"])   # any num_workers
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import torch.multiprocessing
import torch.utils.data

from farfeed.errors import ConfigError, FarfeedError
from farfeed.loader.arena import KEEP_BATCHES, Arenas, Lease
from farfeed.loader.batch import Batch
from farfeed.loader.dataset import Dataset
from farfeed.loader.owner import iterating
from farfeed.store.options import StoreOptions

#: A worker's arena holds at least this many batches of the dataset's mean size (plus a
#: message's worth, `bundle_size`).
ARENA_BATCHES = 8
#: ``decode="batch"`` through workers: each message from a worker to the training process
#: carries batches of about this many bytes in all (`bundle_size`). A message costs the
#: training process ~0.4 ms of CPU however small (torch's queues, a thread hop,
#: unpickling), ~0.12 CPU-s per GB at 32 samples of 115 KB a batch (docs/BENCHMARKS.md,
#: "Fewer messages from the workers").
BUNDLE_BYTES = 16 << 20
#: The most batches one message carries.
MAX_BUNDLE = 8
#: Seconds added to the longest a worker takes to fail a batch (retry_for plus three
#: socket timeouts) for the default ``timeout`` of a loader with workers: generous, as a
#: first request of whole batches over a very slow link (~100 KB/s) can take minutes.
WORKER_TIMEOUT_MARGIN_S = 300.0

_REFUSED = {
    "shuffle": "the Dataset shuffles (seed=, shuffle=)",
    "sampler": "the Dataset samples and splits by rank and worker itself",
    "batch_sampler": "the Dataset samples and splits by rank and worker itself",
}


class DataLoader(torch.utils.data.DataLoader):  # type: ignore[type-arg]
    """A torch DataLoader over a `farfeed.Dataset` with `state_dict` / `load_state_dict`.

    Sets ``dataset.batch_size`` to ``batch_size`` (the per-worker split needs it; left
    out, the Dataset's own ``batch_size`` is used);
    ``num_workers`` worker processes each take whole batches in turn, so the position is
    exact with any number. Other keyword arguments go to torch's DataLoader;
    ``persistent_workers`` and ``in_order=False`` are refused (a kept worker would not see
    `set_epoch`, and out-of-order batches would break the position count).

    With workers, ``timeout`` defaults to `worker_timeout` (``retry_for`` + 3 socket
    timeouts + 300 s: 10 min by default) instead of torch's 0 (forever): a worker stuck
    without a batch is then an error that says so, not a training job that waits forever.

    With ``decode="batch"`` and forked workers, each worker reads into an arena of shared
    memory mapped once (`farfeed.loader.arena`): a `Batch` stays valid until the loop has
    taken ``keep_batches`` newer batches, then its bytes are reused (``batch.clone()``
    keeps one longer). Raise ``keep_batches`` if the loop holds more batches at once
    (e.g. an asynchronous copy to the GPU still reading the previous ones).

    With ``decode="batch"`` and workers, small batches cross from a worker several to a
    message (`bundle_size`: ~16 MiB in all, at most 8; each worker's first message holds
    one batch, so the first batch is no later); the loop still gets them one at a time,
    in the same order. A message costs the training process ~0.4 ms of CPU however
    small.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int | None = None,
        num_workers: int = 0,
        keep_batches: int = KEEP_BATCHES,
        **kwargs: Any,
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise ConfigError(
                f"farfeed.loader.DataLoader needs a farfeed.Dataset, got {type(dataset).__name__}"
            )
        if batch_size is None:
            batch_size = dataset.batch_size
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
        for name, why in _REFUSED.items():
            if kwargs.get(name) not in (None, False):
                raise ConfigError(f"{name}={kwargs[name]!r} is not allowed: {why}")
        if kwargs.get("persistent_workers"):
            raise ConfigError(
                "persistent_workers=True is not supported: workers must see set_epoch()"
            )
        if kwargs.get("in_order") is False:
            raise ConfigError("in_order=False is not supported: positions count batches in order")
        if not isinstance(keep_batches, int) or keep_batches < 1:
            raise ConfigError(f"keep_batches must be an int >= 1, got {keep_batches!r}")
        if num_workers > 0 and "timeout" not in kwargs:
            kwargs["timeout"] = worker_timeout(dataset)
        arenas = None
        bundle = 1
        if dataset.decode == "batch" and num_workers > 0:
            bundle = bundle_size(dataset, batch_size)
        if dataset.decode == "batch" and num_workers > 0 and _forks(kwargs):
            capacity = arena_capacity(
                dataset, batch_size, num_workers=num_workers, keep_batches=keep_batches + bundle
            )
            arenas = Arenas(num_workers=num_workers, capacity=capacity)
            bundle = bundle_size(dataset, batch_size, arena=capacity, keep_batches=keep_batches)
        dataset.attach_loader(batch_size=batch_size, arenas=arenas, bundle=bundle)
        self._bundle = bundle
        self._arenas = arenas
        self._arenas_busy = False
        self._keep = keep_batches
        # decode="batch": the Dataset yields whole batches already (one tensor each)
        torch_batch = None if dataset.decode == "batch" else batch_size
        super().__init__(dataset, batch_size=torch_batch, num_workers=num_workers, **kwargs)
        self._ds = dataset
        self._consumed = 0
        self._epoch = dataset.epoch
        self._wait = 0.0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        ds = self._ds
        base = ds.resume_position
        self._epoch, self._consumed, self._wait = ds.epoch, base, 0.0
        ds.reset_stats()
        if self._arenas is not None:
            if self._arenas_busy:  # another iteration's workers still write the arenas
                self._arenas = Arenas(num_workers=self._arenas.num_workers,
                                    capacity=self._arenas.capacity)  # fmt: skip
                ds.attach_loader(batch_size=ds.batch_size, arenas=self._arenas, bundle=self._bundle)
            self._arenas.start_iteration()  # batches kept from an earlier epoch are stale
        with iterating(ds):  # the Dataset refuses any other loader (farfeed.loader.owner)
            inner = super().__iter__()  # worker processes start here, with the resume point
        ds.resume_position_used()
        return self._count(inner, base)

    def _count(self, inner: Iterator[Any], base: int) -> Iterator[Any]:
        ds = self._ds
        batches = 0
        held: deque[Lease] = deque()  # arena batches handed out, newest last
        arenas = self._arenas
        self._arenas_busy = arenas is not None
        bar = None
        if ds.progress:
            from farfeed.loader.progress import EpochProgress

            remaining = ds.sampler.rank_length(ds.world.world_size, base)
            total = -(-remaining // self._ds.batch_size)
            bar = EpochProgress(total, self.stats, unit="batches").__enter__()
        try:
            while True:
                t0 = time.monotonic()
                try:
                    item = next(inner)
                except StopIteration:
                    return
                except RuntimeError as exc:
                    if self.timeout and str(exc).startswith("DataLoader timed out"):
                        raise FarfeedError(
                            f"no batch from the DataLoader workers for {self.timeout:g} s, longer "
                            f"than a fetch can take to succeed or fail (retry_for="
                            f"{ds.fetch_config.retry_for:g} s): a worker is stuck. Pass "
                            "timeout=SECONDS to farfeed.loader.DataLoader to wait longer "
                            "(0: forever)"
                        ) from exc
                    raise
                self._wait += time.monotonic() - t0
                for batch in item if self._bundle > 1 else (item,):  # a worker's message
                    batches += 1
                    if arenas is not None and isinstance(batch, Batch) and batch.lease is not None:
                        held.append(batch.lease)
                        while len(held) > self._keep:
                            arenas.release(held.popleft())
                    delivered = batches * ds.batch_size
                    self._consumed = ds.sampler.consumed_after(
                        ds.world.world_size, base, delivered
                    )
                    if bar is not None:
                        bar.advance()
                    yield batch
        finally:
            if arenas is not None and arenas is self._arenas:
                self._arenas_busy = False
            if bar is not None:
                bar.__exit__(None, None, None)

    def set_epoch(self, epoch: int) -> None:
        """``dataset.set_epoch(epoch)``: choose ``epoch``'s permutation, for trainers that call
        ``set_epoch`` on the loader (the Hugging Face Trainer does before each epoch). A
        restored position is kept for its own epoch (see `Dataset.set_epoch`)."""
        self._ds.set_epoch(epoch)

    def stats(self) -> dict[str, float]:
        """The Dataset's stats (summed over workers) plus ``wait_s``: seconds the training
        loop waited for a batch this epoch (the stall the accelerator sees)."""
        out = self._ds.stats()
        out["wait_s"] = self._wait
        return out

    def state_dict(self) -> dict[str, Any]:
        """Exact position: the next batch after a resume is the one this loop would get next."""
        state = self._ds.state_at(self._consumed)
        state["epoch"] = self._epoch
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from ``state``, what `state_dict` returned (same or another num_workers or
        world size)."""
        self._ds.load_state_dict(state)
        self._epoch, self._consumed = self._ds.epoch, self._ds.resume_position


def arena_capacity(
    dataset: Dataset, batch_size: int, *, num_workers: int, keep_batches: int
) -> int:
    """Bytes of one worker's arena: its share of the memory budget, and room for
    ``ARENA_BATCHES + keep_batches`` batches of the mean size at the least."""
    per_worker = dataset.fetch_config.memory_budget // num_workers
    batch_bytes = batch_size * dataset.source.mean_bytes
    return max(per_worker, (ARENA_BATCHES + keep_batches) * batch_bytes)


def bundle_size(
    dataset: Dataset, batch_size: int, *, arena: int | None = None, keep_batches: int = 0
) -> int:
    """Batches per message from a worker (``decode="batch"``): about `BUNDLE_BYTES` in
    all, 1 to `MAX_BUNDLE` (each worker's first message holds one, for a short first batch).

    With an ``arena`` of that many bytes, a message and the ``keep_batches`` the training
    loop holds take at most half of it: a worker holds a message's batches in its arena
    until the last one is in, and the rest must fit a request (a quarter at most)."""
    batch_bytes = max(1, int(batch_size * dataset.source.mean_bytes))
    bundle = BUNDLE_BYTES // batch_bytes
    if arena is not None:
        bundle = min(bundle, arena // batch_bytes // 2 - keep_batches)
    return max(1, min(MAX_BUNDLE, bundle))


def worker_timeout(dataset: Dataset) -> float:
    """The default ``timeout`` of a loader with workers: seconds without a batch after which
    a worker counts as stuck. A batch's fetch succeeds or fails (retrying transient errors
    for ``retry_for`` s, each try bounded by the store's socket timeout) well within it."""
    cfg = dataset.fetch_config
    socket_timeout = float(cfg.store_options.get("timeout", StoreOptions().timeout))
    return cfg.retry_for + 3 * socket_timeout + WORKER_TIMEOUT_MARGIN_S


def _forks(kwargs: Mapping[str, Any]) -> bool:
    """True when the workers will be forked (they then inherit the arenas' mappings)."""
    context = kwargs.get("multiprocessing_context")
    if context is None:
        return torch.multiprocessing.get_start_method(allow_none=False) == "fork"
    if isinstance(context, str):
        return context == "fork"
    return bool(context.get_start_method() == "fork")
