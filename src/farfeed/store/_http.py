"""What the gateway and static-HTTP backends share: a lazy aiohttp session, error
translation (the one boundary where aiohttp exceptions become farfeed errors), range GETs."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from farfeed.errors import (
    AccessDeniedError,
    BadRequestError,
    ConfigError,
    NotFoundError,
    StorageFullError,
    StoreError,
    TransientError,
)
from farfeed.store.options import MiB, StoreOptions, certificate_error

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def split_http_url(url: str) -> tuple[str, str]:
    """``http://user@h:p/a/b/`` -> (``http://h:p``, ``a/b``): the origin and the path prefix."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"expected an http:// or https:// URL with a host, got {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad port in URL {parts.netloc!r}: {exc}") from exc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    prefix = "/".join(p for p in parts.path.split("/") if p not in ("", "."))
    return urlunsplit((parts.scheme, netloc, "", "", "")), prefix


def object_url(origin: str, path: str) -> URL:
    """The URL of a root-relative object path, percent-encoded once."""
    return URL(f"{origin}/{quote(path, safe='/')}", encoded=True)


class HttpClient:
    """One store's aiohttp session, made on first use in the process and loop using it.

    A session (and its sockets) never crosses a ``fork`` or an event loop: when either
    changed since it was made, a fresh one is made and the old one is dropped unused.
    """

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self._ssl = options.ssl_context()  # validated now: a bad CA file fails at open
        self._session: aiohttp.ClientSession | None = None
        self._owner: tuple[int, asyncio.AbstractEventLoop] | None = None

    async def session(self) -> aiohttp.ClientSession:
        owner = (os.getpid(), asyncio.get_running_loop())
        if self._session is not None and (self._owner != owner or self._session.closed):
            self._drop()
        if self._session is None:
            self._session = make_session(self.options, ssl=self._ssl)
            self._owner = owner
        return self._session

    async def close(self) -> None:
        """Close the session if this process and loop own it; otherwise just drop it."""
        session = self._session
        if session is None:
            return
        try:
            current = (os.getpid(), asyncio.get_running_loop())
        except RuntimeError:
            current = None
        if current is not None and current == self._owner:
            self._session = self._owner = None
            await session.close()
        else:
            self._drop()

    def _drop(self) -> None:
        if self._session is not None:
            self._session.detach()  # its sockets belong to another process or loop
        self._session = self._owner = None


def make_session(
    options: StoreOptions, *, ssl: object, limit: int | None = None
) -> aiohttp.ClientSession:
    """A keep-alive session: ``connections`` sockets, bearer token, raw (undecoded) bodies."""
    connector = aiohttp.TCPConnector(
        limit=limit or options.connections,
        limit_per_host=0,
        keepalive_timeout=60.0,
        ssl=ssl,  # type: ignore[arg-type]
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=options.timeout, sock_connect=options.timeout, sock_read=options.timeout
    )
    headers = {"Accept-Encoding": "identity"}
    if options.token:
        headers["Authorization"] = f"Bearer {options.token}"
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers=headers,
        auto_decompress=False,
        read_bufsize=1 * MiB,
    )


@asynccontextmanager
async def translated(url: str) -> AsyncIterator[None]:
    """Turn aiohttp / socket errors raised inside the block into farfeed `StoreError`s."""
    try:
        yield
    except StoreError:
        raise
    except aiohttp.InvalidURL as exc:
        raise ConfigError(f"invalid URL {str(exc)!r}") from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        raise certificate_error(exc.certificate_error, url) from exc
    except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, ConnectionError) as exc:
        raise TransientError(f"network error: {type(exc).__name__}: {exc}", url=url) from exc
    except asyncio.IncompleteReadError as exc:
        raise TransientError(
            f"response cut short: got {len(exc.partial)} of {exc.expected} bytes", url=url
        ) from exc
    except OSError as exc:
        raise TransientError(f"network error: {exc}", url=url) from exc


def status_error(status: int, message: str, url: str) -> StoreError:
    """The farfeed error for an HTTP error status (404, 401/403, 507, other 4xx, 5xx)."""
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status == 404:
        return NotFoundError(text, url=url)
    if status in (401, 403):
        return AccessDeniedError(text, url=url)
    if status == 507:  # a full disk: retrying the same write cannot help
        return StorageFullError(text or "the storage site's disk is full", url=url)
    if status in (408, 429) or status >= 500:
        return TransientError(text, url=url)
    return BadRequestError(text, url=url)


async def check_status(resp: aiohttp.ClientResponse, url: str) -> None:
    """Raise the farfeed error for a 4xx/5xx response, with the server's JSON "error" text."""
    if resp.status < 400:
        return
    try:
        body = await resp.content.read(64 * 1024)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        body = b""
    message = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(message)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            message = parsed["error"]
    except ValueError:
        message = message.splitlines()[0][:200] if message else resp.reason or ""
    raise status_error(resp.status, message, url)


async def range_get(
    session: aiohttp.ClientSession, url: URL, offset: int, length: int | None, *, display: str
) -> bytes:
    """GET ``length`` bytes (to the end when None) at ``offset``: exactly those bytes, or an error.

    A response shorter than asked is a `BadRequestError` when the object is too small and a
    `TransientError` when the body was cut. Servers that ignore ``Range`` are sliced here.
    """
    if offset < 0 or (length is not None and length < 0):
        raise ConfigError(f"read needs offset >= 0 and length >= 0, got {offset!r}, {length!r}")
    if length == 0:
        return b""
    headers = {}
    if length is not None:
        headers["Range"] = f"bytes={offset}-{offset + length - 1}"
    elif offset > 0:
        headers["Range"] = f"bytes={offset}-"
    async with translated(display):
        async with session.get(url, headers=headers) as resp:
            if resp.status == 416:
                raise BadRequestError(
                    f"range offset={offset} length={length} is outside the object", url=display
                )
            await check_status(resp, display)
            body = await resp.read()
            total = _total_size(resp, len(body))
            if resp.status == 200 and (offset or length is not None):  # Range was ignored
                body = body[offset : None if length is None else offset + length]
    if length is not None:
        want = length
    else:
        want = len(body) if total is None else max(total - offset, 0)
    if len(body) != want:
        if total is not None and offset + want > total:
            raise BadRequestError(
                f"range offset={offset} length={length} is outside the object ({total} bytes)",
                url=display,
            )
        raise TransientError(f"response cut short: got {len(body)} of {want} bytes", url=display)
    return body


def _total_size(resp: aiohttp.ClientResponse, body_len: int) -> int | None:
    """The whole object's size from ``Content-Range`` (206) or the body length (200)."""
    if resp.status != 206:
        return body_len
    match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
    return int(match.group(3)) if match and match.group(3) != "*" else None


async def head_size(session: aiohttp.ClientSession, url: URL, *, display: str) -> int:
    """Size of one object from a ``HEAD`` request's ``Content-Length``."""
    async with translated(display):
        async with session.head(url, allow_redirects=True) as resp:
            await check_status(resp, display)
            length = resp.headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise StoreError(f"server sent no Content-Length for HEAD (got {length!r})", url=display)
    return int(length)
