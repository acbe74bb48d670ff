"""Faults: link cuts (reset, stall, scheduled), corrupted bytes, refused and reset upstreams,
half-close, and the stats that count them."""

from __future__ import annotations

import socket
import statistics
import struct
import time
from collections.abc import Callable

import numpy as np
import pytest
from helpers.sockets import (
    ThreadedServer,
    connect,
    download,
    fetch,
    measure_until,
    pattern_bytes,
    ping,
)

from farfeed.errors import ConfigError
from farfeed.wan import Link, WanEmulator, WanProcess, WanThread


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true (stats settle a moment after the sockets close)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_reset_cut_resets_every_connection_then_the_link_works(echo_server: ThreadedServer) -> None:
    with WanThread(upstream=echo_server.address, link=Link(rtt=0.010)) as wan:
        socks = [connect(wan.address) for _ in range(3)]
        for sock in socks:
            ping(sock)
        assert wan.emulator.stats().open_connections == 3
        wan.emulator.cut(mode="reset")
        for sock in socks:
            with pytest.raises(ConnectionResetError):
                sock.sendall(b"x")
                sock.recv(10)
            sock.close()
        assert wait_until(lambda: wan.emulator.stats().open_connections == 0)
        with connect(wan.address) as sock:
            assert ping(sock) < 1.0
        stats = wan.emulator.stats()
    assert stats.cuts == 1
    assert stats.failed_connections == 3
    assert stats.total_connections == 4


def test_reset_cut_with_a_duration_refuses_new_connections_until_it_ends(
    echo_server: ThreadedServer,
) -> None:
    with WanThread(upstream=echo_server.address, link=Link()) as wan:
        wan.emulator.cut(mode="reset", duration=0.5)
        start = time.monotonic()
        with pytest.raises(ConnectionError), connect(wan.address) as sock:
            sock.sendall(b"x")
            if not sock.recv(10):
                raise ConnectionError("closed")
        time.sleep(max(0.0, 0.55 - (time.monotonic() - start)))
        with connect(wan.address) as sock:
            ping(sock)


def test_stall_holds_traffic_for_its_duration_and_keeps_connections(
    echo_server: ThreadedServer,
) -> None:
    rtt, stall = 0.020, 0.400
    with WanThread(upstream=echo_server.address, link=Link(rtt=rtt)) as wan:
        with connect(wan.address) as sock:
            ping(sock)
            wan.emulator.cut(mode="stall", duration=stall)
            elapsed = ping(sock)  # sent into the stall: waits it out, then one RTT
            after = statistics.median(ping(sock) for _ in range(3))
        stats = wan.emulator.stats()
    assert stall - 0.01 <= elapsed <= stall + rtt + 0.05, elapsed
    assert abs(after - rtt) <= 0.003, after
    assert stats.cuts == 1 and stats.failed_connections == 0


