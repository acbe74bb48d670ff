"""`stream_dataset`: read every sample of a dataset through a store, verify each checksum,
and measure the throughput: the end-to-end check that a URL is usable for training.

    farfeed stream http://storage:8470/imagenet --batch 256
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from farfeed.errors import ConfigError, IntegrityError
from farfeed.format import SampleIndex, TokenIndex
from farfeed.loader.index import read_index
from farfeed.store import ByteRange, open_store


@dataclass(frozen=True)
class StreamReport:
    """What one pass over a dataset read and how fast (seconds exclude opening the index)."""

    url: str
    split: str | None
    samples: int
    nbytes: int
    seconds: float
    batches: int
    checksum_failures: int
    first_batch_seconds: float
    index_seconds: float
    native_batch: bool

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) rows for a table."""
        how = "batch-get (one request per batch)" if self.native_batch else "concurrent range reads"
        return [
            ("url", self.url),
            ("split", self.split or "all"),
            ("read with", how),
            ("samples", f"{self.samples:,}"),
            ("MB", f"{self.nbytes / 1e6:,.1f}"),
            ("seconds", f"{self.seconds:.2f}"),
            ("MB/s", f"{self.mb_per_s:,.1f}"),
            ("samples/s", f"{self.samples_per_s:,.0f}"),
            ("batches", f"{self.batches:,}"),
            ("checksum failures", f"{self.checksum_failures:,}"),
            ("first-batch latency", f"{self.first_batch_seconds * 1000:.1f} ms"),
            ("index load", f"{self.index_seconds * 1000:.1f} ms"),
        ]


#: One unit to read and the check that its bytes are right (raises IntegrityError).
Unit = tuple[ByteRange, Callable[[bytes], None]]


def _units(index: SampleIndex | TokenIndex, split: str | None) -> Iterator[Unit]:
    """Samples (image/webdataset kinds) or token chunks (tokens kind) of ``split``, in order."""
    if isinstance(index, SampleIndex):
        ids = index.ids(split)
        for i, span in zip(ids.tolist(), index.spans(ids), strict=True):
            yield ByteRange(*span), partial(index.verify, i)
        return
    chunks: list[int] = []
    if split is None:
        chunks = list(range(index.num_chunks()))
    else:
        for name, first, stop in index.split_token_range(split):
            file = index.token_files.index(name)
            if stop > first:
                chunks.extend(
                    range(index.chunk_at(file, first), index.chunk_at(file, stop - 1) + 1)
                )
        chunks = sorted(set(chunks))
    for c in chunks:
        yield ByteRange(*index.chunk_range(c)), partial(index.verify_chunk, c)


async def astream_dataset(
    url: str,
    *,
    split: str | None = "train",
    batch: int = 256,
    limit: int | None = None,
    inflight: int = 4,
    progress: bool = False,
    **store_opts: Any,
) -> StreamReport:
    """Read ``split`` (None: every sample) of the dataset at ``url`` in batches of ``batch``
    samples, ``inflight`` batches at once; verify every sample. ``store_opts`` go to `open_store`."""
    if not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be an int >= 1, got {batch!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be an int >= 0 or None, got {limit!r}")
    if not isinstance(inflight, int) or inflight < 1:
        raise ConfigError(f"inflight must be an int >= 1, got {inflight!r}")
    async with open_store(url, **store_opts) as store:
        started = time.perf_counter()
        index = await read_index(store)
        index_seconds = time.perf_counter() - started
        units = list(_units(index, split))[:limit]
        batches = [units[i : i + batch] for i in range(0, len(units), batch)]
        meter = _Meter(len(units), progress)
        started = time.perf_counter()

        async def one(chunk: list[Unit]) -> None:
            datas = await store.read_many([r for r, _ in chunk])
            meter.batch_done(chunk, datas, time.perf_counter() - started)

        with meter:
            running: set[asyncio.Future[None]] = set()
            try:
                for chunk in batches:
                    if len(running) >= inflight:
                        done, running = await asyncio.wait(
                            running, return_when=asyncio.FIRST_COMPLETED
                        )
                        for task in done:
                            task.result()
                    running.add(asyncio.ensure_future(one(chunk)))
                await asyncio.gather(*running)
            finally:
                for task in running:
                    task.cancel()
        seconds = time.perf_counter() - started
        return StreamReport(
            url=store.url,
            split=split,
            samples=meter.samples,
            nbytes=meter.nbytes,
            seconds=seconds,
            batches=len(batches),
            checksum_failures=meter.failures,
            first_batch_seconds=meter.first_batch or 0.0,
            index_seconds=index_seconds,
            native_batch=store.native_batch,
        )


def stream_dataset(url: str, **kwargs: Any) -> StreamReport:
    """Blocking `astream_dataset` (same arguments), for scripts and the CLI."""
    return asyncio.run(astream_dataset(url, **kwargs))


class _Meter:
    """Counts samples, bytes and checksum failures; draws a rich progress bar when asked."""

    def __init__(self, total: int, progress: bool) -> None:
        self.samples = self.nbytes = self.failures = 0
        self.first_batch: float | None = None
        self._bar: Any = None
        if progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("streaming"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task("stream", total=total, rate="")

    def __enter__(self) -> _Meter:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def batch_done(self, chunk: list[Unit], datas: list[bytes], elapsed: float) -> None:
        if self.first_batch is None:
            self.first_batch = elapsed
        for (_, verify), data in zip(chunk, datas, strict=True):
            try:
                verify(data)
            except IntegrityError:
                self.failures += 1
            self.nbytes += len(data)
        self.samples += len(chunk)
        if self._bar is not None:
            rate = f"{self.nbytes / 1e6 / elapsed:,.1f} MB/s" if elapsed > 0 else ""
            self._bar.update(self._task, advance=len(chunk), rate=rate)
