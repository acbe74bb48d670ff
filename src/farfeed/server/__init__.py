"""The storage-site gateway (``farfeed serve``): datasets, batch-get and checkpoint uploads.

>>> from farfeed.server import serve_in_thread
>>> with serve_in_thread("/data/farfeed") as url:
...     ...                          # url == "http://127.0.0.1:<free port>"

The protocol is docs/HTTP_API.md; the launch command is at the top of ``app.py``.
"""

from __future__ import annotations

from farfeed.server.app import create_app
from farfeed.server.auth import TokenTable
from farfeed.server.limits import ConnectionLimits, ServerLimits
from farfeed.server.process import GatewayProcess
from farfeed.server.runner import DEFAULT_PORT, ServeOptions, run
from farfeed.server.thread import serve_in_thread

__all__ = [
    "DEFAULT_PORT",
    "ConnectionLimits",
    "GatewayProcess",
    "ServeOptions",
    "ServerLimits",
    "TokenTable",
    "create_app",
    "run",
    "serve_in_thread",
]
