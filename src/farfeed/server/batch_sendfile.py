"""Batch-get frames sent with ``sendfile`` from worker threads: payload bytes stay in the kernel.

A response is a row of frames (a 12-byte header, then one range of a file) and the trailer.
`send_frames` hands the row to short worker-thread jobs (`push`) that write straight to the
connection's socket, through a ``dup`` of it (so a socket the loop closes meanwhile can never
be mistaken for a newer file with the same number):

- a range of ``SMALL_FRAME`` bytes or more goes out with ``os.sendfile``, its header just
  before it with ``send(MSG_MORE)`` so the two share packets;
- runs of smaller frames are read with ``preadv`` into one buffer and sent with one ``send``:
  for a few KiB one more syscall costs more than the copy. Measured on loopback (sending
  thread's CPU-s/GB, sendfile vs copy): 4 KiB 2.0 vs 1.4, 8 KiB 1.1 vs 0.8, 16 KiB 0.59
  vs 0.63, 64 KiB 0.28 vs 0.44; so the line is at 16 KiB.

The socket is non-blocking. When it is full the job first waits for room, up to
``FULL_WAIT_S`` in all: a client that keeps up makes room within a millisecond, and a trip
through the loop costs the gateway about that much CPU. When that is spent, the job stops
and returns the next few KiB (read in the thread); the loop writes them through the
transport and waits until the transport's buffer is empty (high-water mark 0), that is until
the client has taken them, then starts the next job. So at any moment only the loop or one
job writes (bytes can never be reordered), no thread waits on a slow client for more than
``FULL_WAIT_S`` per job, and every disk read (``sendfile`` from a cold file blocks in the
kernel) happens in a worker thread, never on the event loop.
What the threads send bypasses aiohttp's writer: its byte count (the access log's size)
holds only the headers and the pieces the loop wrote.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import struct
import threading
import time
from collections import OrderedDict

from aiohttp import web

FRAME = struct.Struct(">IQ")
TRAILER_INDEX = 0xFFFFFFFF
TRAILER = FRAME.pack(TRAILER_INDEX, 0)
#: Open files kept per request while streaming (shards are read many times in one batch).
MAX_OPEN_FILES = 64
#: Ranges shorter than this are copied (``preadv`` + one ``send`` per run), longer ones sendfile'd.
SMALL_FRAME = 16 * 1024
#: Size of the buffer that collects runs of small frames.
COPY_BYTES = 256 * 1024
#: Bytes read in the thread for the loop to write when the socket is full.
PIECE_BYTES = 16 * 1024
#: Bytes one worker-thread job sends at most before it hands back to the loop.
JOB_BYTES = 8 * 1024 * 1024
#: Seconds one job may wait, in all, for room in a full socket before it hands back to the loop.
#: (With a send buffer smaller than one segment in flight, room comes only with the client's
#: delayed ACK, ~40 ms: the job waits this long, then the loop waits as it did before.)
FULL_WAIT_S = 0.01
_MSG_MORE = getattr(socket, "MSG_MORE", 0)

Item = tuple[str, int, int]  # real path, offset, length


class OpenFiles:
    """What one request opened (a few files, LRU, and maybe a socket). Reads run under `lock`,
    so `close` never pulls a file from under a read still running in a worker thread."""

    def __init__(self) -> None:
        self._fds: OrderedDict[str, int] = OrderedDict()
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None

    def fd(self, real: str) -> int:
        fd = self._fds.get(real)
        if fd is not None:
            self._fds.move_to_end(real)
            return fd
        if len(self._fds) >= MAX_OPEN_FILES:
            os.close(self._fds.popitem(last=False)[1])
        fd = self._fds[real] = os.open(real, os.O_RDONLY)
        return fd

    def close(self) -> None:
        with self.lock:
            while self._fds:
                os.close(self._fds.popitem()[1])
            if self.sock is not None:
                self.sock.close()
                self.sock = None


def sendfile_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """A non-blocking ``dup`` of the connection's socket when frames may be sendfile'd into
    it (plain TCP); None for TLS (the bytes must be encrypted), without ``os.sendfile``, or
    for transports other than asyncio's own (uvloop's): those get the copying path."""
    if not hasattr(os, "sendfile") or not isinstance(transport, asyncio.WriteTransport):
        return None
    if transport.get_extra_info("sslcontext") is not None or transport.get_extra_info("ssl_object") is not None:
        return None
    raw = transport.get_extra_info("socket")
    if raw is None or raw.type != socket.SOCK_STREAM or raw.fileno() < 0:
        return None
    try:
        sock = socket.socket(raw.family, raw.type, raw.proto, os.dup(raw.fileno()))
    except OSError:
        return None
    sock.setblocking(False)  # already so (one open file with the transport's), said again to be sure
    return sock


class FrameCursor:
    """Where a response stands: ``pos`` bytes into frame ``k`` (``k == len(items)``: the trailer)."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.k = 0
        self.pos = 0

    @property
    def done(self) -> bool:
        return self.k > len(self.items)

    def advance(self, n: int) -> None:
        self.pos += n
        while not self.done:
            size = FRAME.size + (self.items[self.k][2] if self.k < len(self.items) else 0)
            if self.pos < size:
                return
            self.pos -= size
            self.k += 1