def test_scheduled_cuts_fire_at_their_time_and_repeat(echo_server: ThreadedServer) -> None:
    with WanThread(upstream=echo_server.address, link=Link()) as wan:
        sock = connect(wan.address)
        ping(sock)
        start = time.monotonic()
        wan.emulator.schedule_cut(0.3, mode="reset")
        with pytest.raises(ConnectionResetError):
            while True:
                sock.sendall(b"x")
                sock.recv(10)
                time.sleep(0.01)
        assert time.monotonic() - start >= 0.29
        sock.close()
        wan.emulator.schedule_cut(0.05, mode="stall", duration=0.01, every=0.1)
        assert wait_until(lambda: wan.emulator.stats().cuts >= 4)
        with pytest.raises(ConfigError, match="'sometimes'"):
            wan.emulator.schedule_cut(0.1, mode="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("direction", ["both", "down"])
def test_corruption_flips_bytes_at_the_configured_rate(
    source_server: ThreadedServer, direction: str
) -> None:
    size, rate = 4_000_000, 5e-5  # 200 bytes expected
    link = Link(corrupt_rate=rate, corrupt_direction=direction)
    with WanThread(upstream=source_server.address, link=link) as wan:
        with connect(wan.address) as sock:
            received = fetch(sock, size)
        stats = wan.emulator.stats()
    expected = pattern_bytes(0, size)
    differing = int(
        np.count_nonzero(np.frombuffer(received, np.uint8) != np.frombuffer(expected, np.uint8))
    )
    assert len(received) == size
    assert 0.7 * size * rate <= differing <= 1.3 * size * rate, differing
    assert stats.corrupted_bytes == differing


def test_corruption_of_requests_only_leaves_responses_intact(
    source_server: ThreadedServer,
) -> None:
    size = 2_000_000
    link = Link(corrupt_rate=1e-4, corrupt_direction="up")  # the 8-byte request: ~1e-3 odds
    with WanThread(upstream=source_server.address, link=link) as wan:
        with connect(wan.address) as sock:
            received = fetch(sock, size)
        corrupted = wan.emulator.stats().corrupted_bytes
    assert corrupted == 0  # nothing downstream was eligible
    assert received == pattern_bytes(0, size)


def test_refused_upstream_resets_the_client_and_the_emulator_carries_on(
    echo_server: ThreadedServer,
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with WanThread(upstream=("127.0.0.1", port), link=Link(rtt=0.005)) as wan:
        with pytest.raises(ConnectionError), connect(wan.address) as sock:
            sock.sendall(b"x")
            if not sock.recv(10):
                raise ConnectionError("closed")
        assert wait_until(lambda: wan.emulator.stats().failed_connections == 1)
        wan.emulator.set_link(Link())
        assert wan.emulator.link == Link()


def test_an_upstream_reset_reaches_the_client_after_the_bytes_before_it() -> None:
    def reply_then_reset(conn: socket.socket) -> None:
        conn.recv(10)
        conn.sendall(b"partial answer")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = ThreadedServer(reply_then_reset)
    try:
        with (
            WanThread(upstream=server.address, link=Link(rtt=0.020)) as wan,
            connect(wan.address) as sock,
        ):
            sock.sendall(b"question")
            got = b""
            with pytest.raises(ConnectionResetError):
                while data := sock.recv(100):
                    got += data
            assert got == b"partial answer"
    finally:
        server.close()


def test_half_close_passes_after_the_data(echo_server: ThreadedServer) -> None:
    payload = pattern_bytes(7, 1_000_000)
    with (
        WanThread(upstream=echo_server.address, link=Link(rtt=0.010)) as wan,
        connect(wan.address) as sock,
    ):
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while data := sock.recv(1 << 20):
            received += data
        assert bytes(received) == payload
        assert wait_until(lambda: wan.emulator.stats().open_connections == 0)


def test_stats_count_bytes_each_way_and_connections(source_server: ThreadedServer) -> None:
    with WanThread(upstream=source_server.address, link=Link()) as wan:
        with connect(wan.address) as a, connect(wan.address) as b:
            download(a, 3_000_000)
            download(b, 1_000_000)
            stats = wan.emulator.stats()
    assert (stats.bytes_up, stats.bytes_down) == (16, 4_000_000)
    assert (stats.open_connections, stats.total_connections) == (2, 2)
    assert stats.throughput_down > 0


def test_process_obeys_updates_and_cuts_and_reports_its_own_cpu(
    echo_server: ThreadedServer,
) -> None:
    with WanProcess.start(upstream=echo_server.address, link=Link(rtt=0.010)) as wan:
        assert wan.update(rtt=0.040).rtt == 0.040
        with connect(wan.address) as sock:
            ping(sock)
            kept = measure_until(
                lambda: statistics.median(ping(sock) for _ in range(3)),
                lambda m: abs(m - 0.040) <= 0.004,
            )
            assert abs(kept - 0.040) <= 0.004, kept
            wan.cut(mode="reset")
            with pytest.raises(ConnectionResetError):
                sock.sendall(b"x")
                sock.recv(10)
        with pytest.raises(ConfigError, match="-5"):
            wan.update(window=-5)
        stats = wan.stats()
        assert stats.cuts == 1 and stats.cpu_seconds > 0
        with pytest.raises(ConfigError, match="cannot listen"):
            WanProcess.start(upstream=echo_server.address, link=Link(), listen=wan.address)


async def test_emulator_refuses_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="'8470'"):
        WanEmulator(upstream="8470", link=Link())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="0.015"):
        WanEmulator(upstream=("127.0.0.1", 1), link=0.015)  # type: ignore[arg-type]
    emulator = WanEmulator(upstream=("127.0.0.1", 1), link=Link())
    with pytest.raises(ConfigError, match="not started"):
        emulator.cut()
    await emulator.start()
    with pytest.raises(ConfigError, match="-1"):
        emulator.cut(mode="stall", duration=-1)
    await emulator.stop()
