"""The emulator's own ceiling: what it can carry on this machine, and its CPU per GB.

    farfeed bench wan --rtt-ms 0,15 --connections 1,16 --seconds 5 --repeats 3

A source server sends an endless stream per connection, through a `WanProcess` (no
bandwidth cap, a large window, so the emulator itself is the limit), to client threads
that count bytes. The same load without the emulator (``direct``) shows what the
machine's loopback and the load generator allow; a figure close to it means the
emulator was not the bottleneck. Other benchmarks state they stayed below these.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from farfeed.errors import ConfigError
from farfeed.wan import Link, WanProcess

BLOCK = 4 << 20  # bytes per send / receive call


@dataclass(frozen=True)
class CeilingRun:
    """One measurement: ``throughput`` bytes/s over ``seconds``; CPU of the emulator process
    (None for a direct run, which has none)."""

    rtt: float | None  # None: direct, no emulator
    connections: int
    seconds: float
    bytes: int
    throughput: float
    cpu_seconds: float | None
    cpu_per_gb: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        return asdict(self)


class _EndlessSource:
    """Sends zeros to every connection until it closes; one thread per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.block = memoryview(bytes(BLOCK))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._send, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket) -> None:
        with conn:
            try:
                while True:
                    conn.sendall(self.block)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


def _receive(sock: socket.socket, counts: list[int], index: int, stop: threading.Event) -> None:
    buf = bytearray(BLOCK)
    try:
        while not stop.is_set():
            n = sock.recv_into(buf)
            if n == 0:
                return
            counts[index] += n
    except OSError:
        return


def measure_ceiling(
    *,
    rtt: float | None,
    connections: int,
    seconds: float = 5.0,
    warmup: float = 1.0,
    window: int = 64 << 20,
) -> CeilingRun:
    """Carry endless streams on ``connections`` connections for ``warmup + seconds``; count
    the last ``seconds``. ``rtt=None`` measures the same load without the emulator."""
    if not isinstance(connections, int) or connections < 1:
        raise ConfigError(f"connections must be an int >= 1, got {connections!r}")
    if seconds <= 0 or warmup < 0:
        raise ConfigError(f"seconds must be > 0 and warmup >= 0, got {seconds!r}, {warmup!r}")
    source = _EndlessSource()
    wan = (
        None
        if rtt is None
        else WanProcess.start(upstream=source.address, link=Link(rtt=rtt, window=window))
    )
    target = source.address if wan is None else wan.address
    stop = threading.Event()
    counts = [0] * connections
    socks = [socket.create_connection(target) for _ in range(connections)]
    threads = [
        threading.Thread(target=_receive, args=(sock, counts, i, stop), daemon=True)
        for i, sock in enumerate(socks)
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(warmup + (2 * rtt if rtt else 0.0))
        cpu0 = wan.stats().cpu_seconds if wan else 0.0
        bytes0, t0 = sum(counts), time.perf_counter()
        time.sleep(seconds)
        carried, elapsed = sum(counts) - bytes0, time.perf_counter() - t0
        cpu = (wan.stats().cpu_seconds if wan else 0.0) - cpu0
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        if wan is not None:
            wan.stop()
        source.close()
        for thread in threads:
            thread.join(timeout=5)
    direct = wan is None
    return CeilingRun(
        rtt=rtt,
        connections=connections,
        seconds=elapsed,
        bytes=carried,
        throughput=carried / elapsed,
        cpu_seconds=None if direct else cpu,
        cpu_per_gb=None if direct or not carried else cpu / (carried / 1e9),
    )


def median_ceiling_run(runs: list[CeilingRun]) -> dict[str, Any]:
    """Medians of repeated runs of one configuration, with every run kept."""
    first = runs[0]
    cpus = [r.cpu_per_gb for r in runs if r.cpu_per_gb is not None]
    return {
        "rtt": first.rtt,
        "connections": first.connections,
        "throughput": statistics.median(r.throughput for r in runs),
        "cpu_per_gb": None if first.cpu_per_gb is None else statistics.median(cpus),
        "runs": [r.to_dict() for r in runs],
    }


def measure_ceilings(
    *,
    rtts: list[float | None],
    connections: list[int],
    seconds: float = 5.0,
    repeats: int = 3,
    window: int = 64 << 20,
) -> list[dict[str, Any]]:
    """Every (rtt, connections) pair ``repeats`` times, interleaved so a noisy moment hits
    every configuration alike; the medians of each pair (`median_ceiling_run`), in order."""
    configs = [(rtt, n) for rtt in rtts for n in connections]
    runs: dict[tuple[float | None, int], list[CeilingRun]] = {c: [] for c in configs}
    for _ in range(repeats):
        for rtt, n in configs:
            runs[(rtt, n)].append(
                measure_ceiling(rtt=rtt, connections=n, seconds=seconds, window=window)
            )
    return [median_ceiling_run(runs[c]) for c in configs]


def format_ceilings(results: list[dict[str, Any]], *, repeats: int) -> str:
    """The medians as a small text table."""
    lines = [f"{'path':>14} {'conns':>5} {'GB/s':>7} {'CPU s/GB':>9}   (medians of {repeats})"]
    for r in results:
        path = "direct" if r["rtt"] is None else f"wan {r['rtt'] * 1000:g} ms"
        cpu = "-" if r["cpu_per_gb"] is None else f"{r['cpu_per_gb']:.2f}"
        lines.append(f"{path:>14} {r['connections']:>5} {r['throughput'] / 1e9:>7.2f} {cpu:>9}")
    return "\n".join(lines)
