"""A loopback TCP proxy that counts the HTTP requests passing through it (and can play dead).

    with CountingProxy(("127.0.0.1", 9000)) as proxy:     # in front of an S3 endpoint
        ...                                                 # point clients at proxy.url
        print(proxy.requests)                               # {"GET": 57, "HEAD": 3}

`farfeed bench io` puts one in front of the object store to count store requests per
sample, the same way for the direct S3 path and for the gateway in front of S3; tests
use it for the same count and, with `set_down`, as a store that goes away and comes back.
It reads request heads (and skips ``Content-Length`` bodies) in the client-to-server
stream only; responses pass through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from types import TracebackType

_HEAD_END = b"\r\n\r\n"


class _RequestCounter:
    """Counts request heads in one connection's client-to-server bytes."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.buf = bytearray()
        self.body_left = 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        while self.buf:
            if self.body_left:
                n = min(self.body_left, len(self.buf))
                del self.buf[:n]
                self.body_left -= n
                continue
            end = self.buf.find(_HEAD_END)
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            del self.buf[: end + len(_HEAD_END)]
            self.counts[head.split(" ", 1)[0]] += 1
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    self.body_left = int(value.strip() or 0)


class CountingProxy:
    """Forward ``127.0.0.1:PORT`` to ``upstream`` in a thread; count requests by method."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._counts: Counter[str] = Counter()
        self._down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="counting-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0
        self._thread.start()
        self._ready.wait(10)
        if not self.port:
            raise RuntimeError("counting proxy did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> dict[str, int]:
        """Requests seen so far, by method."""
        return dict(self._counts)

    @property
    def total(self) -> int:
        """Requests seen so far, all methods."""
        return sum(self._counts.values())

    def set_down(self, down: bool) -> None:
        """Down: every open connection is cut and new ones are closed at once (the store
        went away); up: forward again."""
        self._down = down
        if down:
            self._loop.call_soon_threadsafe(self._cut_all)

    def _cut_all(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()  # type: ignore[attr-defined]

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()  # type: ignore[attr-defined]
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()  # type: ignore[attr-defined]
            return
        self._writers |= {writer, up_writer}
        counter = _RequestCounter(self._counts)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            try:
                while data := await src.read(256 * 1024):
                    if count:
                        counter.feed(data)
                    dst.write(data)
                    await dst.drain()
            except (OSError, ValueError):
                pass
            finally:
                dst.transport.abort()  # type: ignore[attr-defined]

        try:
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        finally:
            self._writers -= {writer, up_writer}

    def close(self) -> None:
        """Stop listening, cut every connection, end the thread."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            self._cut_all()

        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
