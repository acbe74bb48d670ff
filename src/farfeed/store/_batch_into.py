"""Batch-get straight into the caller's buffers (docs/HTTP_API.md, ``POST /_farfeed/batch``).

The request is one block of bytes; the response's frames are received by a receiver
thread (`farfeed.store._keepalive`), ~`CHUNK_BYTES` at a time, each chunk with one
``recvmsg_into`` over its frame headers and payload buffers: each payload byte is
written once, by the kernel, into its final place (the buffer the loader verifies and
hands on), with the GIL released meanwhile. The frame headers land in a small buffer of
their own and are checked against the ones expected in one comparison; each chunk's
payloads are hashed right away, while in the cache (``digests``). Only the gateway's
batch responses take this road; everything else stays on aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import numpy as np

from farfeed.checksum import digest_function
from farfeed.errors import StoreError, TransientError
from farfeed.store._batch import CONTENT_TYPE, FRAME, TRAILER_INDEX, batch_body, frame_headers
from farfeed.store._http import status_error
from farfeed.store._keepalive import IOV_MAX, Connection, ConnectionPool, status_failure
from farfeed.store.options import StoreOptions

Landed = Callable[[int], None]

#: Payload bytes received per system call, then hashed while still in the CPU's cache
#: (last level: 4 MiB against 1 MiB cost the client 0.95 x the CPU per GB in-process, 0.97 x
#: through one worker: docs/BENCHMARKS.md, "Bigger requests"). A slow link cannot time a
#: chunk out: a call that waited its timeout returns what arrived, and the next goes on.
CHUNK_BYTES = 4 << 20


def _chunk_end(outs: Sequence[memoryview], start: int) -> int:
    """The end of the chunk of items from ``start``: at least one, about `CHUNK_BYTES`."""
    size, k, n = len(outs[start]), start + 1, len(outs)
    limit = min(n, start + IOV_MAX // 2 - 1)
    while k < limit and size + len(outs[k]) <= CHUNK_BYTES:
        size += len(outs[k])
        k += 1
    return k


class _Arrivals:
    """Which items of one response are in place, told to ``landed`` on the event loop:
    the first as soon as it arrives (it times the round trip), the rest once the response
    ends or fails (before the caller hears of the failure)."""

    def __init__(self, landed: Landed | None, loop: asyncio.AbstractEventLoop) -> None:
        self.landed = landed
        self.loop = loop
        self.count = 0  # items in place (set by the receiver thread)
        self.told = 0  # items told to `landed` (on the loop)

    def first(self) -> None:
        """Receiver thread: the first item is in place."""
        if self.landed is not None:
            try:
                self.loop.call_soon_threadsafe(self.tell)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting
                pass

    def tell(self) -> None:
        """Loop: hand every arrival not yet told to ``landed``."""
        if self.landed is None:
            return
        while self.told < self.count:
            self.landed(self.told)
            self.told += 1


class BatchIntoClient:
    """Keep-alive connections to one gateway for batch-gets into caller buffers.

    Made lazily in the process and loop that use it (never shared across ``fork``).
    """

    def __init__(self, origin: str, options: StoreOptions, *, display: str) -> None:
        self.options = options
        self.display = display
        self._pool = ConnectionPool(origin, options, display=display)
        host = f"[{self._pool.host}]" if ":" in self._pool.host else self._pool.host
        default = 443 if self._pool.tls else 80
        host_header = host if self._pool.port == default else f"{host}:{self._pool.port}"
        auth = f"Authorization: Bearer {options.token}\r\n" if options.token else ""
        self._head = (
            "POST /_farfeed/batch HTTP/1.1\r\n"
            f"Host: {host_header}\r\n"
            "Content-Type: application/json\r\n"
            "Accept-Encoding: identity\r\n"
            f"{auth}"
        )

    async def read_into(
        self,
        items: Sequence[tuple[str, int, int]],
        outs: Sequence[memoryview],
        landed: Landed | None = None,
        digests: np.ndarray | None = None,
        checksum: str = "xxh64",
    ) -> None:
        """One ``POST /_farfeed/batch`` for ``items`` (full path, offset, length); item ``k``'s
        bytes land in ``outs[k]``, and ``landed(k)`` is called for each that arrived, in
        order (also when the response fails part way: what landed is kept). ``digests``:
        each item's ``checksum`` (see `farfeed.checksum`), computed by the receiver
        thread as its chunk lands."""
        body = batch_body(items)
        request = f"{self._head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        arrivals = _Arrivals(landed, asyncio.get_running_loop())
        try:
            digest = None if digests is None else digest_function(checksum)
            await self._pool.run(
                lambda conn: self._receive(conn, request, outs, arrivals, digests, digest)
            )
        finally:
            arrivals.tell()

    def connect_ahead(self) -> None:
        """Start opening a connection now (see `ConnectionPool.connect_ahead`)."""
        self._pool.connect_ahead()

    async def close(self) -> None:
        await self._pool.close()

    def _receive(
        self,
        conn: Connection,
        request: bytes,
        outs: Sequence[memoryview],
        arrivals: _Arrivals,
        digests: np.ndarray | None,
        digest: Callable[[memoryview], int] | None,
    ) -> None:
        """Receiver thread: send ``request``, land each frame's payload in its buffer, a
        chunk of about `CHUNK_BYTES` at a time (one system call each), and hash each chunk's
        items while they are in the cache."""
        conn.send(request)
        head = conn.read_head((b"content-type",))
        if head.status != 200:
            raise status_error(head.status, status_failure(head, conn), self.display)
        ctype = head.headers.get("content-type", "")
        if not ctype.startswith(CONTENT_TYPE):
            conn.broken = True
            raise StoreError(
                f"batch-get answered with Content-Type {ctype!r}, not {CONTENT_TYPE!r}",
                url=self.display,
            )
        n = len(outs)
        lengths = [len(o) for o in outs]
        expected = FRAME.size * (n + 1) + sum(lengths)
        if head.length != expected:
            conn.broken = True
            got = "no Content-Length" if head.length is None else f"{head.length} bytes"
            raise TransientError(
                f"batch response of {got}, expected {expected} bytes", url=self.display
            )
        # every frame header lands in `frames`, every payload in its own buffer
        frames = bytearray(FRAME.size * (n + 1))
        fview = memoryview(frames)
        buffers: list[memoryview] = []
        for k, out in enumerate(outs):
            buffers.append(fview[k * FRAME.size : (k + 1) * FRAME.size])
            buffers.append(out)
        buffers.append(fview[n * FRAME.size :])
        want = frame_headers(lengths)
        start = 0  # items before it are in place, checked and hashed
        while start < n:
            end = start + 1 if start == 0 else _chunk_end(outs, start)  # item 0 alone: the RTT
            try:
                conn.recv_many(buffers[2 * start : 2 * end])
            except TransientError:  # the frames before the failure arrived whole: keep them
                whole = min(n, start + conn.filled // 2)
                self._check(frames, want, whole)
                arrivals.count = whole
                raise
            self._check(frames, want, end)
            if digests is not None and digest is not None:
                for k in range(start, end):
                    digests[k] = digest(outs[k])
            arrivals.count = end
            if start == 0:
                arrivals.first()
            start = end
        conn.recv_many(buffers[2 * n :])  # the trailer
        self._check(frames, want, n + 1)
        conn.end_reply()

    def _check(self, frames: bytearray, want: bytes, count: int) -> None:
        """The first ``count`` frame headers are the ones expected (raises naming the first
        that is not: the payloads around it went to the wrong places)."""
        size = count * FRAME.size
        if frames[:size] == want[:size]:
            return
        for k in range(count):
            got = frames[k * FRAME.size : (k + 1) * FRAME.size]
            if got != want[k * FRAME.size : (k + 1) * FRAME.size]:
                index, length = FRAME.unpack(got)
                if index == TRAILER_INDEX:
                    raise TransientError(
                        f"batch response has no item {k}: trailer", url=self.display
                    )
                expect_index, expect_length = FRAME.unpack(
                    want[k * FRAME.size : (k + 1) * FRAME.size]
                )
                what = (
                    "trailer"
                    if expect_index == TRAILER_INDEX
                    else f"item {k} of {expect_length} bytes"
                )
                raise TransientError(
                    f"malformed batch frame: expected {what}, got item {index} of {length} bytes",
                    url=self.display,
                )
