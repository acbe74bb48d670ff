"""Sources: what the loader needs from a dataset's index, whatever its kind.

A source maps a sample id to the byte range to read (`span`), checks the bytes that
arrived (`check`), turns them into a sample (`unpack`) and names the sample in errors
(`describe`). `SampleSource` wraps a sample index (tar shards of images etc.),
`TokenSource` a token corpus cut into windows of ``seq_len + 1`` tokens.
The index is read once, in the process that creates the Dataset (before any fork).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from farfeed.errors import ConfigError, FormatError, IntegrityError, StoreError, TransientError
from farfeed.format.load import read_index
from farfeed.loader.reader import FetchConfig
from farfeed.loader.replicas import backoff
from farfeed.store import open_store
from farfeed.store.base import ByteRange

T = TypeVar("T")


class Source(Protocol):
    """The loader's view of one split of a dataset."""

    ids: npt.NDArray[np.int64]
    native_batch: bool  # many ranges cost one round trip (the gateway's batch-get)
    gateway_info: dict[str, Any]  # URL -> its /_farfeed/info, for gateways already probed
    mean_bytes: int  # average bytes of one sample (sizes the first request)

    def span(self, i: int) -> ByteRange: ...
    def check(self, i: int, data: bytes) -> bool: ...
    def unpack(self, i: int, data: bytes) -> Any: ...
    def describe(self, i: int) -> str: ...


class SampleSource:
    """Samples of a `farfeed.format.SampleIndex`: one tar byte range each."""

    def __init__(self, index: Any, *, split: str, url: str, native_batch: bool) -> None:
        try:
            ids = index.ids(split)
        except (KeyError, ValueError, FormatError) as exc:
            raise ConfigError(f"dataset {url!r} has no split {split!r}: {exc}") from exc
        self.ids = np.asarray(ids, dtype=np.int64)
        if len(self.ids) == 0:
            raise ConfigError(f"split {split!r} of dataset {url!r} has no samples")
        self.index = index
        self.url = url
        self.native_batch = native_batch
        self.gateway_info: dict[str, Any] = {}
        sizes = np.asarray(index.size)[self.ids]
        self.mean_bytes = max(1, int(sizes.mean()))

    def span(self, i: int) -> ByteRange:
        shard, offset, size = self.index.span(i)
        return ByteRange(shard, int(offset), int(size))

    def check(self, i: int, data: bytes) -> bool:
        try:
            self.index.verify(i, data)
        except IntegrityError:
            return False
        return True

    def unpack(self, i: int, data: bytes) -> Any:
        return self.index.unpack(i, data, verify=False)

    def describe(self, i: int) -> str:
        shard, offset, size = self.index.span(i)
        return f"sample {self.index.key_of(i)!r} (id {i}, {shard} bytes {offset}+{size})"


def open_source(config: FetchConfig, *, split: str, seq_len: int | None, tokens: bool) -> Source:
    """Read the dataset's index (primary URL, else each replica in turn) and wrap it."""
    return run_sync(lambda: _open_source(config, split=split, seq_len=seq_len, tokens=tokens))


async def _open_source(
    config: FetchConfig, *, split: str, seq_len: int | None, tokens: bool
) -> Source:
    last: StoreError | None = None
    for attempt in range(config.retries + 1):
        url = config.urls[attempt % len(config.urls)]
        try:
            store = await open_store(url, token=config.token, **config.store_options)
            try:
                index = await read_index(store)
                native = bool(store.native_batch)
                info = await store.info() if native and hasattr(store, "info") else None
            finally:
                await store.close()
        except TransientError as exc:
            last = exc
            await asyncio.sleep(backoff(attempt + 1))
            continue
        kind = index.meta.kind
        if tokens != (kind == "tokens"):
            want = 'decode="tokens"' if kind == "tokens" else 'decode="raw", "image" or a callable'
            raise ConfigError(f"{url!r} is a dataset of kind {kind!r}: use {want}")
        if tokens:
            from farfeed.loader.tokens import TokenSource

            assert seq_len is not None
            source: Source = TokenSource(
                index, split=split, seq_len=seq_len, url=url, native_batch=native
            )
        else:
            source = SampleSource(index, split=split, url=url, native_batch=native)
        # Workers skip the probe (one connection and round trip) for a known gateway.
        source.gateway_info = {url: info} if info is not None else {}
        return source
    assert last is not None
    raise TransientError(f"cannot read the index of {config.urls[0]!r}: {last}") from last


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even under a running event loop."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(_await(make)))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            error.append(exc)

    thread = threading.Thread(target=target, name="farfeed-index")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def _await(make: Callable[[], Awaitable[T]]) -> T:
    return await make()
