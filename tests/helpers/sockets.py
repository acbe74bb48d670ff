"""Sockets for the emulator's tests: real loopback servers (echo, source, sink) and clients.

Blocking sockets in daemon threads: send/recv release the GIL, so these stay out of
the emulator's way. Every server binds port 0 and is closed by its fixture.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import TypeVar

#: Bytes the source sends: position i holds PATTERN[i % len(PATTERN)].
PATTERN = bytes((i * 7 + i // 251) % 256 for i in range(1 << 20))


def pattern_bytes(offset: int, length: int) -> bytes:
    """The source's bytes ``offset .. offset+length`` (for checking what arrived)."""
    out = bytearray()
    while length > 0:
        start = offset % len(PATTERN)
        piece = PATTERN[start : start + length]
        out += piece
        offset += len(piece)
        length -= len(piece)
    return bytes(out)


class ThreadedServer:
    """Accepts on 127.0.0.1:0 and runs ``handle(conn)`` in a thread per connection."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self._handle = handle
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._conns: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self._handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._closed = True
        self._sock.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def echo(conn: socket.socket) -> None:
    """Send back what arrives; close after the client's EOF."""
    while data := conn.recv(1 << 16):
        conn.sendall(data)


def source(conn: socket.socket) -> None:
    """For each 8-byte big-endian count N received, send the next N pattern bytes."""
    offset = 0
    view = memoryview(PATTERN + PATTERN)
    while header := conn.recv(8, socket.MSG_WAITALL):
        if len(header) < 8:
            return
        (count,) = struct.unpack(">Q", header)
        while count:
            start = offset % len(PATTERN)
            piece = view[start : start + min(count, len(PATTERN))]
            conn.sendall(piece)
            offset += len(piece)
            count -= len(piece)


class Sink:
    """Keeps every chunk it receives with its arrival time (monotonic), per connection."""

    def __init__(self) -> None:
        self.arrivals: list[list[tuple[float, bytes]]] = []
        self.done = threading.Event()

    def __call__(self, conn: socket.socket) -> None:
        chunks: list[tuple[float, bytes]] = []
        self.arrivals.append(chunks)
        while data := conn.recv(1 << 16):
            chunks.append((time.monotonic(), data))
        self.done.set()


def connect(address: tuple[str, int]) -> socket.socket:
    """A blocking client socket with Nagle off and a timeout that fails a hung test."""
    sock = socket.create_connection(address, timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def download(sock: socket.socket, count: int) -> list[tuple[float, int]]:
    """Ask the source for ``count`` bytes; return when each piece arrived: (perf_counter, bytes)."""
    sock.sendall(struct.pack(">Q", count))
    buf = bytearray(1 << 20)
    got = 0
    timeline: list[tuple[float, int]] = []
    while got < count:
        n = sock.recv_into(buf, min(len(buf), count - got))
        if n == 0:
            raise ConnectionError(f"source closed after {got} of {count} bytes")
        timeline.append((time.perf_counter(), n))
        got += n
    return timeline


def fetch(sock: socket.socket, count: int) -> bytes:
    """Ask the source for ``count`` bytes and return them as they arrived."""
    sock.sendall(struct.pack(">Q", count))
    received = bytearray()
    while len(received) < count:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"source closed after {len(received)} of {count} bytes")
        received += chunk
    return bytes(received)


def steady_rate(timelines: list[list[tuple[float, int]]], *, skip: float = 0.1) -> float:
    """Bytes/s of all timelines together: the least-squares slope of bytes received over
    time, leaving out the first ``skip`` of the bytes (the handshake, the first burst).

    A fit, not first-to-last: a window-limited stream arrives in bursts, one per RTT.
    """
    pieces = sorted(piece for timeline in timelines for piece in timeline)
    total = sum(n for _, n in pieces)
    points = []
    seen = 0
    for when, n in pieces:
        seen += n
        if seen > skip * total:
            points.append((when, seen))
    if len(points) < 2:
        raise ValueError("too few pieces to fit a rate")
    mean_t = sum(t for t, _ in points) / len(points)
    mean_b = sum(b for _, b in points) / len(points)
    covariance = sum((t - mean_t) * (b - mean_b) for t, b in points)
    variance = sum((t - mean_t) ** 2 for t, _ in points)
    return covariance / variance


def ping(sock: socket.socket, size: int = 100) -> float:
    """One small request/response on ``sock`` through an echo server, seconds."""
    start = time.perf_counter()
    sock.sendall(b"q" * size)
    got = 0
    while got < size:
        got += len(sock.recv(size - got))
    return time.perf_counter() - start


T = TypeVar("T")


def measure_until(measure: Callable[[], T], ok: Callable[[T], bool], *, attempts: int = 3) -> T:
    """Run a timing measurement until ``ok`` accepts it, at most ``attempts`` times; return the
    last result (the caller asserts on it).

    This machine is shared: another process can stall any of ours for tens of ms, which
    only ever adds delay. An emulator bug fails every attempt; a stall rarely hits twice.
    """
    result = measure()
    for _ in range(attempts - 1):
        if ok(result):
            break
        result = measure()
    return result
