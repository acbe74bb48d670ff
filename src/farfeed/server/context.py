"""What every handler needs, in one object stored on the aiohttp app."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from farfeed.server.limits import ServerLimits
from farfeed.server.metrics import Metrics
from farfeed.server.paths import GatewayPaths


@dataclass
class Gateway:
    """The gateway's root paths, limits and counters (one per process; no other state)."""

    paths: GatewayPaths
    limits: ServerLimits
    metrics: Metrics = field(default_factory=Metrics)


GATEWAY = web.AppKey("farfeed_gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    """The `Gateway` of the app serving ``request``."""
    return request.app[GATEWAY]
