"""Shared pytest fixtures: a gateway root and a gateway serving it (in a thread, real HTTP), and
the loopback socket servers of the WAN emulator's tests (see `helpers.sockets`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.hangs import HangWatch
from helpers.sockets import Sink, ThreadedServer, echo, source

from farfeed.server import serve_in_thread


@pytest.fixture
def gateway_root(tmp_path: Path) -> Path:
    """An empty gateway ROOT (tmp_path/root) with its writable ``checkpoints/`` folder."""
    root = tmp_path / "root"
    (root / "checkpoints").mkdir(parents=True)
    return root


@pytest.fixture
def gateway_url(gateway_root: Path) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a gateway serving ``gateway_root``, no tokens."""
    with serve_in_thread(gateway_root) as url:
        yield url


@pytest.fixture
def echo_server() -> Iterator[ThreadedServer]:
    """A loopback server that sends back what it receives."""
    server = ThreadedServer(echo)
    yield server
    server.close()


@pytest.fixture
def source_server() -> Iterator[ThreadedServer]:
    """A loopback server that sends pattern bytes on request (`helpers.sockets.source`)."""
    server = ThreadedServer(source)
    yield server
    server.close()


@pytest.fixture
def sink() -> Iterator[tuple[ThreadedServer, Sink]]:
    """A loopback server that records what arrives and when."""
    recorder = Sink()
    server = ThreadedServer(recorder)
    yield server, recorder
    server.close()


_hangs = HangWatch()


def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """pytest-timeout's timer still runs (this returns None); a little before it fires, the
    stacks of every process under pytest are printed (`helpers.hangs`)."""
    if settings.timeout:
        _hangs.start(item.nodeid, float(settings.timeout))


def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    _hangs.cancel(item.nodeid)
