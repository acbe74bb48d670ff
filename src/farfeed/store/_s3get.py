"""S3 range GETs straight into the caller's buffers: the loader's read path over S3.

On the same receiver threads and keep-alive connections as the gateway's batch-get
(`farfeed.store._keepalive`): the request is one signed block of bytes, the reply's head
is parsed with a few ``find``s, and the body is received with one blocking
``recv_into`` into its final place. Per GET that is ~0.1 ms of Python instead of
aiohttp's ~0.5 ms, and no copy of the body. Anything unusual (an error status, a reply
that is not exactly the range asked for) comes back whole, for
`farfeed.store.s3.S3Store` to judge.
"""

from __future__ import annotations

from farfeed.store._keepalive import Connection, ConnectionPool
from farfeed.store.options import StoreOptions

#: The reply headers the read path looks at (S3 servers send a dozen more).
_WANTED = (b"content-range",)


class Reply:
    """A finished exchange: ``status``, lower-cased ``headers``, and ``body``: None when
    it went into the caller's buffer, else the bytes received."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytearray | None) -> None:
        self.status, self.headers, self.body = status, headers, body


class RangeGetClient:
    """Keep-alive connections to one S3 endpoint for range GETs; made lazily in the process
    and loop that use it (never shared across ``fork``)."""

    def __init__(self, origin: str, options: StoreOptions, *, display: str) -> None:
        self._pool = ConnectionPool(origin, options, display=display)

    async def get(self, request: bytes, out: memoryview | None) -> Reply:
        """Send ``request`` (a whole GET); the reply's body lands in ``out`` when it is a
        200/206 of exactly ``len(out)`` bytes, else comes back in `Reply.body`."""
        return await self._pool.run(lambda conn: _exchange(conn, request, out))

    async def close(self) -> None:
        await self._pool.close()


def _exchange(conn: Connection, request: bytes, out: memoryview | None) -> Reply:
    """Receiver thread: one GET and its reply."""
    conn.send(request)
    head = conn.read_head(_WANTED)
    if head.length is None:
        raise conn.fail("S3 reply without a Content-Length")
    body: bytearray | None = None
    if head.status in (200, 206) and out is not None and head.length == len(out):
        conn.recv_exact(out)
    else:
        body = bytearray(head.length)
        conn.recv_exact(memoryview(body))
    conn.end_reply()
    return Reply(head.status, head.headers, body)
