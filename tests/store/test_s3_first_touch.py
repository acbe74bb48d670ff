"""S3Store's first touch: the first read of each object goes alone, then reads fan out.

A small TCP proxy in front of ``rclone serve s3`` notes, per connection, when each
request line went up and when its reply started coming back (HTTP/1.1 keep-alive: one
request at a time per connection). It passes bytes through untouched, so the SigV4
signature (over the ``Host`` the client sent) still holds at rclone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from farfeed.store import ByteRange, open_store
from farfeed.store.s3 import S3Store
from farfeed.store.testing import S3Endpoint

MiB = 1024 * 1024


@dataclass
class Exchange:
    path: str
    sent: float
    answered: float | None = None


@dataclass
class WatchingProxy:
    """127.0.0.1:port -> upstream; ``exchanges``: every request line seen, in order."""

    upstream: tuple[str, int]
    exchanges: list[Exchange] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        current: list[Exchange] = []

        async def upward() -> None:
            while data := await reader.read(65536):
                line = data.split(b"\r\n", 1)[0].split(b" ")
                if len(line) == 3 and line[2].startswith(b"HTTP/"):  # a new request
                    current[:] = [Exchange(line[1].decode().split("?")[0], time.monotonic())]
                    self.exchanges.append(current[0])
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downward() -> None:
            while data := await up_reader.read(65536):
                if current and current[0].answered is None:
                    current[0].answered = time.monotonic()
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(upward(), downward(), return_exceptions=True)


@pytest.fixture
async def proxy(s3_server: S3Endpoint) -> AsyncIterator[tuple[WatchingProxy, str]]:
    host, port = s3_server.endpoint_url.split("//")[1].split(":")
    watcher = WatchingProxy((host, int(port)))
    url = await watcher.start()
    yield watcher, url
    assert watcher.server is not None
    watcher.server.close()


async def test_first_read_of_each_object_goes_alone(
    s3_server: S3Endpoint, files_root: Path, proxy: tuple[WatchingProxy, str]
) -> None:
    watcher, url = proxy
    names = [f"shard-{i}.bin" for i in range(3)]
    data = bytes(range(256)) * (4 * MiB // 256)
    for name in names:
        (files_root / "bucket" / "ds" / name).write_bytes(data)
    ranges = [ByteRange(n, k * 40_000, 1000) for k in range(100) for n in names]
    opts = {**s3_server.store_options(), "s3_endpoint_url": url, "connections": 32}
    async with open_store("s3://bucket/ds", **opts) as store:
        assert isinstance(store, S3Store)
        store.coalesce_gap = 0  # one GET per range: 300 reads at once, 32 in flight
        got = await store.read_many(ranges)
        assert got == [data[r.offset : r.offset + r.length] for r in ranges]
        again = await store.read_many(ranges[:30])  # touched: no waiting now
        assert again == got[:30]

    for name in names:
        mine = [e for e in watcher.exchanges if e.path == f"/bucket/ds/{name}"]
        assert len(mine) == 110, name
        first, rest = mine[0], mine[1:]
        assert first.answered is not None
        assert all(e.sent >= first.answered for e in rest), f"{name}: read before its first reply"
    # then they fan out: many GETs were in flight at once
    def in_flight(at: float) -> int:
        return sum(1 for e in watcher.exchanges if e.sent <= at < (e.answered or float("inf")))

    assert max(in_flight(e.sent) for e in watcher.exchanges) >= 8


async def test_a_failed_first_read_lets_the_next_one_go_first(s3_server: S3Endpoint) -> None:
    async with open_store("s3://bucket/ds", **s3_server.store_options()) as store:
        results = await asyncio.gather(
            *(store.read("late.bin", 0, 5) for _ in range(5)), return_exceptions=True
        )
        assert all(type(r).__name__ == "NotFoundError" for r in results)
        await store.write("late.bin", b"there now")
        assert await asyncio.gather(*(store.read("late.bin", 0, 5) for _ in range(5))) == [
            b"there"
        ] * 5