class Room:
    """Waiting for room in a full non-blocking socket, ``wait_s`` seconds at most in all."""

    def __init__(self, sock: socket.socket, wait_s: float) -> None:
        self.sock = sock
        self.left = wait_s
        self._poll: select.poll | None = None

    def wait(self) -> bool:
        """True when the socket has room again within what is left of the wait."""
        if self.left <= 0:
            return False
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self.sock.fileno(), select.POLLOUT)
        t0 = time.monotonic()
        ready = self._poll.poll(self.left * 1000)
        self.left -= time.monotonic() - t0
        return bool(ready)

    def send(self, data: bytes | memoryview, flags: int) -> int:
        """Send ``data``, waiting for room while the wait lasts; the bytes sent. (One plain
        ``send`` when the socket has room, as it has for almost every frame header.)"""
        try:
            n = self.sock.send(data, flags)
        except BlockingIOError:
            n = 0
        while n < len(data) and self.wait():
            try:
                n += self.sock.send(memoryview(data)[n:], flags)
            except BlockingIOError:
                pass
        return n


def push(
    sock: socket.socket, cur: FrameCursor, files: OpenFiles, buf: bytearray, *, wait_s: float = FULL_WAIT_S
) -> bytes:
    """One worker-thread job: send from ``cur`` until the end, ``JOB_BYTES`` or a socket that
    stays full (``wait_s`` in all, see the module docstring).

    Returns the bytes that follow (already taken off ``cur``) for the loop to write through
    the transport when the socket was full, else ``b""``. OSError when a file shrank.
    """
    room = Room(sock, wait_s)
    with files.lock:
        out, items, sent = sock.fileno(), cur.items, 0
        while not cur.done and sent < JOB_BYTES:
            k, pos = cur.k, cur.pos
            if k == len(items) or items[k][2] < SMALL_FRAME:
                size, then_sendfile = _gather(cur, memoryview(buf), files)
                n = room.send(memoryview(buf)[:size], _MSG_MORE if then_sendfile else 0)
                cur.advance(size)
                if n < size:
                    return bytes(buf[n:size])
                sent += n
                continue
            real, offset, length = items[k]  # a large frame: header, then sendfile
            if pos < FRAME.size:
                header = FRAME.pack(k, length)[pos:]
                n = room.send(header, _MSG_MORE)
                cur.pos += len(header)
                if n < len(header):
                    return header[n:]
                pos = FRAME.size
            fd = files.fd(real)
            while pos < FRAME.size + length:
                try:
                    n = os.sendfile(out, fd, offset + pos - FRAME.size, FRAME.size + length - pos)
                except BlockingIOError:
                    if room.wait():
                        continue
                    n = min(PIECE_BYTES, FRAME.size + length - pos)
                    piece = os.pread(fd, n, offset + pos - FRAME.size)
                    if len(piece) < n:
                        raise OSError(f"{real} shrank while being sent") from None
                    cur.advance(pos + n - cur.pos)
                    return piece
                if n <= 0:
                    raise OSError(f"{real} shrank while being sent")
                pos += n
                sent += n
            cur.k, cur.pos = k + 1, 0
        return b""


def _gather(cur: FrameCursor, view: memoryview, files: OpenFiles) -> tuple[int, bool]:
    """Copy headers and small payloads from ``cur`` (not moved) into ``view``; stop before a
    large payload (then True), at the end of the response or when ``view`` is full."""
    k, pos, used = cur.k, cur.pos, 0
    items = cur.items
    while k <= len(items) and used < len(view):
        if k < len(items):
            real, offset, length = items[k]
            header = FRAME.pack(k, length)
        else:
            real, offset, length, header = "", 0, 0, TRAILER
        if pos < FRAME.size:
            n = min(FRAME.size - pos, len(view) - used)
            view[used : used + n] = header[pos : pos + n]
            used, pos = used + n, pos + n
            if pos < FRAME.size:
                break
        if length >= SMALL_FRAME:
            return used, True
        done = pos - FRAME.size
        n = min(length - done, len(view) - used)
        fd = files.fd(real) if n else -1
        while n:
            got = os.preadv(fd, [view[used : used + n]], offset + done)
            if got <= 0:
                raise OSError(f"{real} shrank while being sent")
            used, done, n = used + got, done + got, n - got
        if done < length:
            break
        k, pos = k + 1, 0
    return used, False


async def send_frames(
    request: web.Request, resp: web.StreamResponse, sock: socket.socket, items: list[Item], files: OpenFiles
) -> None:
    """Send every frame and the trailer of a prepared response through ``sock`` (see above)."""
    transport = request.transport
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        raise ConnectionResetError("client went away")
    loop = asyncio.get_running_loop()
    low, high = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=0)  # pause_writing whenever it holds a byte: drain() waits for empty
    try:
        await request.writer.drain()  # the status line and headers go first
        cur = FrameCursor(items)
        buf = bytearray(COPY_BYTES)
        while not cur.done:
            if transport.is_closing():
                raise ConnectionResetError("client went away")
            piece = await loop.run_in_executor(None, push, sock, cur, files, buf)
            if piece:
                await resp.write(piece)
                await request.writer.drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)
