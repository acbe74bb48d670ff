"""Batch-get responses that go wrong on the way (cut, garbled, no trailer) are TransientErrors.

The server here is a real aiohttp server on a loopback port that speaks the gateway's
protocol badly on purpose: the real gateway never does, but a cut link does.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from farfeed.errors import TransientError
from farfeed.store import ByteRange, GatewayStore, open_store

FRAME = struct.Struct(">IQ")
TRAILER = FRAME.pack(0xFFFFFFFF, 0)

#: What each misbehaving server sends for a batch of two 4-byte items.
BODIES: dict[str, bytes] = {
    "cut mid-payload": FRAME.pack(0, 4) + b"ab",
    "cut before trailer": FRAME.pack(0, 4) + b"abcd" + FRAME.pack(1, 4) + b"efgh",
    "wrong index": FRAME.pack(1, 4) + b"abcd" + FRAME.pack(0, 4) + b"efgh" + TRAILER,
    "wrong length": FRAME.pack(0, 5) + b"abcde" + FRAME.pack(1, 4) + b"efgh" + TRAILER,
    "bytes after trailer": FRAME.pack(0, 4) + b"abcd" + FRAME.pack(1, 4) + b"efgh" + TRAILER + b"x",
}


@pytest.fixture
async def bad_gateway() -> AsyncIterator[Callable[[str], str]]:
    """Start a server whose batch-get answers BODIES[mode]; yields mode -> base URL."""
    runners: list[web.AppRunner] = []

    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {"farfeed": "0.1.0", "api": 1, "max_batch_ranges": 10, "max_batch_bytes": 1000}
        )

    def batch_for(body: bytes) -> Callable[[web.Request], object]:
        async def batch(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            resp.content_type = "application/x-farfeed-batch"
            await resp.prepare(request)
            await resp.write(body)
            if request.transport is not None:
                request.transport.close()  # end the connection without a clean chunked end
            return resp

        return batch

    urls: dict[str, str] = {}
    for mode, body in BODIES.items():
        app = web.Application()
        app.router.add_get("/_farfeed/info", info)
        app.router.add_post("/_farfeed/batch", batch_for(body))  # type: ignore[arg-type]
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        urls[mode] = f"http://127.0.0.1:{port}/ds"
        runners.append(runner)
    yield urls.__getitem__
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize("mode", sorted(BODIES))
async def test_broken_batch_stream_is_transient(
    bad_gateway: Callable[[str], str], mode: str
) -> None:
    async with open_store(bad_gateway(mode)) as store:
        assert isinstance(store, GatewayStore)
        with pytest.raises(TransientError):
            await store.read_many([ByteRange("a.tar", 0, 4), ByteRange("a.tar", 4, 4)])
