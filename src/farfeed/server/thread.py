"""The gateway in a daemon thread with its own event loop: the fast fixture for tests and notebooks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

from farfeed.errors import FarfeedError
from farfeed.server.app import create_app
from farfeed.server.auth import TokenTable
from farfeed.server.limits import ServerLimits


@contextmanager
def serve_in_thread(
    root: str | Path,
    *,
    tokens: TokenTable | None = None,
    limits: ServerLimits = ServerLimits(),
    host: str = "127.0.0.1",
) -> Iterator[str]:
    """Serve ``root`` on a free loopback port for the ``with`` block; yields the base URL.

    >>> with serve_in_thread(tmp_path) as url:
    ...     urllib.request.urlopen(f"{url}/healthz").read()
    b'ok'
    """
    app = create_app(root, tokens=tokens, limits=limits)  # errors surface here, in the caller
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def start() -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, 0).start()
        state["port"] = runner.addresses[0][1]
        return runner

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            state["runner"] = loop.run_until_complete(start())
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
        runner = state["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
