"""Serve the gateway until SIGTERM/SIGINT: one process, or N workers sharing the port.

With ``workers > 1`` each worker is a spawned process with its own listening socket on the
same port (``SO_REUSEPORT``: the kernel spreads connections over them). The server is
stateless and upload staging lives on disk, so any worker can take any request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import multiprocessing
import os
import queue
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import wait as wait_for
from pathlib import Path
from typing import Any

from aiohttp import web

from farfeed.errors import ConfigError, FarfeedError
from farfeed.server.auth import TokenTable
from farfeed.server.bucket import BucketSettings, check_bucket, is_bucket_url
from farfeed.server.bucket_app import app_for
from farfeed.server.connections import aiohttp_keepalive, listen
from farfeed.server.context import METRICS
from farfeed.server.limits import ConnectionLimits, ServerLimits, raise_open_file_limit
from farfeed.server.logs import AccessLogger, install_log_filters

log = logging.getLogger("farfeed.server")
DEFAULT_PORT = 8470
#: Seconds a stopping gateway gives open requests to finish.
SHUTDOWN_TIMEOUT = 5.0


@dataclass(frozen=True)
class ServeOptions:
    """Everything `run` needs, checked up front (and sent as-is to worker processes)."""

    root: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tokens_file: str | None = None
    cert: str | None = None
    key: str | None = None
    allow_anonymous: bool = False
    workers: int = 1
    access_log: bool = False
    limits: ServerLimits = ServerLimits()
    connection_limits: ConnectionLimits = ConnectionLimits()
    #: For an ``s3://`` ROOT: how to reach the bucket and the block cache's size.
    bucket: BucketSettings | None = None

    def check(self) -> None:
        """ConfigError quoting the first bad option; also loads the tokens and the certificate."""
        if is_bucket_url(self.root):
            check_bucket(self.root, self.bucket or BucketSettings())  # connects later, at first read
        elif "://" in self.root:
            raise ConfigError(f"ROOT must be a directory or s3://BUCKET/PREFIX, got {self.root!r}")
        elif self.bucket is not None:
            raise ConfigError(f"S3 and cache options apply to an s3:// ROOT, not the folder {self.root!r}")
        elif not os.path.isdir(self.root):
            raise ConfigError(f"ROOT must be an existing directory, got {self.root!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0..65535, got {self.port!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or not 1 <= self.workers <= 256:
            raise ConfigError(f"--workers must be 1..256, got {self.workers!r}")
        if (self.cert is None) != (self.key is None):
            raise ConfigError(f"--cert and --key go together, got cert={self.cert!r} key={self.key!r}")
        if self.tokens_file is None and not self.allow_anonymous and not is_loopback(self.host):
            raise ConfigError(
                f"--host {self.host!r} is not loopback: without --tokens anyone could read and write; "
                "give --tokens FILE, or --allow-anonymous if you mean it"
            )
        self.load_tokens()
        self.ssl_context()

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    def load_tokens(self) -> TokenTable | None:
        return None if self.tokens_file is None else TokenTable.load(self.tokens_file)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server TLS context from --cert/--key; ConfigError when they do not load."""
        if self.cert is None or self.key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS certificate {self.cert!r} / key {self.key!r}: {exc}") from None
        return context


