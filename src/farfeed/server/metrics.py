"""In-process request counters with a hand-written Prometheus text exposition.

Each gateway process keeps its own counters (with ``--workers N`` a scrape sees one
worker's share). Endpoint labels are the route names, so their number is fixed.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

from aiohttp import web
from aiohttp.typedefs import Middleware

from farfeed.server.responses import Handler

#: Upper bounds (seconds) of the request-duration histogram buckets.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counters for `farfeed_*` series; `render` gives the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.errors: defaultdict[str, int] = defaultdict(int)
        self.bytes_sent = 0
        self.bytes_received = 0
        self.inflight = 0
        self.connections_open = 0
        self.connections_refused = 0
        self.connections_closed: defaultdict[str, int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._hist_sum: defaultdict[str, float] = defaultdict(float)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests[(endpoint, status)] += 1
        if status >= 400:
            self.errors[endpoint] += 1
        counts = self._hist.setdefault(endpoint, [0] * (len(BUCKETS) + 1))
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._hist_sum[endpoint] += seconds

    def render(self) -> str:
        """The exposition text (version 0.0.4)."""
        out = [
            "# HELP farfeed_requests_total Requests answered, by endpoint and status.",
            "# TYPE farfeed_requests_total counter",
        ]
        for (endpoint, status), n in sorted(self.requests.items()):
            out.append(f'farfeed_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
        out += [
            "# HELP farfeed_errors_total Requests answered with a 4xx or 5xx, by endpoint.",
            "# TYPE farfeed_errors_total counter",
        ]
        for endpoint, n in sorted(self.errors.items()):
            out.append(f'farfeed_errors_total{{endpoint="{endpoint}"}} {n}')
        out += [
            "# HELP farfeed_bytes_sent_total Response body bytes sent.",
            "# TYPE farfeed_bytes_sent_total counter",
            f"farfeed_bytes_sent_total {self.bytes_sent}",
            "# HELP farfeed_bytes_received_total Request body bytes received.",
            "# TYPE farfeed_bytes_received_total counter",
            f"farfeed_bytes_received_total {self.bytes_received}",
            "# HELP farfeed_inflight_requests Requests being served now.",
            "# TYPE farfeed_inflight_requests gauge",
            f"farfeed_inflight_requests {self.inflight}",
            "# HELP farfeed_open_connections Client connections open now (this process).",
            "# TYPE farfeed_open_connections gauge",
            f"farfeed_open_connections {self.connections_open}",
            "# HELP farfeed_connections_refused_total Connections answered 503: over --max-connections, none idle.",
            "# TYPE farfeed_connections_refused_total counter",
            f"farfeed_connections_refused_total {self.connections_refused}",
            "# HELP farfeed_connections_closed_total Connections the gateway closed, by reason "
            "(idle, header, body: a timeout; evicted: room for a newer one).",
            "# TYPE farfeed_connections_closed_total counter",
        ]
        for reason, n in sorted(self.connections_closed.items()):
            out.append(f'farfeed_connections_closed_total{{reason="{reason}"}} {n}')
        out += [
            "# HELP farfeed_request_seconds Time to answer a request, by endpoint.",
            "# TYPE farfeed_request_seconds histogram",
        ]
        for endpoint, counts in sorted(self._hist.items()):
            total = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                total += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'farfeed_request_seconds_bucket{{endpoint="{endpoint}",le="{le}"}} {total}')
            out.append(f'farfeed_request_seconds_sum{{endpoint="{endpoint}"}} {self._hist_sum[endpoint]:.6f}')
            out.append(f'farfeed_request_seconds_count{{endpoint="{endpoint}"}} {total}')
        return "\n".join(out) + "\n"


def endpoint_of(request: web.Request) -> str:
    """The route name that labels this request (``unmatched`` for 404s/405s of the router)."""
    route = request.match_info.route
    name = getattr(route, "name", None)
    if name == "object" or name == "upload":
        return f"{name}_{request.method.lower()}"
    return name or "unmatched"


def metrics_middleware(metrics: Metrics) -> Middleware:
    """Outermost middleware: time each request (to its last byte) and count its status and bytes."""

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        metrics.inflight += 1
        status = 499  # the client went away before an answer
        try:
            resp = await handler(request)
            status = resp.status
            try:
                await resp.prepare(request)  # send it here, so the time covers the whole body
                await resp.write_eof()
            except ConnectionError:
                status = 499  # aiohttp notices the closed connection again, quietly
                return resp
            if request.method != "HEAD" and resp.content_length:
                metrics.bytes_sent += resp.content_length
            return resp
        finally:
            metrics.inflight -= 1
            metrics.observe(endpoint_of(request), status, time.perf_counter() - start)

    return measure
