"""Batch-get straight into the caller's buffers (docs/HTTP_API.md, ``POST /_farfeed/batch``).

A small HTTP/1.1 keep-alive client on an asyncio `BufferedProtocol`: the event loop's
``recv_into`` writes each payload byte once, into its final place (the buffer the
loader verifies and hands on), so the client's cost per GB is close to the kernel's
own copy. aiohttp would copy every byte twice more (its read buffer, then the joins
of ``readexactly``). Only the gateway's batch responses take this road; everything else
(errors aside) stays on aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl as _ssl
from collections.abc import Callable, Sequence
from typing import cast
from urllib.parse import urlsplit

from farfeed.errors import StoreError, TransientError
from farfeed.store._batch import CONTENT_TYPE, FRAME, TRAILER_INDEX, batch_body
from farfeed.store._http import status_error
from farfeed.store.options import StoreOptions, certificate_error

#: Most bytes of status line + headers accepted in a response.
HEAD_MAX = 64 * 1024
#: An error response's body is read up to this many bytes (it is a short JSON message).
ERROR_BODY_MAX = 64 * 1024

Landed = Callable[[int], None]


class _Exchange:
    """One response being received: where each body byte goes, and what to check."""

    def __init__(self, outs: Sequence[memoryview], landed: Landed | None) -> None:
        self.outs = outs
        self.landed = landed
        self.expected = sum(FRAME.size + len(o) for o in outs) + FRAME.size
        self.frame = bytearray(FRAME.size)
        self.item = 0  # the next frame header's item number (len(outs): the trailer)
        self.in_payload = False
        self.target = memoryview(self.frame)  # what the next bytes fill
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def next_target(self) -> None:
        """The current target is full: check it and move on (raises on a bad frame)."""
        if self.in_payload:  # a payload landed
            self.in_payload = False
            if self.landed is not None:
                self.landed(self.item)
            self.item += 1
            self.target = memoryview(self.frame)
            return
        index, size = FRAME.unpack(self.frame)
        if self.item == len(self.outs):
            if index != TRAILER_INDEX or size != 0:
                raise TransientError(f"batch response has no trailer after {self.item} items")
            self.target = memoryview(b"")
            self.item += 1  # past the trailer: complete
            return
        want = len(self.outs[self.item])
        if index != self.item or size != want:
            raise TransientError(
                f"malformed batch frame: expected item {self.item} of {want} bytes, "
                f"got item {index} of {size} bytes"
            )
        if size:
            self.in_payload = True
            self.target = self.outs[self.item]
        else:
            if self.landed is not None:
                self.landed(self.item)
            self.item += 1
            self.target = memoryview(self.frame)

    @property
    def complete(self) -> bool:
        return self.item > len(self.outs)


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive connection; receives one response at a time, into `_Exchange` targets."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.last_activity = 0.0
        self._head = bytearray(HEAD_MAX)
        self._head_len = 0
        self._state = "idle"  # idle -> head -> body | error_body -> idle
        self._exchange: _Exchange | None = None
        self._status = 0
        self._body_left = 0
        self._error_body = bytearray()
        self._keep_alive = True
        self._loop = asyncio.get_running_loop()

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        why = f": {exc}" if exc else " by the server"
        self._fail(TransientError(f"connection closed{why} while reading a batch", url=self.url))

    def eof_received(self) -> bool:
        return False  # close our side too

    def get_buffer(self, sizehint: int) -> memoryview:
        ex = self._exchange
        if self._state == "body" and ex is not None and ex.target:
            return ex.target
        if self._head_len >= HEAD_MAX:  # never hand out an empty buffer: the loop aborts
            self._head_len = 0
        return memoryview(self._head)[self._head_len :]

    def buffer_updated(self, nbytes: int) -> None:
        self.last_activity = self._loop.time()
        try:
            if self._state == "body":
                ex = self._exchange
                assert ex is not None
                ex.target = ex.target[nbytes:]
                self._body_left -= nbytes
                if not ex.target:
                    ex.next_target()
                    self._finish_if_complete()
                return
            if self._state == "idle":
                raise TransientError("bytes arrived with no request outstanding", url=self.url)
            old = self._head_len
            self._head_len += nbytes
            if self._state == "error_body":
                self._error_bytes(old)
                return
            self._parse_head(old)
        except StoreError as exc:
            self._fail(exc)
            self.abort()

    # -- request side --------------------------------------------------------------------
    def send(self, request: bytes, exchange: _Exchange) -> None:
        assert self.transport is not None and self._state == "idle"
        if self.closed or self.transport.is_closing():  # reset while idle, or right at connect
            raise TransientError("connection closed before the request was sent", url=self.url)
        self._exchange = exchange
        self._state = "head"
        self._head_len = 0
        self.last_activity = self._loop.time()
        try:
            self.transport.write(request)
        except RuntimeError as exc:  # uvloop: the handle closed under us (a reset)
            raise TransientError(f"connection closed while sending: {exc}", url=self.url) from exc

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        # is_closing: a reset may have closed the transport before connection_lost ran
        closing = self.transport is not None and self.transport.is_closing()
        return not self.closed and not closing and self._keep_alive and self._state == "idle"

    # -- response parsing ----------------------------------------------------------------
    def _parse_head(self, old: int) -> None:
        end = self._head.find(b"\r\n\r\n", max(0, old - 3), self._head_len)
        if end < 0:
            if self._head_len >= HEAD_MAX:
                raise TransientError(f"response headers over {HEAD_MAX} bytes", url=self.url)
            return
        lines = bytes(self._head[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise TransientError(f"not an HTTP response: {lines[0][:80]!r}", url=self.url)
        self._status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self._keep_alive = parts[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        length = headers.get("content-length")
        if length is None or not length.isdigit():
            self._keep_alive = False
            if self._status == 200:
                raise TransientError("batch response without Content-Length", url=self.url)
        self._body_left = int(length) if length is not None and length.isdigit() else ERROR_BODY_MAX
        extra = memoryview(self._head)[end + 4 : self._head_len]
        if self._status != 200:
            self._state = "error_body"
            self._error_body = bytearray(extra)
            self._head_len = 0
            self._error_bytes(0, fresh=True)
            return
        ctype = headers.get("content-type", "")
        ex = self._exchange
        assert ex is not None
        if not ctype.startswith(CONTENT_TYPE):
            raise StoreError(
                f"batch-get answered with Content-Type {ctype!r}, not {CONTENT_TYPE!r}", url=self.url
            )
        if self._body_left != ex.expected:
            raise TransientError(
                f"batch response of {self._body_left} bytes, expected {ex.expected}", url=self.url
            )
        self._state = "body"
        self._head_len = 0
        self._feed(bytes(extra))

    def _feed(self, data: bytes) -> None:
        """Bytes that arrived with the headers: copied into the body's targets (few)."""
        ex = self._exchange
        assert ex is not None
        view = memoryview(data)
        while view and not ex.complete:
            n = min(len(view), len(ex.target))
            ex.target[:n] = view[:n]
            ex.target = ex.target[n:]
            view = view[n:]
            self._body_left -= n
            if not ex.target:
                ex.next_target()
        if view:
            raise TransientError("batch response has bytes after its trailer", url=self.url)
        self._finish_if_complete()

    def _finish_if_complete(self) -> None:
        ex = self._exchange
        if ex is None or not ex.complete:
            return
        if self._body_left != 0:
            raise TransientError("batch response has bytes after its trailer", url=self.url)
        self._state = "idle"
        self._exchange = None
        if not ex.done.done():
            ex.done.set_result(None)

    def _error_bytes(self, old: int, *, fresh: bool = False) -> None:
        if not fresh:
            self._error_body += self._head[old : self._head_len]
            self._head_len = 0
        if len(self._error_body) < min(self._body_left, ERROR_BODY_MAX):
            return
        self._keep_alive = self._keep_alive and len(self._error_body) == self._body_left
        self._state = "idle"
        ex, self._exchange = self._exchange, None
        message = self._error_body.decode("utf-8", "replace").strip()
        try:
            parsed = json.loads(message)
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
                message = parsed["error"]
        except ValueError:
            message = message.splitlines()[0][:200] if message else ""
        if ex is not None and not ex.done.done():
            ex.done.set_exception(status_error(self._status, message, self.url))
        if not self._keep_alive:
            self.abort()

    def _fail(self, exc: StoreError) -> None:
        self._keep_alive = False
        ex, self._exchange = self._exchange, None
        if ex is not None and not ex.done.done():
            ex.done.set_exception(exc)


