"""`open_store`: turn a URL into the right `Store`, chosen from a scheme -> opener table."""

from __future__ import annotations

import ssl as _ssl
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from farfeed.errors import ConfigError
from farfeed.store._paths import redact_url
from farfeed.store.base import Store
from farfeed.store.local import LocalStore
from farfeed.store.options import StoreOptions

#: A gateway's ``/_farfeed/info`` when already known (`Store.gateway_info`); False when
#: the URL is known not to be a gateway (a static server); None when not known.
GatewayInfo = Mapping[str, Any] | Literal[False] | None


async def _open_local(url: str, options: StoreOptions, gateway_info: GatewayInfo) -> Store:
    return LocalStore(url)


async def _open_http(url: str, options: StoreOptions, gateway_info: GatewayInfo) -> Store:
    """A farfeed gateway if ``GET /_farfeed/info`` says so (or ``gateway_info`` is already
    known), else a static HTTP server (``gateway_info=False``: without asking).

    A token may ride in the URL (``http://:TOKEN@host:8470/imagenet``); it is this URL's
    token, used before ``token`` (`farfeed.store.access` refuses the two disagreeing).
    """
    from farfeed.store.gateway import GatewayStore, probe_gateway
    from farfeed.store.http import HttpStore

    parts = urlsplit(url)
    in_url = unquote(parts.password or parts.username or "")
    if in_url:
        options = replace(options, token=in_url)

    if gateway_info is False:
        return HttpStore(url, options=options)
    info = dict(gateway_info) if gateway_info is not None else await probe_gateway(url, options)
    if info is not None:
        return GatewayStore(url, options=options, info=info)
    return HttpStore(url, options=options)


async def _open_s3(url: str, options: StoreOptions, gateway_info: GatewayInfo) -> Store:
    """``s3://BUCKET/PREFIX``; keys may ride in the URL (``s3://KEY:SECRET@BUCKET/...``)."""
    from farfeed.store.s3 import S3Store

    parts = urlsplit(url)
    if parts.username and parts.password and options.s3_access_key is None:
        options = replace(
            options, s3_access_key=unquote(parts.username), s3_secret_key=unquote(parts.password)
        )

    return S3Store(url, options=options)


Opener = Callable[[str, StoreOptions, GatewayInfo], Awaitable[Store]]

#: URL scheme -> opener. "" is a plain local path.
SCHEMES: dict[str, Opener] = {
    "": _open_local,
    "file": _open_local,
    "http": _open_http,
    "https": _open_http,
    "s3": _open_s3,
}


class StoreOpening:
    """What `open_store` returns: ``await`` it for the store, or use it with ``async with``
    (the store is closed at the end of the block)."""

    def __init__(
        self, url: str, options: StoreOptions, opener: Opener, gateway_info: GatewayInfo
    ) -> None:
        self._url, self._options, self._opener = url, options, opener
        self._gateway_info = gateway_info
        self._store: Store | None = None

    def __await__(self) -> Generator[Any, None, Store]:
        return self._opener(self._url, self._options, self._gateway_info).__await__()

    async def __aenter__(self) -> Store:
        self._store = await self._opener(self._url, self._options, self._gateway_info)
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


def open_store(
    url: str,
    *,
    token: str | None = None,
    ssl: _ssl.SSLContext | str | bool | None = None,
    connections: int = 64,
    s3_endpoint_url: str | None = None,
    s3_access_key: str | None = None,
    s3_secret_key: str | None = None,
    s3_region: str | None = None,
    timeout: float = 60.0,
    part_size: int | None = None,
    multipart_threshold: int | None = None,
    gateway_info: GatewayInfo = None,
) -> StoreOpening:
    """Open the store at ``url``: a local path / ``file://``, ``http(s)://`` (gateway or
    static server, told apart by one ``GET /_farfeed/info``), or ``s3://BUCKET/PREFIX``.

    - ``token``: the gateway's bearer token. A token in an http(s) URL
      (``https://:TOKEN@host:8470/imagenet``) is that URL's token and is used first.
    - ``ssl``: https trust: a CA bundle path, an `ssl.SSLContext`, False (no check: a
      self-signed test server) or None (the system's CAs).
    - ``connections``: most keep-alive connections (and requests in flight) of the store.
    - ``timeout``: seconds to connect, and most seconds between two reads of a response.
    - ``part_size``, ``multipart_threshold``: bytes per part of a chunked (gateway) or
      multipart (S3) upload, and the object size above which uploads go in parts.
    - ``s3_endpoint_url``, ``s3_access_key``, ``s3_secret_key``, ``s3_region``: for
      ``s3://``; None reads the ``AWS_*`` environment variables.
    - ``gateway_info``: what opening this URL before learned (`Store.gateway_info`); with
      it, an http(s) URL opens as a gateway without the probe's round trip (DataLoader
      workers use this). False: open it as a static server, without the probe (plain
      range GETs, which a gateway answers too: `farfeed.Dataset` reads the index so while
      the probe runs).

    The same settings as a value: `StoreOptions`. `farfeed.Dataset`, `farfeed.checkpoint`
    and `farfeed.weights` call this with ``token=``, ``ca_file=`` and their environment
    fallbacks resolved by `farfeed.store.access.access_options`. No connection stays open
    after this returns: sockets are made at first use, in the process using the store.
    Do not share one store across ``fork``: open one per DataLoader worker.

    >>> store = await open_store("http://storage:8470/imagenet", token="3f9c…")
    >>> async with open_store("s3://bucket/imagenet", s3_endpoint_url="http://minio:9000") as store:
    ...     size = await store.size("dataset.json")

    Bad options and unknown schemes raise `ConfigError` here, before anything is awaited.
    """
    if not isinstance(url, str) or not url:
        raise ConfigError(f"store URL must be a non-empty string, got {url!r}")
    extra: dict[str, int] = {}
    if part_size is not None:
        extra["part_size"] = part_size
    if multipart_threshold is not None:
        extra["multipart_threshold"] = multipart_threshold
    options = StoreOptions(
        token=token,
        ssl=ssl,
        connections=connections,
        timeout=timeout,
        s3_endpoint_url=s3_endpoint_url,
        s3_access_key=s3_access_key,
        s3_secret_key=s3_secret_key,
        s3_region=s3_region,
        **extra,
    )
    scheme = _scheme(url)
    opener = SCHEMES.get(scheme)
    if opener is None:
        known = ", ".join(f"{s}://" for s in SCHEMES if s) + ", or a local path"
        raise ConfigError(
            f"unknown store URL scheme {scheme!r} in {redact_url(url)!r}; known: {known}"
        )
    return StoreOpening(url, options, opener, gateway_info)


def _scheme(url: str) -> str:
    """The URL's scheme, lower-cased; "" for plain paths (including Windows-less oddities)."""
    if "://" not in url and not url.startswith("file:"):
        return ""
    return urlsplit(url).scheme.lower()
