"""`farfeed.Dataset`: a torch IterableDataset streaming a remote dataset with full shuffle.

import farfeed
ds = farfeed.Dataset("http://storage:8470/imagenet", decode="image", batch_size=256)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from torch.utils.data import IterableDataset

from farfeed.errors import ConfigError
from farfeed.loader.arena import Arenas
from farfeed.loader.batch import Batch
from farfeed.loader.config import FetchConfig
from farfeed.loader.decode import image_transform
from farfeed.loader.pipeline import Pipeline, in_main_process, make_decoder
from farfeed.loader.sampler import UNEVEN_RULES, Sampler, worker_stream
from farfeed.loader.source import open_source
from farfeed.loader.stats import SharedStats
from farfeed.loader.world import World

DECODERS = ("raw", "image", "tokens", "batch")
STATE_VERSION = 1


class Dataset(IterableDataset):  # type: ignore[type-arg]
    """Stream one split of a farfeed dataset (gateway, s3://, http(s)://, or a local path).

    Every epoch is a seeded permutation of all samples, split by rank (from
    torch.distributed, or ``rank``/``world_size``) then by DataLoader worker; samples
    are fetched ahead of consumption in that known order, verified, and decoded in the
    worker. Nothing fetched touches local disk; buffered bytes stay under
    ``memory_budget`` (bytes per rank, shared by its DataLoader workers).

    decode: ``"raw"`` yields the WebDataset-style dict (``__key__``, ``__index__``,
    ``jpg``, ``cls``...); ``"image"`` yields ``(float CHW tensor, int label)`` with
    RandomResizedCrop + flip (``train=True``) or resize + center crop; ``"tokens"``
    yields ``(input_ids, labels)`` LongTensors of ``seq_len`` from a token corpus,
    packed across documents; ``"batch"`` yields whole batches of ``batch_size`` raw
    samples as `farfeed.loader.Batch` (one uint8 tensor, in shared memory from DataLoader
    workers: the fastest way to move bytes; use `farfeed.loader.DataLoader`, or torch's
    with ``batch_size=None``); a callable receives the raw dict.
    batch_size: the DataLoader's batch size. Workers take whole batches in turn, so a
    DataLoader delivers the rank's order exactly and its position is batches x
    batch_size (see `farfeed.loader.DataLoader`, which sets it for you).
    """

    def __init__(
        self,
        url: str,
        *,
        split: str = "train",
        decode: str | Callable[[dict[str, Any]], Any] = "raw",
        image_size: int = 224,
        train: bool = True,
        seq_len: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        uneven: str = "pad",
        batch_size: int = 1,
        rank: int | None = None,
        world_size: int | None = None,
        memory_budget: int = 512 * 2**20,
        replicas: Sequence[str] = (),
        token: str | None = None,
        store_options: Mapping[str, Any] | None = None,
        verify: bool = True,
        retries: int = 8,
        progress: bool = False,
    ) -> None:
        if not callable(decode) and decode not in DECODERS:
            raise ConfigError(f"decode must be one of {DECODERS} or a callable, got {decode!r}")
        if uneven not in UNEVEN_RULES:
            raise ConfigError(f"uneven must be one of {UNEVEN_RULES}, got {uneven!r}")
        if decode == "tokens" and (seq_len is None or seq_len < 1):
            raise ConfigError(f'decode="tokens" needs seq_len >= 1, got seq_len={seq_len!r}')
        if image_size < 1:
            raise ConfigError(f"image_size must be >= 1, got {image_size!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
        if memory_budget < 1 << 20:
            raise ConfigError(f"memory_budget must be >= 1 MiB, got {memory_budget!r}")
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries!r}")
        if isinstance(replicas, str):
            raise ConfigError(f"replicas must be a sequence of URLs, got the string {replicas!r}")
        _check_store_options(store_options)
        self.url = url
        self.split = split
        self.decode = decode
        self.image_size = image_size
        self.train = train
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.progress = progress
        self.world = World.for_rank(rank=rank, world_size=world_size)
        config = FetchConfig(
            urls=(url, *replicas),
            token=token,
            store_options=dict(store_options or {}),
            memory_budget=memory_budget,
            retries=retries,
            verify=verify,
        )
        # The index is fetched once here, before any fork, and travels with the object
        # (so does what opening the store learned, in fetch_config.gateway_info).
        self.source, self.fetch_config = open_source(
            config, split=split, seq_len=seq_len, tokens=decode == "tokens"
        )
        self.sampler = Sampler(self.source.ids, seed=seed, shuffle=shuffle, uneven=uneven)
        self.epoch = 0
        self._start = 0  # global position the next iteration starts from (load_state_dict)
        self._consumed = 0  # global position reached by an in-process iteration
        self._loader_owned = False  # a farfeed.loader.DataLoader shows progress instead
        if decode == "image":  # import before fork: workers then start decoding at once
            image_transform(image_size, train=train)
        self._shared = SharedStats()
        self._arenas: Arenas | None = None  # decode="batch" in farfeed.loader.DataLoader workers

    # -- epochs and length -------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Choose ``epoch`` (0, 1, ...: its permutation) for the next iteration, from its start.

        After `load_state_dict`, the restored position is kept while it is unused:
        ``set_epoch`` with the restored epoch (the usual loop, ``for epoch in
        range(state["epoch"], epochs): ds.set_epoch(epoch)``) resumes mid-epoch, and another
        epoch is refused with an error (dropping the resume point silently would train the
        first part of the epoch twice, or skip the rest).
        """
        if not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"epoch must be an int >= 0, got {epoch!r}")
        if self._start > 0:  # a resume point from load_state_dict, not used yet
            if epoch == self.epoch:
                return
            raise ConfigError(
                f"load_state_dict() restored epoch {self.epoch} at sample {self._start}, and "
                f"set_epoch({epoch}) would drop that resume point. Start the epoch loop at the "
                f"restored epoch (for epoch in range(state['epoch'], epochs): "
                f"ds.set_epoch(epoch)), or call set_epoch before load_state_dict to start "
                f"epoch {epoch} from its beginning."
            )
        self.epoch = epoch
        self._start = 0
        self._consumed = 0

    def __len__(self) -> int:
        """Samples this rank yields per (whole) epoch, after the uneven rule."""
        return self.sampler.rank_length(self.world.world_size)

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        """This worker's share of the epoch from the resume point, fetched ahead, in order."""
        self.world.check_distributed()
        world = self.world.with_worker()
        start = self._start
        self._start = 0  # a resume point is used once
        rank_ids = self.sampler.rank_stream(self.epoch, world, consumed=start)
        ids = worker_stream(rank_ids, world, batch_size=self.batch_size)  # the explicit split
        decode = make_decoder(
            self.source, self.decode, image_size=self.image_size, train=self.train
        )
        pipeline = Pipeline(
            ids,
            source=self.source,
            decode=decode,
            batched=self.decode == "batch",
            config=self.fetch_config,
            batch_size=self.batch_size,
            stats=self._shared,
            world=world,
            arenas=self._arenas,
        )
        in_process = world.num_workers == 1 and in_main_process()
        self._consumed = start
        return self._track(pipeline, start) if in_process else iter(pipeline)

    def _track(self, pipeline: Iterable[Any], start: int) -> Iterator[Any]:
        """Count what an in-process consumer received, so `state_dict` is exact."""
        delivered = 0
        bar = None
        if self.progress and not self._loader_owned:
            from farfeed.loader.progress import EpochProgress

            remaining = self.sampler.rank_length(self.world.world_size, start)
            bar = EpochProgress(remaining, self.stats).__enter__()
        try:
            for item in pipeline:
                delivered += len(item) if isinstance(item, Batch) else 1
                self._consumed = self.sampler.consumed_after(
                    self.world.world_size, start, delivered
                )
                if bar is not None:
                    bar.advance()
                yield item
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)

    # -- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Exact position in the epoch (of an in-process iteration; with DataLoader workers
        use `farfeed.loader.DataLoader.state_dict`, which counts delivered batches)."""
        return self.state_at(self._consumed)

    def state_at(self, consumed: int) -> dict[str, Any]:
        """The state of this epoch after ``consumed`` samples of the global order (what
        `state_dict` returns at that point; `farfeed.loader.DataLoader` counts them)."""
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "consumed": consumed,
            "num_samples": self.sampler.num_samples,
            "seed": self.sampler.seed,
            "shuffle": self.sampler.shuffle,
            "uneven": self.sampler.uneven,
            "split": self.split,
            "world_size": self.world.world_size,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next iteration starts exactly where ``state`` was taken.

        Works with another number of DataLoader workers, and another world size.
        """
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"unknown loader state version {state.get('version')!r}")
        mine = self.state_at(0)
        for key in ("num_samples", "seed", "shuffle", "uneven", "split"):
            if state.get(key) != mine[key]:
                raise ConfigError(
                    f"state was saved with {key}={state.get(key)!r} but this Dataset has {key}={mine[key]!r}"
                )
        consumed = state.get("consumed")
        if not isinstance(consumed, int) or not 0 <= consumed <= self.sampler.num_samples:
            raise ConfigError(f"state has a bad position consumed={consumed!r}")
        self.epoch = int(state["epoch"])
        self._start = consumed
        self._consumed = consumed

    @property
    def resume_position(self) -> int:
        """Where the next iteration starts in this epoch's global order: 0, or the position
        `load_state_dict` restored (used by one iteration, then back to 0)."""
        return self._start

    def resume_position_used(self) -> None:
        """The next iteration has started from `resume_position`: later ones start at 0.
        (`farfeed.loader.DataLoader` calls this once its workers hold their copy.)"""
        self._start = 0

    def attach_loader(self, *, batch_size: int, arenas: Arenas | None = None) -> None:
        """Called by `farfeed.loader.DataLoader`: workers take whole batches of
        ``batch_size`` in turn, and the loader (not the Dataset) shows progress. With
        ``arenas`` (``decode="batch"``, forked workers) each worker fills its ring."""
        self.batch_size = batch_size
        self._loader_owned = True
        self._arenas = arenas

    # -- stats ---------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """samples_per_s, bytes_per_s, rtt_s, bytes_in_flight, stall_s, retries, ...
        summed over this rank's DataLoader workers (live while iterating)."""
        return self._shared.summary()

    def reset_stats(self) -> None:
        """Zero the counters behind `stats` (a new epoch of a `farfeed.loader.DataLoader`)."""
        self._shared.reset()


def _check_store_options(options: Mapping[str, Any] | None) -> None:
    """Refuse store options `open_store` does not take (instead of a TypeError in a worker)."""
    import inspect

    from farfeed.store import open_store

    known = set(inspect.signature(open_store).parameters) - {"url", "token"}
    unknown = sorted(set(options or {}) - known)
    if unknown:
        raise ConfigError(f"unknown store_options {unknown}; known: {sorted(known)}")
