"""What the kernel charges a sender for scattered ranges: the bound under any batch-get server.

    .venv/bin/python scripts/bench_send_ranges.py --rounds 3

No gateway, no HTTP, no event loop: one Python thread sends a page-cached file to a plain
reader process (``recv_into`` one 4 MiB buffer) over loopback, in one of these ways:

- ``whole``: the file with ``os.sendfile`` (what the gateway's GET does);
- ``ranges``: ~115 KB ranges in shuffled order, each a 12-byte frame header
  (``send(MSG_MORE)``) then ``os.sendfile``: batch-get's frames, in the tightest loop
  Python can write;
- ``ranges-bare``: the same ranges without the headers;
- ``sendmsg``: the framed ranges as ``sendmsg`` over an ``mmap`` of the file, 256 ranges
  (512 buffers) per call: one system call for many ranges, but the kernel copies the
  bytes rather than referencing the page cache.

Prints each way's MB/s and CPU-s/GB of the sending thread (user and system,
``RUSAGE_THREAD``) and of the reader, per round; the ways are interleaved within a round.
"""

from __future__ import annotations

import argparse
import mmap
import os
import random
import resource
import socket
import struct
import time
from pathlib import Path

FRAME = struct.Struct(">IQ")
WAYS = ("whole", "ranges", "ranges-bare", "sendmsg")
PER_SENDMSG = 256


def read_all(port: int, total: int) -> float:
    """Read ``total`` bytes from a connection to ``port``; this process's CPU seconds."""
    start = resource.getrusage(resource.RUSAGE_SELF)
    with socket.create_connection(("127.0.0.1", port)) as s:
        view, got = memoryview(bytearray(4 << 20)), 0
        while got < total:
            n = s.recv_into(view)
            if not n:
                break
            got += n
    end = resource.getrusage(resource.RUSAGE_SELF)
    return end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime


def send(way: str, sock: socket.socket, fd: int, size: int, ranges: list[tuple[int, int]]) -> None:
    out = sock.fileno()
    if way == "whole":
        pos = 0
        while pos < size:
            pos += os.sendfile(out, fd, pos, size - pos)
    elif way in ("ranges", "ranges-bare"):
        for k, (offset, length) in enumerate(ranges):
            if way == "ranges":
                sock.sendall(FRAME.pack(k, length), socket.MSG_MORE)
            pos = 0
            while pos < length:
                pos += os.sendfile(out, fd, offset + pos, length - pos)
    else:
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mapped:
            view = memoryview(mapped)
            for first in range(0, len(ranges), PER_SENDMSG):
                parts: list[bytes | memoryview] = []
                for k in range(first, min(first + PER_SENDMSG, len(ranges))):
                    offset, length = ranges[k]
                    parts += [FRAME.pack(k, length), view[offset : offset + length]]
                while parts:
                    sent = sock.sendmsg(parts)
                    while parts and sent >= len(parts[0]):
                        sent -= len(parts.pop(0))
                    if sent:
                        parts[0] = memoryview(parts[0])[sent:]
            del parts, view


def one(way: str, path: Path, ranges: list[tuple[int, int]]) -> str:
    size = path.stat().st_size
    framed = 0 if way in ("whole", "ranges-bare") else FRAME.size * len(ranges)
    total = (size if way == "whole" else sum(n for _, n in ranges)) + framed
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the reader
            os.close(rfd)
            os.write(wfd, repr(read_all(port, total)).encode())
            os._exit(0)
        os.close(wfd)
        conn, _ = listener.accept()
        fd = os.open(path, os.O_RDONLY)
        try:
            r0, w0 = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
            send(way, conn, fd, size, ranges)
            r1, wall = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter() - w0
        finally:
            os.close(fd)
            conn.close()
        os.waitpid(pid, 0)
        with os.fdopen(rfd, "rb") as f:
            reader = float(f.read())
    gb = total / 1e9
    user, system = (r1.ru_utime - r0.ru_utime) / gb, (r1.ru_stime - r0.ru_stime) / gb
    return (f"{way:12s} {gb / wall * 1e3:6.0f} MB/s  sender {user + system:.2f} CPU-s/GB "
            f"(user {user:.2f}, system {system:.2f})  reader {reader / gb:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=512, help="size of the file sent (default 512)")
    parser.add_argument("--range-bytes", type=int, default=115_000)
    parser.add_argument("--file", type=Path, default=Path("/tmp/farfeed-send-ranges.bin"))
    args = parser.parse_args()
    size = args.mib << 20
    if not args.file.exists() or args.file.stat().st_size != size:
        with open(args.file, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
    args.file.read_bytes()  # into the page cache
    ranges = [(offset, args.range_bytes) for offset in range(0, size - args.range_bytes, args.range_bytes)]
    random.Random(1).shuffle(ranges)
    print(f"{len(ranges)} ranges of {args.range_bytes:,} B from a {args.mib} MiB file; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    for r in range(args.rounds):
        for way in WAYS:
            print(f"[{r + 1}/{args.rounds}] {one(way, args.file, ranges)}", flush=True)


if __name__ == "__main__":
    main()
