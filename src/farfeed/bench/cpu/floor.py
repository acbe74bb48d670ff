"""The floor: whole shards pulled with plain GETs, the cheapest a client can be.

The gateway answers ``GET /DATASET/SHARD.tar`` with ``sendfile``; the reader below does
one ``recv_into`` per chunk into a preallocated buffer and nothing else, over keep-alive
connections. What it costs is the kernel's own copy: the bar every other mode is
divided by. `run_curl` is the same with curl (one connection), when it is on PATH.

Both floors receive into memory that starts on a cache line (`aligned_buffer`): a
``bytearray`` of a MiB or more comes from ``mmap`` with its bytes 16 past a page start,
and the kernel's copy into such memory cost about 3x more on the box this was measured
on (0.7 instead of 0.2 CPU-s/GB), which would make the floor depend on malloc's luck.
"""

from __future__ import annotations

import ctypes
import os
import queue
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from farfeed.bench.cpu.procstat import snapshot, tree_delta
from farfeed.errors import FarfeedError

BUFFER = 1 << 20  # bytes per recv_into
ALIGN = 64  # bytes: a cache line; where the floors' memory starts


def aligned_buffer(nbytes: int) -> memoryview:
    """``nbytes`` of zeroed, writable memory (a ``bytearray``'s) starting on an `ALIGN` boundary."""
    raw = bytearray(nbytes + ALIGN - 1)
    skip = -ctypes.addressof(ctypes.c_char.from_buffer(raw)) % ALIGN
    return memoryview(raw)[skip : skip + nbytes]


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of an ``http://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise FarfeedError(f"the floor reader speaks plain http only, got {url!r}")
    return parts.hostname, parts.port or 80


def read_shards(
    url: str,
    shards: Sequence[str],
    *,
    connections: int,
    on_bytes: Callable[[int], None],
    buffer: int = BUFFER,
    into: memoryview | None = None,
) -> int:
    """GET every ``url/SHARD`` whole, over ``connections`` keep-alive sockets (threads taking
    shards from one queue); ``on_bytes(n)`` after each ``recv_into``. Bytes of bodies read.

    ``into`` (one connection): each body lands in its own place there (wrapping round), as a
    loader's bytes must, instead of every ``recv_into`` reusing the same cache-warm
    ``buffer``: the storing floor, the kernel's copy into memory that is not in cache.
    Pass memory already touched once (as a loader's arena is), or page faults are counted.
    Each ``recv_into`` there waits for ``buffer`` bytes (``MSG_WAITALL``, as the loader's
    receive does), so ``on_bytes`` still comes every MiB, not once per body; each body
    starts on an `ALIGN` boundary (from a ``into`` that does: see `aligned_buffer`)."""
    host, port = host_port(url)
    base = urlsplit(url).path.rstrip("/")
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for shard in shards:
        todo.put(f"{base}/{shard}")
    errors: list[BaseException] = []
    totals: list[int] = []

    def worker() -> None:
        try:
            keep = into is not None
            buf = into if into is not None else aligned_buffer(buffer)
            totals.append(_pull(host, port, todo, on_bytes, buf, keep, buffer))
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    if into is not None and connections != 1:
        raise FarfeedError("a storing floor reads over one connection (connections=1)")
    if into is not None and len(into) < buffer:
        raise FarfeedError(f"the arena ({len(into)} B) must hold one read of {buffer} B")
    threads = [threading.Thread(target=worker) for _ in range(max(1, connections))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise FarfeedError(f"floor reader failed: {errors[0]!r}") from errors[0]
    return sum(totals)


def _pull(
    host: str,
    port: int,
    todo: queue.SimpleQueue[str],
    on_bytes: Callable[[int], None],
    view: memoryview,
    keep: bool = False,
    chunk: int = BUFFER,
) -> int:
    total = at = 0
    with socket.create_connection((host, port)) as sock:
        while True:
            try:
                path = todo.get_nowait()
            except queue.Empty:
                return total
            request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
            sock.sendall(request.encode())
            length, body = _read_head(sock, path)
            if body:
                on_bytes(len(body))
            left = length - len(body)
            while left:
                if keep:  # the next place in the arena, wrapping round
                    size = min(left, chunk)
                    if at + size > len(view):
                        at = 0
                    n = sock.recv_into(view[at : at + size], size, socket.MSG_WAITALL)
                    at += n
                    if n == left:  # the body's end: the next one starts on a cache line
                        at += -at % ALIGN
                else:
                    n = sock.recv_into(view, min(left, len(view)))
                if n == 0:
                    raise FarfeedError(f"connection closed with {left} bytes of {path} unread")
                left -= n
                on_bytes(n)
            total += length


def _read_head(sock: socket.socket, path: str) -> tuple[int, bytes]:
    """(Content-Length, body bytes read with the head) of one 200 response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise FarfeedError(f"connection closed before the response to GET {path}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200"):
        raise FarfeedError(f"GET {path}: {lines[0]!r}")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if "content-length" not in fields:
        raise FarfeedError(f"GET {path}: no Content-Length in {fields!r}")
    return int(fields["content-length"]), body


def curl_path() -> str | None:
    """The curl executable, or None."""
    return shutil.which("curl")


def run_curl(
    url: str,
    shards: Sequence[str],
    *,
    gateway_pid: int | None,
    wan_pid: int | None,
    timeout: float,
) -> dict[str, Any]:
    """``curl -s -o /dev/null`` of every shard in turn, over one keep-alive connection.

    curl has no hook to start counting later, so its window is the sum of its transfers'
    own times (``%{time_total}``: no process start-up in it), and its start-up CPU, measured
    apart (a curl of ``/healthz`` just before), is taken off its CPU. The gateway's and the
    emulator's CPU are counted over the whole run (they idle while curl starts)."""
    curl = curl_path()
    if curl is None:
        raise FarfeedError("curl is not on PATH")
    base = url.rstrip("/")
    flags = ["-sS", "--fail", "-w", "%{size_download} %{time_total}\\n"]
    parts = urlsplit(base)
    healthz = f"{parts.scheme}://{parts.netloc}/healthz"
    _, idle_cpu = _curl([curl, *flags, healthz, "-o", os.devnull], timeout)
    cmd = [curl, *flags]
    for shard in shards:
        cmd += [f"{base}/{shard}", "-o", os.devnull]
    sites = (snapshot([gateway_pid]), snapshot([wan_pid]))
    out, cpu = _curl(cmd, timeout)
    ends = (snapshot([gateway_pid]), snapshot([wan_pid]))
    transfers = [line.split() for line in out.decode().splitlines() if line.strip()]
    received = sum(int(size) for size, _ in transfers)
    return {
        "total_bytes": received,
        "window_bytes": received,
        "window_s": sum(float(seconds) for _, seconds in transfers),
        "startup_s": 0.0,
        "client_cpu_s": max(cpu - idle_cpu, 0.0),
        "gateway_cpu_s": tree_delta(sites[0], ends[0]),
        "wan_cpu_s": tree_delta(sites[1], ends[1]) if wan_pid else None,
        "window": "transfers only",
    }


def _curl(cmd: list[str], timeout: float) -> tuple[bytes, float]:
    """(stdout, CPU seconds) of one curl; FarfeedError when it fails."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)  # its own rusage, not all children's
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if proc.returncode != 0:
        raise FarfeedError(f"curl exited {proc.returncode}: {err.decode(errors='replace')[-500:]}")
    return out, usage.ru_utime + usage.ru_stime
