"""What every handler needs, in one object stored on the aiohttp app."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiohttp import web

from farfeed.server.limits import ServerLimits
from farfeed.server.metrics import Metrics
from farfeed.server.paths import GatewayPaths
from farfeed.server.reclaim import reclaim_for, sweep

log = logging.getLogger("farfeed.server")


@dataclass
class Gateway:
    """The gateway's root paths, limits and counters (one per process; no other state)."""

    paths: GatewayPaths
    limits: ServerLimits
    metrics: Metrics = field(default_factory=Metrics)

    def reclaim_before_save(self, dest: str) -> None:
        """Before a save to ``dest`` (root-relative): drop that destination's abandoned staging
        (blocking: run it in a worker thread)."""
        reclaim_for(self.paths.staging, dest, max_idle=self.limits.reclaim_idle_seconds)

    def reclaim_space(self) -> bool:
        """A write found the disk full: drop every abandoned staged upload (idle
        ``reclaim_idle_seconds``); True if anything went (then the write is tried again).
        Blocking: called from the worker thread that got ENOSPC."""
        removed = sweep(self.paths.staging, max_age=self.limits.reclaim_idle_seconds)
        if removed:
            log.warning("disk full: reclaimed %d abandoned staged upload(s) and trying again", len(removed))
        return bool(removed)


GATEWAY = web.AppKey("farfeed_gateway", Gateway)
#: The app's request counters, for the listener (both kinds of gateway app set it).
METRICS = web.AppKey("farfeed_metrics", Metrics)


def gateway(request: web.Request) -> Gateway:
    """The `Gateway` of the app serving ``request``."""
    return request.app[GATEWAY]
