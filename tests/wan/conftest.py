"""Fixtures: real loopback servers (see `wan_helpers`), each closed after its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wan_helpers import Sink, ThreadedServer, echo, source


@pytest.fixture
def echo_server() -> Iterator[ThreadedServer]:
    server = ThreadedServer(echo)
    yield server
    server.close()


@pytest.fixture
def source_server() -> Iterator[ThreadedServer]:
    server = ThreadedServer(source)
    yield server
    server.close()


@pytest.fixture
def sink() -> Iterator[tuple[ThreadedServer, Sink]]:
    recorder = Sink()
    server = ThreadedServer(recorder)
    yield server, recorder
    server.close()
