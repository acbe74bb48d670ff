"""The storage-site gateway: datasets, batch-get and checkpoint uploads over HTTP/1.1.

    farfeed serve /data/farfeed --host 0.0.0.0 --port 8470 --tokens tokens.txt --cert c.pem --key k.pem

`create_app` builds the aiohttp application (the protocol is docs/HTTP_API.md); `run`
(farfeed.server.runner) serves it; `serve_in_thread` and `GatewayProcess` embed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from farfeed.server import batch, objects, uploads, writes
from farfeed.server.auth import TokenTable, auth_middleware
from farfeed.server.connections import connection_middleware
from farfeed.server.context import GATEWAY, METRICS, Gateway
from farfeed.server.limits import ServerLimits
from farfeed.server.metrics import Metrics, metrics_middleware
from farfeed.server.paths import GatewayPaths, url_path_middleware
from farfeed.server.reclaim import SWEEP_INTERVAL, sweep
from farfeed.server.responses import error_middleware

log = logging.getLogger("farfeed.server")


def gateway_application(
    metrics: Metrics, *, hide: list[str], tokens: TokenTable | None, limits: ServerLimits
) -> web.Application:
    """An empty application with what every gateway runs before a handler (connection
    limits, metrics, errors that never show the strings in ``hide``, path checks, and
    tokens when given), ``metrics`` at `METRICS`; the caller adds its state and routes."""
    middlewares: list[Middleware] = [
        connection_middleware,
        metrics_middleware(metrics),
        error_middleware(hide),
        url_path_middleware,
    ]
    if tokens is not None:
        middlewares.append(auth_middleware(tokens))
    app = web.Application(middlewares=middlewares, client_max_size=limits.max_batch_body)
    app[METRICS] = metrics
    return app


def create_app(
    root: str | Path, *, tokens: TokenTable | None = None, limits: ServerLimits = ServerLimits()
) -> web.Application:
    """The gateway application serving ``root`` (datasets, and ``root/checkpoints`` for writes).

    >>> web.run_app(create_app("/data/farfeed"), host="127.0.0.1", port=8470)
    """
    if not isinstance(limits, ServerLimits):
        from farfeed.errors import ConfigError

        raise ConfigError(f"limits must be a ServerLimits, got {limits!r}")
    gw = Gateway(paths=GatewayPaths(root), limits=limits)
    hide = [gw.paths.root, str(root), os.path.abspath(root)]  # never in an answer
    app = gateway_application(gw.metrics, hide=hide, tokens=tokens, limits=limits)
    app[GATEWAY] = gw
    _add_routes(app.router)
    app.cleanup_ctx.append(_sweeper)
    return app


def _add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", objects.healthz, name="healthz")
    router.add_get("/metrics", objects.metrics, name="metrics")
    router.add_get("/_farfeed/info", objects.info, name="info")
    router.add_get("/_farfeed/datasets", objects.datasets, name="datasets")
    router.add_get("/_farfeed/list", objects.list_objects, name="list")
    router.add_post("/_farfeed/batch", batch.batch_get, name="batch")
    router.add_post("/_farfeed/uploads", uploads.create_upload, name="upload_create")
    status = router.add_resource("/_farfeed/uploads/{upload_id}", name="upload")
    status.add_route("GET", uploads.upload_status)
    status.add_route("DELETE", uploads.abort_upload)
    router.add_post("/_farfeed/uploads/{upload_id}/commit", uploads.commit_upload, name="upload_commit")
    router.add_put("/_farfeed/uploads/{upload_id}/{part}", uploads.put_part, name="upload_part")
    obj = router.add_resource("/{path:.+}", name="object")
    obj.add_route("GET", objects.get_object)
    obj.add_route("HEAD", objects.get_object)
    obj.add_route("PUT", writes.put_object)
    obj.add_route("DELETE", writes.delete_object)


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Reclaim abandoned staged uploads at start (before the first request) and then every
    `SWEEP_INTERVAL` seconds (`farfeed.server.reclaim`: a dead request's PUT file at once,
    an untouched upload after ``stale_upload_seconds``)."""
    gw = app[GATEWAY]

    async def once() -> None:
        removed = await asyncio.get_running_loop().run_in_executor(
            None, lambda: sweep(gw.paths.staging, max_age=gw.limits.stale_upload_seconds)
        )
        if removed:
            log.info("reclaimed %d abandoned staged upload(s)", len(removed))

    async def loop() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            await once()

    await once()
    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
