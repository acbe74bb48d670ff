"""`GatewayStore`: the farfeed gateway (``farfeed serve``), the reference client of
docs/HTTP_API.md. Many ranges per round trip (batch-get), chunked resumable uploads.

The store for ``http://h:p/imagenet`` reads ``"train-00000.tar"`` as
``/imagenet/train-00000.tar``; batch items and uploads use the same root-relative paths.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any

import numpy as np
import xxhash

from farfeed.errors import StoreError
from farfeed.store._batch import batch_body, plan_batches, read_frames
from farfeed.store._batch_into import BatchIntoClient
from farfeed.store._http import (
    HttpClient,
    check_status,
    head_size,
    make_session,
    object_url,
    range_get,
    split_http_url,
    translated,
)
from farfeed.store._paths import clean_prefix, redact_url
from farfeed.store._upload import GatewayUploads
from farfeed.store.base import ByteRange, Chunk, ObjectInfo, split_parts
from farfeed.store.options import StoreOptions

API_VERSION = 1


async def probe_gateway(url: str, options: StoreOptions) -> dict[str, Any] | None:
    """``GET /_farfeed/info`` at the URL's host: the info dict of a farfeed gateway, or None
    for any other HTTP server. Uses (and closes) one short-lived connection."""
    origin, _ = split_http_url(url)
    display = f"{redact_url(url)} (/_farfeed/info)"
    async with make_session(options, ssl=options.ssl_context(), limit=1) as session:
        async with translated(display):
            async with session.get(f"{origin}/_farfeed/info") as resp:
                if resp.status in (401, 403) or resp.status >= 500:
                    await check_status(resp, display)
                if resp.status != 200:
                    return None
                try:
                    info = json.loads(await resp.read())
                except ValueError:
                    return None
    if not isinstance(info, dict) or "farfeed" not in info or "api" not in info:
        return None
    if info["api"] != API_VERSION:
        raise StoreError(
            f"gateway speaks API version {info['api']!r}; this client speaks {API_VERSION}",
            url=display,
        )
    return info


#: Most store paths whose gateway path `GatewayStore` remembers (a loader reads few shards).
FULL_PATHS_KEPT = 4096


class GatewayStore(GatewayUploads):
    """A dataset or checkpoint area behind ``farfeed serve``, at ``url``, reached with
    ``options``; ``info`` is the gateway's ``/_farfeed/info`` when already known (else it
    is asked for at first need). Open one with `open_store` rather than directly.

    >>> store = GatewayStore("https://storage:8470/imagenet", options=StoreOptions(token="…"))
    >>> blobs = await store.read_many(ranges)        # one POST /_farfeed/batch
    """

    native_batch = True

    def __init__(
        self, url: str, *, options: StoreOptions | None = None, info: dict[str, Any] | None = None
    ) -> None:
        self.options = options or StoreOptions()
        self.origin, self.prefix = split_http_url(url)
        self.url = redact_url(url).rstrip("/")
        self._http = HttpClient(self.options)
        self._info = info
        self._fresh = {}
        self._raw = BatchIntoClient(self.origin, self.options, display=f"{self.url} (/_farfeed/batch)")
        self._full_paths: dict[str, str] = {}  # store path -> the gateway's (checked once)

    @property
    def gateway_info(self) -> dict[str, Any] | None:
        """The gateway's ``/_farfeed/info`` once known (see `Store.gateway_info`)."""
        return self._info

    async def info(self) -> dict[str, Any]:
        """The gateway's ``/_farfeed/info`` (limits of batch-get), fetched once."""
        if self._info is None:
            info = await probe_gateway(self.url, self.options)
            if info is None:
                raise StoreError(
                    "not a farfeed gateway: GET /_farfeed/info did not answer like one",
                    url=self.url,
                )
            self._info = info
        return self._info

    # -- reads --------------------------------------------------------------------------
    async def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        full, display = self._full(path)
        session = await self._http.session()
        return await range_get(
            session, object_url(self.origin, full), offset, length, display=display
        )

    async def read_many(self, ranges: Sequence[ByteRange]) -> list[bytes]:
        """All ``ranges`` in one ``POST /_farfeed/batch`` (several when over the server's limits)."""
        return [data async for data in self.iter_many(ranges)]

    async def iter_many(self, ranges: Sequence[ByteRange]) -> AsyncIterator[bytes]:
        """Yield each of ``ranges`` as its frame arrives; split requests run concurrently."""
        if not ranges:
            return
        items, groups, max_bytes = await self._plan(ranges)
        if len(groups) == 1 and sum(i[2] for i in items) <= max_bytes:
            async with aclosing(self._batch(items)) as frames:
                async for data in frames:
                    yield data
            return
        queues: list[asyncio.Queue[bytes | BaseException | None]] = [
            asyncio.Queue() for _ in groups
        ]

        async def fill(
            group: list[int], queue: asyncio.Queue[bytes | BaseException | None]
        ) -> None:
            try:
                if len(group) == 1 and items[group[0]][2] > max_bytes:
                    r = ranges[group[0]]
                    await queue.put(await self.read(r.path, r.offset, r.length))
                else:
                    async with aclosing(self._batch([items[i] for i in group])) as frames:
                        async for data in frames:
                            await queue.put(data)
                await queue.put(None)
            except Exception as exc:  # handed to the consumer, re-raised there
                await queue.put(exc)

        tasks = [asyncio.ensure_future(fill(g, q)) for g, q in zip(groups, queues, strict=True)]
        try:
            for queue in queues:
                while (item := await queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def read_into(
        self,
        ranges: Sequence[ByteRange],
        outs: Sequence[memoryview],
        *,
        landed: Callable[[int], None] | None = None,
        digests: np.ndarray | None = None,
        checksum: str = "xxh64",
    ) -> None:
        """Batch-gets of ``ranges`` whose payloads land straight in ``outs`` (one
        ``recv_into`` copy), ``landed(k)`` called as range k completes, ``digests[k]``
        (the ``checksum`` of range k) set by the receiver thread (see `Store.read_into`);
        requests over the server's limits are split and run concurrently."""
        if not ranges:
            return
        items, groups, max_bytes = await self._plan(ranges)

        async def one(group: list[int]) -> None:
            if len(group) == 1 and items[group[0]][2] > max_bytes:  # too big for a batch
                r = ranges[group[0]]
                await super(GatewayStore, self).read_into([r], [outs[group[0]]])
                if landed is not None:
                    landed(group[0])
                return
            if len(group) == len(items):  # the whole read is one batch-get: no index maps
                await self._raw.read_into(items, outs, landed, digests, checksum)
                return
            mark = None if landed is None else (lambda k: landed(group[k]))
            sums = None if digests is None else np.zeros(len(group), dtype=np.uint64)
            try:
                await self._raw.read_into(
                    [items[i] for i in group], [outs[i] for i in group], mark, sums, checksum
                )
            finally:
                if digests is not None and sums is not None:
                    digests[group] = sums  # what landed before a failure is kept

        if len(groups) == 1:
            await one(groups[0])
            return
        tasks = [asyncio.ensure_future(one(g)) for g in groups]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def connect_ahead(self) -> None:
        """Open a batch-get connection now, ahead of the first `read_into` (see `Store.connect_ahead`)."""
        self._raw.connect_ahead()

    async def _plan(
        self, ranges: Sequence[ByteRange]
    ) -> tuple[list[tuple[str, int, int]], list[list[int]], int]:
        """(full path, offset, length) items, their groups within the server's batch limits,
        and the byte limit (a single item over it is read with a range GET)."""
        full = self._full_paths
        if len(full) > FULL_PATHS_KEPT:
            full.clear()
        items = []
        for r in ranges:  # few objects (shards), many ranges: check each path once
            path = full.get(r.path)
            if path is None:
                path = full[r.path] = self._full(r.path)[0]
            items.append((path, r.offset, r.length))
        info = await self.info()
        max_bytes = int(info.get("max_batch_bytes", 1 << 30))
        groups = plan_batches(
            items, max_ranges=int(info.get("max_batch_ranges", 4096)), max_bytes=max_bytes
        )
        return items, groups, max_bytes

    async def _batch(self, items: list[tuple[str, int, int]]) -> AsyncGenerator[bytes, None]:
        display = f"{self.url} (/_farfeed/batch)"
        session = await self._http.session()
        async with translated(display):
            async with session.post(
                f"{self.origin}/_farfeed/batch",
                data=batch_body(items),
                headers={"Content-Type": "application/json"},
            ) as resp:
                await check_status(resp, display)
                async with aclosing(
                    read_frames(resp, [i[2] for i in items], url=display)
                ) as frames:
                    async for data in frames:
                        yield data

    # -- metadata -----------------------------------------------------------------------
    async def size(self, path: str) -> int:
        full, display = self._full(path)
        session = await self._http.session()
        return await head_size(session, object_url(self.origin, full), display=display)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects under this store's URL whose path starts with ``prefix``, sorted."""
        rel = clean_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        display = f"{self.url} (/_farfeed/list)"
        session = await self._http.session()
        async with translated(display):
            async with session.get(
                f"{self.origin}/_farfeed/list", params={"prefix": base + rel}
            ) as resp:
                await check_status(resp, display)
                body = await resp.json(content_type=None)
        try:
            found = [ObjectInfo(o["path"][len(base) :], int(o["size"])) for o in body["objects"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"malformed list response: {exc!r}", url=display) from exc
        return sorted(found, key=lambda o: o.path)

    # -- writes -------------------------------------------------------------------------
    async def write(self, path: str, data: Chunk) -> None:
        """``data`` as object ``path``: one ``PUT`` up to ``multipart_threshold`` bytes;
        above it, a parallel chunked upload."""
        if len(data) > self.options.multipart_threshold:
            await self.write_parts(path, split_parts(data, self.options.part_size))
            return
        full, display = self._full(path)
        session = await self._http.session()
        headers = {"X-Farfeed-Xxh64": xxhash.xxh64(data).hexdigest()}
        async with translated(display):
            async with session.put(
                object_url(self.origin, full), data=data, headers=headers
            ) as resp:
                await check_status(resp, display)

    async def delete(self, path: str) -> None:
        full, display = self._full(path)
        session = await self._http.session()
        async with translated(display):
            async with session.delete(object_url(self.origin, full)) as resp:
                if resp.status != 404:
                    await check_status(resp, display)

    async def close(self) -> None:
        await self._raw.close()
        await self._http.close()
