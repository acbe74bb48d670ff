"""Where bytes live: one `Store` interface, one backend per URL scheme.

>>> from farfeed.store import open_store, ByteRange
>>> async with await open_store("http://storage:8470/imagenet") as store:
...     blobs = await store.read_many([ByteRange("train-00000.tar", 1536, 114660)])

Backends: `LocalStore` (paths, ``file://``), `GatewayStore` (the farfeed gateway),
`HttpStore` (any static HTTP server, read-only), `S3Store` (``s3://``, any S3 endpoint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from farfeed.store.base import ByteRange, Chunk, ObjectInfo, Parts, Store, UploadResult
from farfeed.store.local import LocalStore
from farfeed.store.open import SCHEMES, open_store
from farfeed.store.options import StoreOptions

if TYPE_CHECKING:
    from farfeed.store.gateway import GatewayStore
    from farfeed.store.http import HttpStore
    from farfeed.store.s3 import S3Store

__all__ = [
    "SCHEMES",
    "ByteRange",
    "Chunk",
    "GatewayStore",
    "HttpStore",
    "LocalStore",
    "ObjectInfo",
    "Parts",
    "S3Store",
    "Store",
    "StoreOptions",
    "UploadResult",
    "open_store",
]

_LAZY = {
    "GatewayStore": "farfeed.store.gateway",
    "HttpStore": "farfeed.store.http",
    "S3Store": "farfeed.store.s3",
}


def __getattr__(name: str) -> Any:
    """Import the network backends on first use (aiohttp is slow to import)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'farfeed.store' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once; later lookups skip this function
    return value
