"""`farfeed.Dataset`: a torch IterableDataset streaming a remote dataset with full shuffle.

import farfeed
ds = farfeed.Dataset("http://storage:8470/imagenet", decode="image", batch_size=256)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from torch.utils.data import IterableDataset

from farfeed.errors import ConfigError
from farfeed.loader.arena import Arenas, ArenaSlot
from farfeed.loader.batch import Batch
from farfeed.loader.config import FetchConfig
from farfeed.loader.decode import image_pipeline
from farfeed.loader.owner import check_iteration
from farfeed.loader.pipeline import Pipeline, importing_ahead, in_main_process, make_decoder
from farfeed.loader.sampler import UNEVEN_RULES, Sampler, worker_stream
from farfeed.loader.source import open_source
from farfeed.loader.stats import SharedStats
from farfeed.loader.world import World
from farfeed.store.access import access_options
from farfeed.transfer.retry import RETRY_FOR_S, RetryPolicy

DECODERS = ("raw", "image", "tokens", "batch")
DEFAULT_IMAGE_SIZE = 224
STATE_VERSION = 1


class Dataset(IterableDataset):  # type: ignore[type-arg]
    """Stream one split of a farfeed dataset (gateway, s3://, http(s)://, or a local path).

    Every epoch is a seeded permutation of all samples, split by rank (from
    torch.distributed, or ``rank``/``world_size``) then by DataLoader worker; samples
    are fetched ahead of consumption in that known order, verified, and decoded in the
    worker. Nothing fetched touches local disk.

    >>> ds = farfeed.Dataset("https://storage:8470/imagenet", decode="image", batch_size=256)
    >>> loader = farfeed.loader.DataLoader(ds, batch_size=256, num_workers=8)

    What to read:

    - ``url``: ``http(s)://HOST:PORT/NAME`` (farfeed gateway or static HTTP server, told
      apart by one request), ``s3://BUCKET/PREFIX``, ``file:///path`` or a local path.
      A gateway token may ride in it: ``https://:TOKEN@HOST:8470/NAME``.
    - ``split``: the split of the dataset's index to read (``"train"``, ``"val"``...).
    - ``replicas``: more URLs serving the same dataset (other gateways over the same
      files, or copies elsewhere). By default they are for failover only: reads go to the
      first URL in the rotation, and a URL leaves it after two failures in a row (it is
      probed in the background and comes back when it answers).
    - ``spread``: with ``replicas``, use every URL at once: each request goes to the URL
      that should finish it first (least bytes outstanding per measured bytes/s), so one
      GPU node pulls more than one storage node's NIC or CPU delivers; a URL that fails
      leaves the rotation as above. Off by default because a replica is often a far copy
      kept for disasters, whose reads cost more; turn it on for peer gateways.

    What a sample becomes (in the DataLoader worker):

    - ``decode``: ``"raw"`` yields the WebDataset-style dict (``__key__``, ``__index__``,
      ``jpg``, ``cls``...); ``"image"`` yields ``(image, int label)``, the image through
      ``transform``; ``"tokens"`` yields ``(input_ids, labels)`` LongTensors of
      ``seq_len`` from a token corpus, packed across documents; ``"batch"`` yields whole
      batches of ``batch_size`` raw samples as `farfeed.loader.Batch` (one uint8 tensor
      where the socket wrote the bytes, no copy: the fastest way to move bytes; valid
      until ``keep_batches`` newer batches were taken; decode them with
      `farfeed.loader.decode_images`; use `farfeed.loader.DataLoader`, or torch's with
      ``batch_size=None``); a callable receives the raw dict and returns the sample.
    - ``transform``: with ``decode="image"``, the image pipeline: it gets the RGB PIL
      image and returns what the sample carries (default:
      `farfeed.loader.image_pipeline` ``(image_size, train=train)``; any torchvision v2
      transform fits). With ``"raw"``, ``"tokens"`` or a callable ``decode``: applied to
      each decoded sample. Not with ``"batch"``. It must pickle when DataLoader workers
      are spawned rather than forked.
    - ``as_dict``: with ``"image"``, samples are ``{"image", "label", "__key__",
      "__index__"}`` instead of ``(image, label)``, so each sample's key travels with the
      batch (torch's ``default_collate`` stacks the tensors and lists the keys); with
      ``"tokens"``, ``{"input_ids", "labels", "__index__"}``.
    - ``image_size``: the output side of the default image pipeline (224 when not given);
      give ``image_size`` or ``transform``, not both.
    - ``train``: the default image pipeline's view: random crop and flip (True), or resize
      and center crop (False).
    - ``seq_len``: tokens per sample with ``decode="tokens"``.

    Order and split:

    - ``shuffle``: a seeded permutation of the whole split every epoch (True), or the
      index's order (False).
    - ``shuffle_block``: 1 (the default) shuffles single samples. N > 1 shuffles runs of
      N samples that lie next to each other in the shards instead (the cut moves each
      epoch), so a store without batch-get (``s3://``, plain HTTP) reads each run with
      one range GET: N times fewer requests, for stores that cap request rates or cost
      CPU per request. A batch then holds ``batch_size / N`` independent runs: pack the
      data in random order (``farfeed pack images --shuffle``) so that neighbours are
      unrelated, and use a ``batch_size`` that is a multiple of N (DataLoader workers
      take whole batches in turn, so other sizes cut runs in two). A job resumes only
      with the same world size.
    - ``seed``: the permutation's seed; the epoch (`set_epoch`) varies it.
    - ``uneven``: when the split does not divide by the world size, ``"pad"`` repeats the
      epoch's first samples so every rank gets as many; ``"drop"`` leaves out the last
      ``len % world_size`` (every sample at most once).
    - ``batch_size``: the DataLoader's batch size. Workers take whole batches in turn, so
      a DataLoader delivers the rank's order exactly and its position is batches x
      batch_size (`farfeed.loader.DataLoader` sets it for you).
    - ``rank``, ``world_size``: this process's place among the ranks (both or neither);
      default: from torch.distributed once initialised, else 0 of 1.

    Reaching the data:

    - ``token``: the gateway's bearer token (needs the ``read`` scope); else the URL's,
      else ``$FARFEED_TOKEN`` (see `farfeed.store.access`).
    - ``ca_file``: a PEM bundle of the CAs to trust for https; else ``$SSL_CERT_FILE``,
      else the system's.
    - ``store_options``: more `farfeed.store.open_store` keyword arguments
      (``connections``, ``timeout``, ``s3_endpoint_url``, ``s3_access_key``, ...;
      ``{"ssl": False}`` skips the certificate check on a self-signed test server).
    - ``memory_budget``: most bytes of fetched samples held at once per rank, shared by
      its DataLoader workers.
    - ``verify``: check every sample's xxh64 against the index. A mismatch is fetched
      again from each URL in turn (never delivered); when no copy is good, an
      `IntegrityError` names the sample and every URL tried.
    - ``retry_for``: seconds a failed read keeps retrying transient errors (resets,
      refused connections, timeouts, 5xx) before its error is raised, naming the samples,
      the URL and the cause: long enough for a routing flap or a gateway restart. While a
      link is down one line is logged, then at most one every 10 s, and one when it is back.
    - ``retries``: deprecated (retries were counted, now they are timed): ``retries=N`` is
      read as ``retry_for`` = the most time N retries used to take (8: 7.2 s), with a
      `FutureWarning`.
    - ``progress``: show a progress bar while iterating.
    """

    def __init__(
        self,
        url: str,
        *,
        split: str = "train",
        decode: str | Callable[[dict[str, Any]], Any] = "raw",
        transform: Callable[[Any], Any] | None = None,
        as_dict: bool = False,
        image_size: int | None = None,
        train: bool = True,
        seq_len: int | None = None,
        shuffle: bool = True,
        shuffle_block: int = 1,
        seed: int = 0,
        uneven: str = "pad",
        batch_size: int = 1,
        rank: int | None = None,
        world_size: int | None = None,
        memory_budget: int = 512 * 2**20,
        replicas: Sequence[str] = (),
        token: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        store_options: Mapping[str, Any] | None = None,
        verify: bool = True,
        retry_for: float = RETRY_FOR_S,
        spread: bool = False,
        retries: int | None = None,
        progress: bool = False,
    ) -> None:
        if not callable(decode) and decode not in DECODERS:
            raise ConfigError(f"decode must be one of {DECODERS} or a callable, got {decode!r}")
        if uneven not in UNEVEN_RULES:
            raise ConfigError(f"uneven must be one of {UNEVEN_RULES}, got {uneven!r}")
        if decode == "tokens" and (seq_len is None or seq_len < 1):
            raise ConfigError(f'decode="tokens" needs seq_len >= 1, got seq_len={seq_len!r}')
        _check_sample_options(decode, transform=transform, as_dict=as_dict, image_size=image_size)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
        if memory_budget < 1 << 20:
            raise ConfigError(f"memory_budget must be >= 1 MiB, got {memory_budget!r}")
        if retries is not None:
            retry_for = _retry_for_from_retries(retries, retry_for)
        RetryPolicy(retry_for=retry_for)  # a bad retry_for fails here, quoted
        if isinstance(replicas, str):
            raise ConfigError(f"replicas must be a sequence of URLs, got the string {replicas!r}")
        if not isinstance(spread, bool):
            raise ConfigError(f"spread must be True or False, got {spread!r}")
        if spread and not replicas:
            raise ConfigError("spread=True needs replicas=[...]: the other URLs serving this dataset")
        access = access_options(
            (url, *replicas), token=token, ca_file=ca_file, store_options=store_options
        )
        self.url = url
        self.split = split
        self.decode = decode
        self.transform = transform
        self.as_dict = as_dict
        self.image_size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
        self.train = train
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.progress = progress
        self.world = World.for_rank(rank=rank, world_size=world_size)
        config = FetchConfig(
            urls=(url, *replicas),
            token=access.pop("token", None),
            store_options=access,
            memory_budget=memory_budget,
            retry_for=float(retry_for),
            spread=spread,
            verify=verify,
        )
        # The index is fetched once here, before any fork, and travels with the object
        # (so does what opening the store learned, in fetch_config.gateway_info).
        with importing_ahead():  # what workers need, imported while the index travels
            self.source, self.fetch_config = open_source(
                config, split=split, seq_len=seq_len, tokens=decode == "tokens"
            )
        self.sampler = Sampler(
            self.source.ids, seed=seed, shuffle=shuffle, uneven=uneven, block=shuffle_block
        )
        run_bytes = shuffle_block * self.source.mean_bytes
        if shuffle_block > 1 and run_bytes > memory_budget // 4:
            raise ConfigError(
                f"shuffle_block={shuffle_block} makes runs of ~{run_bytes / 2**20:.0f} MiB "
                f"(samples average {self.source.mean_bytes:,} bytes), more than a quarter of "
                f"memory_budget={memory_budget:,}: requests hold whole runs, so use a smaller "
                "shuffle_block or a larger memory_budget"
            )
        self.epoch = 0
        self._start = 0  # global position the next iteration starts from (load_state_dict)
        self._consumed = 0  # global position reached by an in-process iteration
        self._loader_owned = False  # a farfeed.loader.DataLoader shows progress instead
        if decode == "image":  # import before fork: workers then start decoding at once
            image_pipeline(self.image_size, train=train)
        self._shared = SharedStats()
        self._arenas: Arenas | None = None  # decode="batch" in farfeed.loader.DataLoader workers
        self._bundle = 1  # batches per message from a DataLoader worker (attach_loader)
        self._own_arena = ArenaSlot()  # decode="batch" in this process, kept between epochs

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
        check_iteration(self)  # refuses a loader that re-wraps us (accelerate, trainers)
        self.world.check_distributed()
        world = self.world.with_worker()
        start = self._start
        self._start = 0  # a resume point is used once
        rank_ids = self.sampler.rank_stream(self.epoch, world, consumed=start)
        in_process = world.num_workers == 1 and in_main_process()
        bundle = 1 if in_process else self._bundle
        # the explicit split
        ids = worker_stream(rank_ids, world, batch_size=self.batch_size, bundle=bundle)
        decode = make_decoder(
            self.source,
            self.decode,
            image_size=self.image_size,
            train=self.train,
            transform=self.transform,
            as_dict=self.as_dict,
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
            own_arena=self._own_arena,
            shuffle_block=self.sampler.block if self.sampler.shuffle else 1,
        )
        self._consumed = start
        if in_process:
            return self._track(pipeline, start)
        return bundled(pipeline, bundle) if bundle > 1 else iter(pipeline)

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
            "shuffle_block": self.sampler.block,
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
        for key in ("num_samples", "seed", "shuffle", "shuffle_block", "uneven", "split"):
            if state.get(key, 1 if key == "shuffle_block" else None) != mine[key]:
                raise ConfigError(
                    f"state was saved with {key}={state.get(key)!r} but this Dataset has {key}={mine[key]!r}"
                )
        if self.sampler.block > 1 and self.sampler.shuffle and state.get("consumed"):
            if state.get("world_size") != self.world.world_size:
                raise ConfigError(
                    f"state was saved by {state.get('world_size')!r} ranks and this job has "
                    f"{self.world.world_size}: a shuffle_block={self.sampler.block} order "
                    "depends on the number of ranks, so resume with the same number (or "
                    "finish the epoch with it and change at an epoch boundary)"
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

    def attach_loader(
        self, *, batch_size: int, arenas: Arenas | None = None, bundle: int = 1
    ) -> None:
        """Called by `farfeed.loader.DataLoader`: workers take whole batches of
        ``batch_size`` in turn, and the loader (not the Dataset) shows progress. With
        ``arenas`` (``decode="batch"``, forked workers) each worker fills its arena.
        ``bundle`` > 1 (``decode="batch"`` only): a worker sends its batches ``bundle`` to a
        message, after a first message of one (see `bundled`)."""
        if bundle > 1 and self.decode != "batch":
            raise ConfigError(f"bundle={bundle} needs decode='batch', not {self.decode!r}")
        self.batch_size = batch_size
        self._loader_owned = True
        self._arenas = arenas
        self._bundle = bundle

    # -- stats ---------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """samples_per_s, bytes_per_s, rtt_s, bytes_in_flight, stall_s, retries, ...
        summed over this rank's DataLoader workers (live while iterating)."""
        return self._shared.summary()

    def reset_stats(self) -> None:
        """Zero the counters behind `stats` (a new epoch of a `farfeed.loader.DataLoader`)."""
        self._shared.reset()


def bundled(batches: Iterable[Batch], bundle: int) -> Iterator[list[Batch]]:
    """A worker's batches as torch messages: a list of one batch, then lists of ``bundle``
    (the last holds what is left), as `farfeed.loader.sampler.worker_positions` split them.

    Each message costs the training process ~0.4 ms of CPU whatever it holds (torch's
    queues, a thread hop, unpickling): at 32 samples of 115 KB, ~0.12 CPU-s per GB,
    half the kernel's own cost of receiving that GB. The first message stays one batch,
    so the first batch comes no later."""
    group: list[Batch] = []
    size = 1
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group, size = [], bundle
    if group:
        yield group


def _check_sample_options(
    decode: object, *, transform: object, as_dict: bool, image_size: int | None
) -> None:
    """Refuse ``transform``, ``as_dict`` and ``image_size`` where they have no meaning."""
    if transform is not None and not callable(transform):
        raise ConfigError(f"transform must be a callable (e.g. a torchvision v2 transform), got {transform!r}")
    if decode == "batch" and transform is not None:
        raise ConfigError(
            'transform does not apply to decode="batch": decode and transform the batch '
            "where it lands, e.g. with farfeed.loader.decode_images"
        )
    if as_dict and decode not in ("image", "tokens"):
        raise ConfigError(
            f'as_dict=True applies to decode="image" and "tokens", not {decode!r} '
            '("raw" samples are dicts already; a decode callable returns what it likes)'
        )
    if image_size is not None:
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
            raise ConfigError(f"image_size must be an int >= 1, got {image_size!r}")
        if transform is not None:
            raise ConfigError(
                "give image_size or transform, not both: image_size sizes the default "
                "pipeline, which transform replaces (see farfeed.loader.image_pipeline)"
            )


def _retry_for_from_retries(retries: object, retry_for: float) -> float:
    """The deprecated ``retries=N``, as the ``retry_for`` it stood for (with a warning): the
    most time N retries used to take (50 ms doubling up to 2 s between tries)."""
    import warnings

    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be an int >= 0, got {retries!r}")
    if retry_for != RETRY_FOR_S:
        raise ConfigError(
            f"give retry_for (seconds), not both retry_for={retry_for!r} and retries={retries!r}"
        )
    seconds = round(sum(min(2.0, 0.05 * 2 ** (n - 1)) for n in range(1, retries + 1)), 2)
    warnings.warn(
        f"Dataset(retries={retries}) is deprecated: failed reads are now retried for a time, "
        f"not a number of tries. Read as retry_for={seconds:g} (the most time {retries} retries "
        f"took); pass retry_for=SECONDS instead (default {RETRY_FOR_S:g}).",
        FutureWarning,
        stacklevel=3,
    )
    return seconds
