"""The gateway's datasets read from an S3-compatible bucket instead of a local folder.

    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \\
    farfeed serve s3://datasets/farfeed --s3-endpoint-url http://minio:9000 --cache-mib 4096

The storage site keeps its object store; the gateway beside it speaks farfeed's
protocol across the long link (batch-get, sample-level shuffle in one round trip per
batch), and reads the store in large aligned blocks through one `BlockCache` shared by
all its clients, so the store sees far fewer requests than samples are delivered.
The store is reached through `farfeed.store`'s one seam (`open_store`), so credentials,
TLS trust and errors behave as everywhere else in farfeed. Read-only: writes belong to
the bucket itself (`farfeed.server.bucket_app`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from farfeed.errors import (
    AccessDeniedError,
    CertificateError,
    ConfigError,
    NotFoundError,
    StoreError,
    TransientError,
)
from farfeed.server.blocks import BlockCache
from farfeed.server.responses import RETRY_AFTER, ApiError
from farfeed.store import Store, open_store
from farfeed.store.access import redact_url
from farfeed.store.open import StoreOpening

MiB = 1024 * 1024
#: Pieces a response reads ahead, concurrently, while it reads exact ranges (not blocks).
EXACT_AHEAD = 32
#: URL schemes a gateway can front.
BUCKET_SCHEMES = ("s3://",)


def is_bucket_url(root: object) -> bool:
    """True when a gateway ROOT names a bucket (``s3://BUCKET/PREFIX``), not a folder."""
    return isinstance(root, str) and root.lower().startswith(BUCKET_SCHEMES)


@dataclass(frozen=True, kw_only=True)
class BucketSettings:
    """How a gateway reaches its bucket and how much it keeps in memory.

    >>> BucketSettings(endpoint_url="http://minio:9000", cache_bytes=4 << 30, block_bytes=8 << 20)

    ``endpoint_url``, ``region``: the S3 endpoint and region (None: ``AWS_ENDPOINT_URL``,
    ``AWS_REGION``, else AWS and us-east-1); the keys always come from the standard
    ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``);
    ``ca_file``: PEM bundle that signs an https endpoint's certificate, or False to skip
    the check (self-signed test stores), None for the defaults;
    ``cache_bytes``: block cache per gateway process (each ``--workers`` process has its own);
    ``block_bytes``: bytes per store read, aligned (an object smaller than this is read whole);
    ``store_connections``: most store reads in flight per process;
    ``readahead_blocks``: blocks a response starts reading ahead of the one it is writing;
    ``size_ttl``: seconds an object's size (one HEAD) is trusted before it is asked again;
    ``timeout``: seconds to connect to the store, and most seconds between two reads.
    """

    endpoint_url: str | None = None
    region: str | None = None
    ca_file: str | bool | None = None
    cache_bytes: int = 1024 * MiB
    block_bytes: int = 8 * MiB
    store_connections: int = 32
    readahead_blocks: int = 8
    size_ttl: float = 60.0
    timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("cache_bytes", "block_bytes", "store_connections", "readahead_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"BucketSettings.{name} must be an int >= 1, got {value!r}")
        for name in ("size_ttl", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"BucketSettings.{name} must be a number > 0, got {value!r}")
        if self.cache_bytes < self.block_bytes:
            raise ConfigError(
                f"the cache ({self.cache_bytes} bytes) must hold at least one block "
                f"({self.block_bytes} bytes): raise --cache-mib or lower --block-mib"
            )

    def opening(self, url: str) -> StoreOpening:
        """`open_store` for ``url`` with these settings (checked now; connects at first use)."""
        if not is_bucket_url(url):
            raise ConfigError(f"a bucket gateway needs s3://BUCKET/PREFIX, got {redact_url(url)!r}")
        return open_store(
            url, s3_endpoint_url=self.endpoint_url, s3_region=self.region, ssl=self.ca_file,
            connections=self.store_connections + exact_slots(self), timeout=self.timeout,
        )  # fmt: skip


def check_bucket(url: str, settings: BucketSettings) -> None:
    """Open (and close) the store for ``url`` once, so every bad setting is a ConfigError
    before the gateway starts; connects to nothing. Call it outside an event loop."""

    async def probe() -> None:
        store = await settings.opening(url)
        await store.close()

    asyncio.run(probe())


def exact_slots(settings: BucketSettings) -> int:
    """Store connections kept for exact reads, beside ``store_connections`` for blocks."""
    return max(4, settings.store_connections // 4)


@dataclass
class _Size:
    value: int
    until: float


@dataclass
class Bucket:
    """The store behind a bucket gateway, its block cache, and the sizes it has learned."""

    store: Store
    cache: BlockCache
    settings: BucketSettings
    _sizes: dict[str, _Size] = field(default_factory=dict)
    _asking: dict[str, asyncio.Task[int]] = field(default_factory=dict)
    _responses: Iterator[int] = field(default_factory=itertools.count)  # numbers responses, for priority

    @classmethod
    def over(cls, store: Store, settings: BucketSettings) -> Bucket:
        """A `Bucket` reading ``store`` with a new cache sized by ``settings``."""
        cache = BlockCache(
            store.read, capacity=settings.cache_bytes, block_bytes=settings.block_bytes,
            concurrency=settings.store_connections, exact_slots=exact_slots(settings),
        )  # fmt: skip
        return cls(store, cache, settings)

    async def size(self, path: str) -> int:
        """Size of object ``path`` (one HEAD per ``size_ttl``, shared by concurrent askers);
        ApiError 404 when absent, 503/502 when the store fails (`store_errors`)."""
        known = self._sizes.get(path)
        if known is not None and known.until > time.monotonic():
            return known.value
        task = self._asking.get(path)
        if task is None:
            task = self._asking[path] = asyncio.ensure_future(self.store.size(path))
            task.add_done_callback(lambda t: self._asked(path, t))
        with store_errors(path):
            return await asyncio.shield(task)

    def _asked(self, path: str, task: asyncio.Task[int]) -> None:
        self._asking.pop(path, None)
        if not task.cancelled() and task.exception() is None:
            self._sizes[path] = _Size(task.result(), time.monotonic() + self.settings.size_ttl)
        elif len(self._sizes) > 100_000:  # never grows without bound on odd clients
            self._sizes.clear()

    async def views(self, items: list[tuple[str, int, int, int]]) -> AsyncIterator[tuple[int, memoryview]]:
        """For ``items`` of (path, size, offset, length): ``(item index, piece)`` in order,
        each piece a view of a cached block (an item spanning blocks comes in several
        pieces). Blocks are read ahead of the writer, ``readahead_blocks`` at a time; when
        blocks do not pay off (`BlockCache.filling`), a miss and the next `EXACT_AHEAD`
        pieces are read as exact ranges instead, concurrently."""
        cache, block = self.cache, self.settings.block_bytes
        pieces = [(i, (p, s, b), start, n) for i, (p, s, b, start, n) in _pieces(items, block)]
        order: list[tuple[str, int, int]] = []  # distinct blocks, by first use
        rank: list[int] = []
        first: dict[tuple[str, int, int], int] = {}
        for _, key, _, _ in pieces:
            if key not in first:
                first[key] = len(order)
                order.append(key)
            rank.append(first[key])
        ahead = scan = 0
        exact: dict[int, asyncio.Future[bytes]] = {}  # piece -> its exact read in flight
        me = next(self._responses)  # earlier responses' reads go first (`PriorityGate`)
        try:
            for p, (i, key, start, n) in enumerate(pieces):
                while ahead < len(order) and ahead <= rank[p] + self.settings.readahead_blocks:
                    if cache.filling():  # read ahead whole blocks only while they pay off
                        cache.prefetch(*order[ahead], priority=(me, ahead))
                    ahead += 1
                data = cache.cached(key)
                if data is not None:
                    cache.served(key, n)
                    yield i, memoryview(data)[start : start + n]
                    continue
                job = exact.pop(p, None)
                if job is None and not cache.pending(key) and not cache.worth_filling():
                    # blocks do not pay off here: this piece and the next ones as exact ranges
                    job = asyncio.ensure_future(
                        cache.read_exact(key[0], key[2] * block + start, n, priority=(me, rank[p]))
                    )
                    for q in range(max(scan, p + 1), min(len(pieces), p + EXACT_AHEAD)):
                        _, k, s, m = pieces[q]
                        if not cache.has(k):
                            exact[q] = asyncio.ensure_future(
                                cache.read_exact(k[0], k[2] * block + s, m, priority=(me, rank[q]))
                            )
                    scan = max(scan, p + EXACT_AHEAD)
                with store_errors(key[0]):
                    if job is not None:
                        yield i, memoryview(await job)
                        continue
                    data = await cache.get(*key, priority=(me, rank[p]))
                cache.served(key, n)
                yield i, memoryview(data)[start : start + n]
        finally:
            for job in exact.values():
                job.cancel()
                if job.done() and not job.cancelled():
                    job.exception()


def _pieces(items: list[tuple[str, int, int, int]], block: int) -> Iterator[tuple[int, tuple[str, int, int, int, int]]]:
    """(item index, (path, size, block number, start in block, length)) for every piece."""
    for i, (path, size, offset, length) in enumerate(items):
        end = offset + length
        while offset < end:
            index, start = divmod(offset, block)
            n = min(block - start, end - offset)
            yield i, (path, size, index, start, n)
            offset += n


@contextmanager
def store_errors(path: str) -> Iterator[None]:
    """Store errors as the gateway's answers: absent 404; the store unreachable or failing
    503 with Retry-After (clients retry); the store refusing the gateway itself 502."""
    try:
        yield
    except NotFoundError:
        raise ApiError(404, f"no such object: {path!r}") from None
    except TransientError as exc:
        raise ApiError(
            503, f"the gateway's object store did not answer: {exc}; retry shortly",
            headers={"Retry-After": RETRY_AFTER},
        ) from None
    except (AccessDeniedError, CertificateError) as exc:
        raise ApiError(
            502, f"the object store refused the gateway ({exc}); operator: check the gateway's "
            "AWS_* credentials and --ca-file",
        ) from None
    except StoreError as exc:
        raise ApiError(502, f"the object store failed the gateway's read: {exc}") from None
