"""The gateway in a daemon thread with its own event loop: the fast fixture for tests and notebooks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

from farfeed.errors import FarfeedError
from farfeed.server.auth import TokenTable
from farfeed.server.bucket import BucketSettings
from farfeed.server.bucket_app import app_for
from farfeed.server.connections import Listener, aiohttp_keepalive, listen
from farfeed.server.context import METRICS
from farfeed.server.limits import ConnectionLimits, ServerLimits
from farfeed.server.runner import bind_socket


@contextmanager
def serve_in_thread(
    root: str | Path,
    *,
    tokens: TokenTable | None = None,
    limits: ServerLimits = ServerLimits(),
    connection_limits: ConnectionLimits = ConnectionLimits(),
    host: str = "127.0.0.1",
    bucket: BucketSettings | None = None,
) -> Iterator[str]:
    """Serve ``root`` (a folder, or ``s3://BUCKET/PREFIX`` read with ``bucket``'s
    settings) on a free loopback port for the ``with`` block; yields the base URL.

    >>> with serve_in_thread(tmp_path) as url:
    ...     urllib.request.urlopen(f"{url}/healthz").read()
    b'ok'
    """
    app = app_for(root, tokens=tokens, limits=limits, bucket=bucket)  # errors surface here, in the caller
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}
    serving: list[tuple[web.AppRunner, Listener]] = []

    async def start() -> tuple[web.AppRunner, Listener]:
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=1.0, keepalive_timeout=aiohttp_keepalive(connection_limits)
        )
        await runner.setup()
        sock = bind_socket(host, 0, reuse_port=False)
        listener = await listen(runner, sock, limits=connection_limits, metrics=app[METRICS])
        state["port"] = listener.port
        return runner, listener

    async def stop(runner: web.AppRunner, listener: Listener) -> None:
        await listener.close()
        await runner.cleanup()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            serving.append(loop.run_until_complete(start()))
        except BaseException as exc:  # report to the caller instead of dying silently
            state["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=main, name="farfeed-gateway", daemon=True)
    thread.start()
    started.wait()
    if "error" in state:
        loop.close()
        raise FarfeedError(f"gateway thread failed to start: {state['error']}")
    try:
        yield f"http://{host}:{state['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(stop(*serving[0]), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
