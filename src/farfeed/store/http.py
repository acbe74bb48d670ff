"""`HttpStore`: any static HTTP(S) server, read with range GETs (no batch-get, read-only)."""

from __future__ import annotations

from farfeed.errors import StoreError
from farfeed.store._http import HttpClient, head_size, object_url, range_get, split_http_url
from farfeed.store._paths import clean_relpath, redact_url
from farfeed.store.base import Chunk, ObjectInfo, Parts, UploadResult
from farfeed.store.coalesce import CoalescingReads
from farfeed.store.options import StoreOptions


class HttpStore(CoalescingReads):
    """A dataset on a plain web server (nginx, ``rclone serve http``, a CDN) at ``url``,
    reached with ``options`` (`StoreOptions`: TLS, connections, timeout, a bearer token).

    `read_many` sends concurrent range GETs, merging neighbouring ranges of one shard.
    Writing, deleting and listing are not possible over static HTTP; `size` uses ``HEAD``.

    >>> store = HttpStore("https://files.example/imagenet", options=StoreOptions(ssl="ca.pem"))
    """

    def __init__(self, url: str, *, options: StoreOptions | None = None) -> None:
        options = options or StoreOptions()
        self.origin, self.prefix = split_http_url(url)
        self.url = redact_url(url).rstrip("/")
        self.concurrency = options.connections
        self._http = HttpClient(options)

    def _locate(self, path: str) -> tuple[str, str]:
        rel = clean_relpath(path)
        full = f"{self.prefix}/{rel}" if self.prefix else rel
        return full, f"{self.url}/{rel}"

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        full, display = self._locate(path)
        session = await self._http.session()
        return await range_get(
            session, object_url(self.origin, full), offset, length, display=display
        )

    async def size(self, path: str) -> int:
        full, display = self._locate(path)
        session = await self._http.session()
        return await head_size(session, object_url(self.origin, full), display=display)

    async def write(self, path: str, data: Chunk) -> None:
        raise StoreError(f"cannot write {path!r}: static HTTP is read-only", url=self.url)

    async def write_parts(self, path: str, parts: Parts, *, concurrency: int = 4) -> UploadResult:
        raise StoreError(f"cannot write {path!r}: static HTTP is read-only", url=self.url)

    async def delete(self, path: str) -> None:
        raise StoreError(f"cannot delete {path!r}: static HTTP is read-only", url=self.url)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        raise StoreError(
            "listing is not supported over static HTTP (serve the data with `farfeed serve` "
            "or use S3 to list)",
            url=self.url,
        )

    async def close(self) -> None:
        await self._http.close()