def is_loopback(host: str) -> bool:
    """True when ``host`` only ever means this machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A bound (not yet listening) TCP socket; ConfigError naming the address when it fails."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise ConfigError(f"cannot resolve --host {host!r}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def listening_line(options: ServeOptions, port: int) -> str:
    """The one line a started gateway prints (parsed by `GatewayProcess`)."""
    host = f"[{options.host}]" if ":" in options.host and not options.host.startswith("[") else options.host
    if is_bucket_url(options.root):
        from farfeed.store.access import redact_url

        shown = redact_url(options.root)
    else:
        shown = os.path.abspath(options.root)
    return f"farfeed gateway listening on {options.scheme}://{host}:{port} ({shown})"


def run(
    root: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    tokens_file: str | Path | None = None,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    allow_anonymous: bool = False,
    workers: int = 1,
    access_log: bool = False,
    limits: ServerLimits = ServerLimits(),
    connection_limits: ConnectionLimits = ConnectionLimits(),
    bucket: BucketSettings | None = None,
) -> None:
    """Serve ``root`` (a folder, or ``s3://BUCKET/PREFIX`` read with ``bucket``'s settings)
    until SIGTERM or SIGINT (blocking); used by ``farfeed serve``."""
    options = ServeOptions(
        root=str(root), host=host, port=port, tokens_file=_str(tokens_file), cert=_str(cert),
        key=_str(key), allow_anonymous=allow_anonymous, workers=workers, access_log=access_log,
        limits=limits, connection_limits=connection_limits, bucket=bucket,
    )
    options.check()
    _setup_logging()
    _raise_file_limit(options)
    if options.workers == 1:
        sock = bind_socket(options.host, options.port, reuse_port=False)
        line = listening_line(options, sock.getsockname()[1])
        asyncio.run(serve_socket(options, sock, on_ready=lambda: print(line, flush=True)))
    else:
        _supervise(options)


def _str(value: str | Path | None) -> str | None:
    return None if value is None else str(value)


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_log_filters()


def _raise_file_limit(options: ServeOptions) -> None:
    """Raise the soft open-file limit to the hard one and say what the connection cap is."""
    before, after = raise_open_file_limit()
    cap = options.connection_limits.connection_cap()
    raised = f" (raised from {before})" if after != before else ""
    log.info("open-file limit %d%s; at most %d connections per process", after, raised, cap)
    if cap > after * 3 // 4:
        log.warning(
            "--max-connections %d leaves under a quarter of the %d file descriptors for files; "
            "accept() may fail (raise ulimit -n)", cap, after,
        )


async def serve_socket(
    options: ServeOptions, sock: socket.socket, *, on_ready: Callable[[], None], parent_pid: int | None = None
) -> None:
    """Serve on a bound socket until SIGTERM/SIGINT (or until the parent process is gone)."""
    app = app_for(options.root, tokens=options.load_tokens(), limits=options.limits, bucket=options.bucket)
    conn = options.connection_limits
    access = logging.getLogger("aiohttp.access") if options.access_log else None
    runner = web.AppRunner(
        app, access_log=access, access_log_class=AccessLogger, shutdown_timeout=SHUTDOWN_TIMEOUT,
        keepalive_timeout=aiohttp_keepalive(conn),
    )
    await runner.setup()
    listener = None
    try:
        listener = await listen(
            runner, sock, limits=conn, metrics=app[METRICS], ssl_context=options.ssl_context()
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        on_ready()
        if parent_pid is None:
            await stop.wait()
        else:
            while not stop.is_set() and os.getppid() == parent_pid:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
    finally:
        if listener is not None:
            await listener.close()
        await runner.cleanup()


def _worker_main(options: ServeOptions, parent_pid: int, ready: Any) -> None:
    """One worker process: its own SO_REUSEPORT socket on the shared port."""
    _setup_logging()
    raise_open_file_limit()
    try:
        sock = bind_socket(options.host, options.port, reuse_port=True)
    except FarfeedError as exc:
        ready.put(("error", str(exc)))
        raise SystemExit(1) from None
    asyncio.run(serve_socket(options, sock, on_ready=lambda: ready.put(("ready", os.getpid())), parent_pid=parent_pid))


def _supervise(options: ServeOptions, *, start_timeout: float = 60.0) -> None:
    """Start the workers, print the listening line once all listen, stop them on a signal."""
    reserve = bind_socket(options.host, options.port, reuse_port=True)  # fixes the port for --port 0
    options = replace(options, port=reserve.getsockname()[1])
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(options, os.getpid(), ready), name=f"farfeed-worker-{i}") for i in range(options.workers)]
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        for p in procs:
            p.start()
        _await_workers(procs, ready, start_timeout)
        reserve.close()
        print(listening_line(options, options.port), flush=True)
        while not stopping.is_set():
            if wait_for([p.sentinel for p in procs], timeout=0.5):
                failed = [p for p in procs if p.exitcode not in (None, 0, -signal.SIGTERM)]
                if failed:
                    raise FarfeedError(f"gateway worker {failed[0].name} exited with code {failed[0].exitcode}; stopping")
                break  # a worker was stopped (a signal to the whole group): stop them all
    finally:
        reserve.close()
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(SHUTDOWN_TIMEOUT + 2)
            if p.is_alive():
                p.kill()
                p.join()


def _await_workers(procs: list[Any], ready: Any, timeout: float) -> None:
    """Wait until every worker listens; FarfeedError when one fails, dies or is too slow."""
    deadline = time.monotonic() + timeout
    started = 0
    while started < len(procs):
        try:
            status, detail = ready.get(timeout=0.5)
        except queue.Empty:
            dead = [p for p in procs if p.exitcode is not None]
            if dead:
                raise FarfeedError(f"gateway worker {dead[0].name} exited with code {dead[0].exitcode} while starting") from None
            if time.monotonic() > deadline:
                raise FarfeedError(f"gateway workers did not start within {timeout:.0f} s") from None
            continue
        if status != "ready":
            raise ConfigError(f"a gateway worker failed to start: {detail}")
        started += 1
