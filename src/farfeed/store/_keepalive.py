"""Blocking keep-alive HTTP/1.1 connections, each driven by one receiver thread at a time.

The loader's two read paths share this layer: the gateway's batch-get
(`farfeed.store._batch_into`) and S3 range GETs (`farfeed.store._s3get`). A request is
one block of bytes; its reply's head is parsed with a few ``find``s; its body is received
by blocking ``recvmsg_into`` over many buffers with ``MSG_WAITALL``, straight into the
caller's buffers, with the GIL released for the whole wait. That is one system call for
a whole sample (or a ~4 MiB chunk of a batch response), where an event loop needs a
wake-up, ``get_buffer`` and ``buffer_updated`` for every ~64 KB that arrives (the
experiment that chose this: ``scripts/bench_blocking_receive.py``; before/after figures
in docs/BENCHMARKS.md, "Receiver threads").

The event loop keeps what it is good at: `ConnectionPool.run` is a coroutine. It takes an
idle connection (or opens one), hands the exchange to a receiver thread, and awaits it;
cancelling it shuts the socket down and waits for the thread to let go of the caller's
buffers before it returns.

The timeout (``StoreOptions.timeout``) is the kernel's own (``SO_RCVTIMEO``; over TLS
Python's socket timeout, as OpenSSL retries a read the kernel timed out): a receive that
got no byte for that long fails with `TransientError`, as does a closed connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import queue
import select
import socket
import ssl as _ssl
import struct
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from farfeed.errors import TransientError
from farfeed.store.options import StoreOptions, certificate_error
from farfeed.store.threads import tls_thread

#: Most bytes of status line + headers accepted in a response.
HEAD_MAX = 64 * 1024
#: An error response's body is read up to this many bytes (a short message).
ERROR_BODY_MAX = 64 * 1024
#: Most buffers in one ``recvmsg_into`` (Linux's IOV_MAX is 1024).
IOV_MAX = 1024
#: A receiver thread with nothing to do for this long ends, s.
THREAD_IDLE_S = 30.0
#: How long a cancelled exchange waits for its thread to let go of the buffers, s.
RELEASE_S = 10.0

T = TypeVar("T")


class Head:
    """A reply's status line and the headers asked for (lower-case names)."""

    __slots__ = ("status", "headers", "keep_alive", "length")

    def __init__(self, status: int, headers: dict[str, str], keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        self.keep_alive = keep_alive
        length = headers.get("content-length", "")
        self.length: int | None = int(length) if length.isdigit() else None


class Connection:
    """One keep-alive connection; used by one thread at a time, one exchange at a time."""

    def __init__(self, sock: socket.socket, url: str, *, tls: bool, timeout: float) -> None:
        self.sock = sock
        self.url = url
        self.tls = tls
        self.timeout = timeout
        self.broken = False  # closed, failed or aborted: never reused
        self.keep_alive = True
        self._head = bytearray(HEAD_MAX)
        self._extra = memoryview(b"")  # bytes received past the last head, not yet taken
        self.filled = 0  # buffers full in the last recv_many

    # -- sending -------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.broken = True
            raise TransientError(f"connection closed while sending: {exc}", url=self.url) from exc

    # -- receiving -----------------------------------------------------------------------
    def read_head(self, wanted: Sequence[bytes]) -> Head:
        """The next reply's head, with the ``wanted`` headers (lower-case names) parsed;
        body bytes that came with it are kept for the next `recv_exact`."""
        buf = self._head
        view = memoryview(buf)
        n = 0
        while True:
            got = self._recv(view[n:])
            n += got
            end = buf.find(b"\r\n\r\n", max(0, n - got - 3), n)
            if end >= 0:
                break
            if n >= HEAD_MAX:
                raise self.fail(f"response headers over {HEAD_MAX} bytes")
        head = bytes(buf[:end])
        first = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = first.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise self.fail(f"not an HTTP response: {first[:80]!r}")
        headers = parse_headers(head, (b"content-length", b"connection", *wanted))
        keep = parts[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        self.keep_alive = keep
        self._extra = view[end + 4 : n]
        return Head(int(parts[1]), headers, keep)

    def recv_exact(self, out: memoryview) -> None:
        """Fill ``out`` entirely (on plain TCP, one system call that waits for it all)."""
        self.recv_many([out])

    def recv_many(self, outs: Sequence[memoryview]) -> None:
        """Fill ``outs`` in order, in as few system calls as the kernel allows: on plain TCP
        one ``recvmsg_into`` with ``MSG_WAITALL`` over up to `IOV_MAX` buffers, the GIL
        released until they are full. `filled` counts the buffers full so far, which is
        what arrived whole when this raises (`TransientError`)."""
        self.filled = 0
        n = len(outs)
        i = 0
        cur = outs[0] if n else memoryview(b"")
        while True:
            while not cur:  # full (or empty): on to the next buffer
                i += 1
                self.filled = i
                if i >= n:
                    return
                cur = outs[i]
            extra = self._extra
            if extra:  # bytes that came with the head
                k = min(len(extra), len(cur))
                cur[:k] = extra[:k]
                self._extra = extra[k:]
                cur = cur[k:]
                continue
            got = self._recv(cur) if self.tls else self._recvmsg([cur, *outs[i + 1 : i + IOV_MAX]])
            while got:
                while not cur:
                    i += 1
                    self.filled = i
                    cur = outs[i]
                k = min(got, len(cur))
                cur = cur[k:]
                got -= k

    def read_error_body(self, head: Head) -> str:
        """An error reply's body (its first `ERROR_BODY_MAX` bytes), as text."""
        if head.length is not None:
            take = min(head.length, ERROR_BODY_MAX)
            body = bytearray(take)
            self.recv_exact(memoryview(body))
            if take < head.length:
                self.keep_alive = False
            return body.decode("utf-8", "replace")
        self.keep_alive = False  # no length: the body ends where the connection does
        chunks = bytearray(self._extra)
        self._extra = memoryview(b"")
        chunk = bytearray(16 * 1024)
        while len(chunks) < ERROR_BODY_MAX:
            try:
                got = self.sock.recv_into(chunk)
            except OSError:
                break
            if not got:
                break
            chunks += chunk[:got]
        return chunks[:ERROR_BODY_MAX].decode("utf-8", "replace")

    def end_reply(self) -> None:
        """The reply was read to its end: bytes past it mean the framing is off."""
        if self._extra:
            self.broken = True
            raise TransientError("the reply has bytes after its body", url=self.url)

    # -- the connection's life -----------------------------------------------------------
    @property
    def reusable(self) -> bool:
        return not self.broken and self.keep_alive and not self._extra

    def alive(self) -> bool:
        """Idle and still open: no byte waiting (an idle connection gets none) and no FIN."""
        if not self.reusable:
            return False
        try:
            poll = select.poll()
            poll.register(self.sock.fileno(), select.POLLIN)
            return not poll.poll(0)  # readable: closed by the server, or bytes nobody asked for
        except (OSError, ValueError):  # closed under us
            return False

    def abort(self) -> None:
        """Fail the exchange in progress (from any thread): a blocked receive returns."""
        self.broken = True
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.broken = True
        try:
            self.sock.close()
        except OSError:
            pass

    # -- internals -----------------------------------------------------------------------
    def _recv(self, out: memoryview) -> int:
        return self._received(lambda: self.sock.recv_into(out))

    def _recvmsg(self, outs: list[memoryview]) -> int:
        return self._received(lambda: self.sock.recvmsg_into(outs, 0, socket.MSG_WAITALL)[0])

    def _received(self, receive: Callable[[], int]) -> int:
        """Bytes ``receive`` got (> 0); a timeout, reset or end of stream raised as
        `TransientError`."""
        try:
            got = receive()
        except (TimeoutError, BlockingIOError, _ssl.SSLWantReadError) as exc:
            raise self.fail(f"no data for {self.timeout:g} s (timeout)") from exc
        except OSError as exc:
            raise self.fail(f"connection closed: {exc}") from exc
        if not got:
            raise self.fail("connection closed by the server")
        return got

    def fail(self, message: str) -> TransientError:
        """The error for a broken exchange (to raise); the connection is not reused."""
        self.broken = True
        return TransientError(message, url=self.url)


def parse_headers(head: bytes, names: Sequence[bytes]) -> dict[str, str]:
    """The headers ``names`` (lower case) of a reply head, found by ``find`` (servers send
    a dozen more; splitting them all costs more than the request)."""
    low = head.lower()
    found: dict[str, str] = {}
    for name in names:
        at = low.find(b"\r\n" + name + b":")
        if at >= 0:
            start = at + len(name) + 3
            stop = head.find(b"\r\n", start)
            found[name.decode()] = (
                head[start : None if stop < 0 else stop].strip().decode("latin-1")
            )
    return found


class _Threads:
    """Daemon receiver threads, as many as exchanges in flight (up to ``limit``): a thread
    blocked on a far server never holds up the interpreter's exit, and one idle for
    `THREAD_IDLE_S` (or told to by `close`) ends.

    ``_idle`` counts threads waiting for a job: each releases it once before it waits, a
    `submit` takes one (else starts a thread), and a thread may end only by taking one
    back itself, so a job never waits for a busy thread while another could be started.
    """

    def __init__(self, limit: int) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._limit = limit
        self._threads = 0
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((future, fn))
        if not self._idle.acquire(blocking=False):  # nobody waiting: one more thread
            with self._lock:
                if self._threads < self._limit:
                    self._threads += 1
                    tls_thread(self._serve, name="farfeed-recv").start()
        return future

    def close(self) -> None:
        """Let every thread end once the jobs queued before are done."""
        with self._lock:
            for _ in range(self._threads):
                self._jobs.put(None)

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=THREAD_IDLE_S)
            except queue.Empty:
                if not self._idle.acquire(blocking=False):
                    continue  # a submit counted on us: its job is in the queue
                with self._lock:
                    self._threads -= 1
                return
            if job is None:
                with self._lock:
                    self._threads -= 1
                return
            future, fn = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                    future.set_exception(exc)
            del job, future, fn
            self._idle.release()


_Job = tuple[concurrent.futures.Future, Callable[[], object]]


class ConnectionPool:
    """Keep-alive connections to one origin, and the threads that drive them.

    Made lazily in the process and event loop that use it (never shared across ``fork``):
    at most ``options.connections`` exchanges at once.
    """

    def __init__(self, origin: str, options: StoreOptions, *, display: str) -> None:
        parts = urlsplit(origin)
        self.host = parts.hostname or "localhost"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.options = options
        self.display = display
        self._ssl = tls_context(options) if self.tls else None
        self._idle: list[Connection] = []
        self._early: asyncio.Future[Connection] | None = None  # connect_ahead's connection
        self._gate: asyncio.Semaphore | None = None
        self._threads: _Threads | None = None
        self._owner: tuple[int, asyncio.AbstractEventLoop] | None = None

    async def run(self, exchange: Callable[[Connection], T]) -> T:
        """``exchange(connection)`` in a receiver thread, on an idle connection or a new
        one; the connection is kept when the exchange leaves it reusable."""
        self._check_owner()
        assert self._gate is not None and self._threads is not None
        async with self._gate:
            conn = await self._connection()
            job = self._threads.submit(lambda: exchange(conn))
            try:
                result = await asyncio.shield(asyncio.wrap_future(job))
            except asyncio.CancelledError:
                if not job.cancel():  # running: make it let go of the caller's buffers
                    conn.abort()
                    concurrent.futures.wait([job], timeout=RELEASE_S)
                conn.close()
                raise
            except BaseException:
                conn.close()  # mid-reply, or an error reply: not reused
                raise
            if conn.reusable:
                self._idle.append(conn)
            else:
                conn.close()
            return result

    def connect_ahead(self) -> None:
        """Start opening a connection now, for the next exchange that finds none idle: its
        TCP (and TLS) handshake then crosses the link while the caller still plans its first
        request. Its error, if any, is that exchange's."""
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
            idle += [c for c in done if isinstance(c, Connection)]
        if mine:
            for conn in idle:
                conn.close()
            if self._threads is not None:
                self._threads.close()
                self._owner = None  # a later exchange starts afresh

    def _check_owner(self) -> None:
        owner = (os.getpid(), asyncio.get_running_loop())
        if self._owner != owner:  # a new process or loop: the old sockets are not ours
            self._idle = []
            self._early = None
            self._gate = asyncio.Semaphore(self.options.connections)
            self._threads = _Threads(self.options.connections + 1)  # + connect_ahead's
            self._owner = owner

    async def _connection(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.alive():
                return conn
            conn.close()  # closed by the server while idle
        early, self._early = self._early, None
        if early is not None:
            conn = await early
            if conn.alive():
                return conn
            conn.close()
        return await self._connect()

    async def _connect(self) -> Connection:
        assert self._threads is not None
        job = self._threads.submit(self._open)
        try:
            return await asyncio.shield(asyncio.wrap_future(job))
        except asyncio.CancelledError:
            job.add_done_callback(_close_opened)
            raise

    def _open(self) -> Connection:
        """Connect (and shake hands) in a receiver thread; on plain TCP blocking from then
        on, with the timeout in the kernel."""
        timeout = self.options.timeout
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as exc:
            raise TransientError(
                f"network error: cannot connect to {self.host}:{self.port}: "
                f"{type(exc).__name__}: {exc}",
                url=self.display,
            ) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
            if self._ssl is None:  # blocking, so that MSG_WAITALL waits; the kernel times out
                sock.settimeout(None)
                limit = struct.pack("ll", int(timeout), int((timeout % 1) * 1e6))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
            # TLS keeps Python's timeout: OpenSSL retries a read the kernel timed out
        except _ssl.SSLCertVerificationError as exc:
            sock.close()
            raise certificate_error(exc.verify_message, self.display) from exc
        except OSError as exc:
            sock.close()
            raise TransientError(
                f"network error: TLS handshake failed: {type(exc).__name__}: {exc}",
                url=self.display,
            ) from exc
        return Connection(sock, self.display, tls=self._ssl is not None, timeout=timeout)


def _close_opened(job: concurrent.futures.Future[Connection]) -> None:
    """A connection opened for a caller that was cancelled meanwhile: nobody holds it."""
    if not job.cancelled() and job.exception() is None:
        job.result().close()


def tls_context(options: StoreOptions) -> _ssl.SSLContext:
    """The context for https: the options' CA (or the system's); ``ssl=False`` keeps TLS
    but skips the certificate check."""
    trust = options.ssl_context()
    if isinstance(trust, _ssl.SSLContext):
        return trust
    context = _ssl.create_default_context()
    if trust is False:
        context.check_hostname = False
        context.verify_mode = _ssl.CERT_NONE
    return context


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def status_failure(head: Head, conn: Connection) -> str:
    """The message of an error reply: its JSON ``error`` text, or its first line."""
    message = conn.read_error_body(head).strip()
    try:
        parsed = json.loads(message)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            return str(parsed["error"])
    except ValueError:
        pass
    return message.splitlines()[0][:200] if message else ""