class BatchIntoClient:
    """Keep-alive connections to one gateway for batch-gets into caller buffers.

    Made lazily in the process and loop that use it (never shared across ``fork``).
    """

    def __init__(self, origin: str, options: StoreOptions, *, display: str) -> None:
        parts = urlsplit(origin)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.options = options
        self.display = display
        self._ssl = options.ssl_context() if self.tls else None
        self._idle: list[_Connection] = []
        self._early: asyncio.Task[_Connection] | None = None  # connect_ahead's connection
        self._gate: asyncio.Semaphore | None = None
        self._owner: tuple[int, asyncio.AbstractEventLoop] | None = None
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        self._host_header = host if self.port == default else f"{host}:{self.port}"
        auth = f"Authorization: Bearer {options.token}\r\n" if options.token else ""
        self._head = (
            "POST /_farfeed/batch HTTP/1.1\r\n"
            f"Host: {self._host_header}\r\n"
            "Content-Type: application/json\r\n"
            "Accept-Encoding: identity\r\n"
            f"{auth}"
        )

    async def read_into(
        self,
        items: Sequence[tuple[str, int, int]],
        outs: Sequence[memoryview],
        landed: Landed | None = None,
    ) -> None:
        """One ``POST /_farfeed/batch`` for ``items`` (full path, offset, length); item ``k``'s
        bytes land in ``outs[k]`` and ``landed(k)`` is called as each arrives, in order."""
        self._check_owner()
        assert self._gate is not None
        body = batch_body(items)
        request = f"{self._head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        async with self._gate:
            conn = await self._connection()
            exchange = _Exchange(outs, landed)
            watchdog = asyncio.ensure_future(self._watch(conn, exchange))
            try:
                conn.send(request, exchange)
                await exchange.done
            except BaseException:
                conn.abort()  # mid-response: this connection cannot be reused
                raise
            finally:
                watchdog.cancel()
            if conn.reusable:
                self._idle.append(conn)
            else:
                conn.abort()

    def connect_ahead(self) -> None:
        """Start opening a connection now, for the next batch-get that finds none idle:
        its TCP (and TLS) handshake then crosses the link while the caller still plans
        its first request. Its error, if any, is that batch-get's."""
        self._check_owner()
        if not self._idle and self._early is None:
            self._early = asyncio.ensure_future(self._connect())

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        early, self._early = self._early, None
        mine = self._owner == (os.getpid(), _running_loop())
        if early is not None and mine:
            early.cancel()
            done = await asyncio.gather(early, return_exceptions=True)
            idle += [c for c in done if isinstance(c, _Connection)]
        for conn in idle:
            if mine:
                conn.abort()

    def _check_owner(self) -> None:
        owner = (os.getpid(), asyncio.get_running_loop())
        if self._owner != owner:  # a new process or loop: the old sockets are not ours
            self._idle = []
            self._early = None
            self._gate = asyncio.Semaphore(self.options.connections)
            self._owner = owner

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                return conn
        early, self._early = self._early, None
        if early is not None:
            conn = await early
            if conn.reusable:
                return conn
            conn.abort()  # closed by the server while it waited: open another
        return await self._connect()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self.display),
                    self.host,
                    self.port,
                    ssl=self._ssl if self.tls else None,
                    server_hostname=self.host if self.tls else None,
                ),
                self.options.timeout,
            )
        except _ssl.SSLCertVerificationError as exc:
            raise certificate_error(exc.verify_message, self.display) from exc
        except (OSError, asyncio.TimeoutError) as exc:
            raise TransientError(
                f"network error: cannot connect: {type(exc).__name__}: {exc}", url=self.display
            ) from exc
        return proto

    async def _watch(self, conn: _Connection, exchange: _Exchange) -> None:
        """Fail the exchange when no byte arrived for ``options.timeout`` seconds."""
        timeout = self.options.timeout
        loop = asyncio.get_running_loop()
        while not exchange.done.done():
            idle = loop.time() - conn.last_activity
            if idle >= timeout:
                exchange.done.set_exception(
                    TransientError(f"no data for {timeout:g} s while reading a batch", url=self.display)
                )
                conn.abort()
                return
            await asyncio.sleep(max(0.05, timeout - idle))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
