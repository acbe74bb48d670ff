"""https: certificate checks on by default, a CA file or ssl=False for self-signed servers;
one store reused across event loops (a fresh connection pool per loop)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers.http import make_cert

from farfeed.errors import StoreError, TransientError
from farfeed.store import HttpStore, open_store
from farfeed.store.testing import serve_http


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    return make_cert(tmp_path)


async def test_https_certificate_checks(files_root: Path, self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    with serve_http(files_root, cert=cert, key=key) as url:
        assert url.startswith("https://")
        with pytest.raises(StoreError, match="certificate") as caught:
            await open_store(f"{url}/bucket/ds")
        assert not isinstance(caught.value, TransientError)  # retrying would not help
        for ssl in (str(cert), False):
            async with open_store(f"{url}/bucket/ds", ssl=ssl) as store:
                assert await store.read("sub/b.bin", 0, 5) == b"hello"


def test_store_survives_a_new_event_loop(http_server: str) -> None:
    store = HttpStore(f"{http_server}/bucket/ds")
    assert asyncio.run(store.read("sub/b.bin", 6, 5)) == b"world"
    assert asyncio.run(store.read("sub/b.bin", 0, 5)) == b"hello"  # old loop is gone
    asyncio.run(store.close())
