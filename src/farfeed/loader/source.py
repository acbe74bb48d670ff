"""Sources: what the loader needs from a dataset's index, whatever its kind.

A source maps a sample id to the byte range to read (`span`), checks the bytes that
arrived (`check`), turns them into a sample (`unpack`) and names the sample in errors
(`describe`). `SampleSource` wraps a sample index (tar shards of images etc.),
`TokenSource` a token corpus cut into windows of ``seq_len + 1`` tokens.
The index is read once, in the process that creates the Dataset (before any fork).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from farfeed.checksum import digest_function
from farfeed.errors import ConfigError, FormatError, IntegrityError, TransientError
from farfeed.format.sample_index import SampleIndex
from farfeed.format.token_index import TokenIndex
from farfeed.loader.config import FetchConfig
from farfeed.loader.index import read_index
from farfeed.store import open_store
from farfeed.store.access import redact_url
from farfeed.store.base import ByteRange
from farfeed.store.open import StoreOpening
from farfeed.transfer.retry import Retries
from farfeed.transfer.sync import run_sync


class Source(Protocol):
    """The loader's view of one split of a dataset."""

    ids: npt.NDArray[np.int64]
    mean_bytes: int  # average bytes of one sample (sizes the first request)

    def span(self, i: int) -> ByteRange: ...
    def check(self, i: int, data: memoryview) -> bool: ...
    def unpack(self, i: int, data: memoryview) -> Any: ...
    def describe(self, i: int) -> str: ...


class SampleSource:
    """Samples of a `farfeed.format.SampleIndex`: one tar byte range each."""

    def __init__(self, index: Any, *, split: str, url: str) -> None:
        try:
            ids = index.ids(split)
        except (KeyError, ValueError, FormatError) as exc:
            raise ConfigError(f"dataset {url!r} has no split {split!r}: {exc}") from exc
        self.ids = np.asarray(ids, dtype=np.int64)
        if len(self.ids) == 0:
            raise ConfigError(f"split {split!r} of dataset {url!r} has no samples")
        self.index = index
        self.url = url
        #: Every sample's size by id (the planner cuts requests with it).
        self.sizes = np.asarray(index.size, dtype=np.int64)
        self.mean_bytes = max(1, int(self.sizes[self.ids].mean()))

    def span(self, i: int) -> ByteRange:
        shard, offset, size = self.index.span(i)
        return ByteRange(shard, int(offset), int(size))

    def spans(self, ids: npt.NDArray[np.int64]) -> list[ByteRange]:
        """`span` of many samples at once (ids from this source's split)."""
        index = self.index
        names = index.shard_names
        return [ByteRange(names[s], o, n) for s, o, n in zip(
            index.shard[ids].tolist(), index.offset[ids].tolist(), index.size[ids].tolist(),
            strict=True)]  # fmt: skip

    @property
    def checksum(self) -> str:
        """The function the index's per-sample checksums were made with (dataset.json)."""
        return self.index.meta.checksum

    def check(self, i: int, data: memoryview) -> bool:
        try:
            self.index.verify(i, data)
        except IntegrityError:
            return False
        return True

    def check_many(
        self,
        ids: npt.NDArray[np.int64],
        views: list[memoryview],
        digests: npt.NDArray[np.uint64] | None = None,
    ) -> list[int]:
        """Positions ``k`` whose ``views[k]`` is not sample ``ids[k]`` (length, checksum):
        one table lookup per request; each sample hashed here unless ``digests[k]`` holds
        its `checksum` already (computed where it arrived; 0: not computed)."""
        n = len(views)
        sums = self.index.checksum[ids]
        found = np.zeros(n, dtype=np.uint64) if digests is None else digests.copy()
        digest = digest_function(self.checksum)
        for k in np.flatnonzero(found == 0).tolist():
            found[k] = digest(views[k])
        lengths = np.fromiter(map(len, views), dtype=np.int64, count=n)
        bad = (lengths != self.index.size[ids]) | (found != sums)
        return [int(k) for k in np.flatnonzero(bad)]

    def unpack(self, i: int, data: memoryview) -> Any:
        return self.index.unpack(i, data, verify=False)

    def describe(self, i: int) -> str:
        shard, offset, size = self.index.span(i)
        return f"sample {self.index.key_of(i)!r} (id {i}, {shard} bytes {offset}+{size})"


def open_source(
    config: FetchConfig, *, split: str, seq_len: int | None, tokens: bool
) -> tuple[Source, FetchConfig]:
    """Read the dataset's index (primary URL, else each replica in turn, retrying for up to
    ``config.retry_for`` seconds) and wrap it.

    Also returns ``config`` with what opening the store learned (``gateway_info``), so
    the workers' stores open without probing again.
    """
    return run_sync(
        lambda: _open_source(config, split=split, seq_len=seq_len, tokens=tokens),
        name="farfeed-index",
    )


async def _open_source(
    config: FetchConfig, *, split: str, seq_len: int | None, tokens: bool
) -> tuple[Source, FetchConfig]:
    retries = Retries(config.retry, what=f"reading the index of {config.urls[0]!r}")
    attempt = 0
    while True:  # each URL in turn, for up to config.retry_for seconds
        url = config.urls[attempt % len(config.urls)]
        attempt += 1
        try:
            index, info = await _read_index_at(url, config)
        except TransientError as exc:
            await asyncio.sleep(retries.wait_after(exc, url=redact_url(url)))
            continue
        retries.succeeded()
        kind = index.meta.kind
        if tokens != (kind == "tokens"):
            want = 'decode="tokens"' if kind == "tokens" else 'decode="raw", "image", "batch" or a callable'
            raise ConfigError(f"{redact_url(url)!r} is a dataset of kind {kind!r}: use {want}")
        source: Source
        if tokens:
            from farfeed.loader.tokens import TokenSource

            assert seq_len is not None
            source = TokenSource(index, split=split, seq_len=seq_len, url=redact_url(url))
        else:
            source = SampleSource(index, split=split, url=redact_url(url))
        learned = {**config.gateway_info, url: info} if info is not None else config.gateway_info
        return source, replace(config, gateway_info=learned)


async def _read_index_at(
    url: str, config: FetchConfig
) -> tuple[SampleIndex | TokenIndex, dict[str, Any] | Literal[False] | None]:
    """The index at ``url``, and what opening it learned: the gateway's ``/_farfeed/info``,
    False for a static HTTP server, None for other stores.

    Over http(s) the two questions go out at once, each on a connection of its own:
    whether the URL is a gateway (``GET /_farfeed/info``) and the index itself (plain
    GETs of dataset.json and the index file, which a gateway answers as any web server
    does). Across a long link the index then costs the round trips of one request, not
    those of three in a row. The probe's error comes first when both fail, as it did
    when it went first.
    """

    def opening(info: dict[str, Any] | Literal[False] | None) -> StoreOpening:
        return open_store(url, token=config.token, gateway_info=info, **config.store_options)

    if urlsplit(url).scheme.lower() not in ("http", "https"):
        async with opening(None) as store:
            return await read_index(store), store.gateway_info

    async def probe() -> dict[str, Any] | Literal[False]:
        async with opening(None) as store:
            return store.gateway_info or False

    async def index() -> SampleIndex | TokenIndex:
        async with opening(False) as store:
            return await read_index(store)

    tasks = (asyncio.ensure_future(probe()), asyncio.ensure_future(index()))
    try:
        await asyncio.wait(tasks)
    finally:
        for task in tasks:
            task.cancel()  # nothing when it is done
        await asyncio.gather(*tasks, return_exceptions=True)
    info = tasks[0].result()  # the probe's error first
    return tasks[1].result(), info
