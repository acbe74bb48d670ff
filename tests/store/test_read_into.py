"""`Store.read_into`: ranges land straight in the caller's buffers (gateway, local disk, default).

The gateway path is farfeed's own HTTP/1.1 client (`store/_batch_into.py`): these tests
check its bytes, its keep-alive, its errors and its timeout against real servers.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import xxhash
from helpers.data import fake_dataset
from helpers.http import make_cert

from farfeed.errors import AccessDeniedError, NotFoundError, TransientError
from farfeed.server import TokenTable, serve_in_thread
from farfeed.server.process import GatewayProcess
from farfeed.store import ByteRange, GatewayStore, LocalStore, open_store
from farfeed.store._batch_into import BatchIntoClient
from farfeed.store.base import Store
from farfeed.store.options import StoreOptions
from farfeed.store.testing import serve_http
from farfeed.wan import Link, WanThread, parse_address

Files = dict[str, bytes]


@pytest.fixture
def files(gateway_root: Path) -> Files:
    return fake_dataset(gateway_root, sizes=(400_000, 300_000, 5_000))


def random_ranges(files: Files, rng: random.Random, count: int) -> list[ByteRange]:
    out = []
    for _ in range(count):
        path = rng.choice(sorted(files))
        size = len(files[path])
        offset = rng.randrange(size)
        out.append(ByteRange(path.split("/", 1)[1], offset, rng.randint(0, size - offset)))
    return out


async def read(store: Store, ranges: list[ByteRange]) -> tuple[list[bytes], list[int]]:
    outs = [memoryview(bytearray(r.length)) for r in ranges]
    landed: list[int] = []
    await store.read_into(ranges, outs, landed=landed.append)
    return [bytes(o) for o in outs], landed


def expected(files: Files, ranges: list[ByteRange]) -> list[bytes]:
    return [files[f"ds/{r.path}"][r.offset : r.offset + r.length] for r in ranges]


async def test_gateway_bytes_land_in_place_in_order(files: Files, gateway_url: str) -> None:
    rng = random.Random(1)
    async with open_store(f"{gateway_url}/ds") as store:
        assert isinstance(store, GatewayStore)
        for count in (1, 7, 300):
            ranges = random_ranges(files, rng, count)
            got, landed = await read(store, ranges)
            assert got == expected(files, ranges)
            assert landed == list(range(count))  # one batch-get: frames arrive in order
        assert len(store._raw._pool._idle) == 1  # one keep-alive connection served all three


@pytest.mark.parametrize("checksum", ["xxh64", "xxh3_64"])
async def test_the_gateway_hashes_each_range_where_it_lands(
    files: Files, gateway_url: str, checksum: str
) -> None:
    """``digests``: the receiver thread's ``checksum`` of every range, split requests included."""
    rng = random.Random(2)
    ranges = random_ranges(files, rng, 200)
    async with open_store(f"{gateway_url}/ds") as store:
        assert isinstance(store, GatewayStore)
        store._info = {**(await store.info()), "max_batch_ranges": 64}  # four requests
        outs = [memoryview(bytearray(r.length)) for r in ranges]
        digests = np.zeros(len(ranges), dtype=np.uint64)
        await store.read_into(ranges, outs, digests=digests, checksum=checksum)
    assert [bytes(o) for o in outs] == expected(files, ranges)
    function = xxhash.xxh64_intdigest if checksum == "xxh64" else xxhash.xxh3_64_intdigest
    assert digests.tolist() == [function(o) for o in outs]


async def test_local_and_http_stores_fill_the_same_buffers(files: Files, gateway_root: Path) -> None:
    rng = random.Random(2)
    ranges = random_ranges(files, rng, 50)
    async with LocalStore(str(gateway_root / "ds")) as local:
        got, landed = await read(local, ranges)
    assert got == expected(files, ranges) and sorted(landed) == list(range(50))
    with serve_http(gateway_root) as url:  # a static server: the default (copying) road
        async with open_store(f"{url}/ds") as static:
            assert not isinstance(static, GatewayStore)
            got, landed = await read(static, ranges)
    assert got == expected(files, ranges) and landed == list(range(50))


async def test_requests_over_the_server_limits_are_split(files: Files, gateway_url: str) -> None:
    rng = random.Random(3)
    ranges = random_ranges(files, rng, 40)
    async with open_store(f"{gateway_url}/ds") as store:
        assert isinstance(store, GatewayStore)
        info = await store.info()
        store._info = {**info, "max_batch_ranges": 7, "max_batch_bytes": 500_000}
        got, landed = await read(store, ranges)
    assert got == expected(files, ranges)
    assert sorted(landed) == list(range(40))


async def test_errors_are_named_and_the_connection_survives(files: Files, gateway_url: str) -> None:
    async with open_store(f"{gateway_url}/ds") as store:
        with pytest.raises(NotFoundError, match="no such object"):
            await read(store, [ByteRange("shard-00000.tar", 0, 10), ByteRange("nope.tar", 0, 1)])
        with pytest.raises(Exception, match="outside"):
            await read(store, [ByteRange("shard-00002.tar", 4_000, 2_000)])
        got, _ = await read(store, [ByteRange("shard-00002.tar", 10, 20)])
    assert got == [files["ds/shard-00002.tar"][10:30]]


async def test_a_refused_token_is_access_denied(files: Files, gateway_root: Path) -> None:
    token = "5e0c2a0e6b1d4c7f8a5e9d2b1c0f4a6e"
    with serve_in_thread(gateway_root, tokens=TokenTable({token: {"read"}})) as url:
        async with open_store(f"{url}/ds", token=token) as store:
            got, _ = await read(store, [ByteRange("shard-00000.tar", 5, 5)])
            assert got == [files["ds/shard-00000.tar"][5:10]]
            info = store.gateway_info
        # a known gateway opens without a probe, so the wrong token meets the batch-get
        async with open_store(f"{url}/ds", token="0" * 32, gateway_info=info) as store:
            with pytest.raises(AccessDeniedError):
                await read(store, [ByteRange("shard-00000.tar", 5, 5)])


async def test_a_cut_link_is_transient_and_the_next_read_works(files: Files, gateway_url: str) -> None:
    big = [ByteRange("shard-00000.tar", 0, 400_000)] * 20  # 8 MB at 4 MB/s: two seconds
    with WanThread(upstream=parse_address(gateway_url.split("//")[1]), link=Link(bandwidth=4e6)) as wan:
        async with open_store(f"{wan.url_for(gateway_url)}/ds") as store:
            threading.Timer(0.5, lambda: wan.emulator.cut(mode="reset", duration=0.2)).start()
            with pytest.raises(TransientError):
                await read(store, big)
            await asyncio.sleep(0.3)
            got, _ = await read(store, big[:2])
    assert got == expected(files, big[:2])


@pytest.fixture
def stalling_server() -> Iterator[str]:
    """A server that answers ``/_farfeed/info`` like a gateway, then sends the headers of a
    batch response and no body."""
    yield from _stalling_server(late_body=None)


@pytest.fixture
def late_server() -> Iterator[str]:
    """As `stalling_server`, but the body (one frame of 10 x 0xFF and the trailer) follows
    one second after the headers."""
    yield from _stalling_server(late_body=_frame(0, b"\xff" * 10) + _frame(0xFFFFFFFF, b""))


def _frame(index: int, payload: bytes) -> bytes:
    return index.to_bytes(4, "big") + len(payload).to_bytes(8, "big") + payload


def _stalling_server(late_body: bytes | None) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            request = conn.recv(65536)
            if b"/_farfeed/info" in request:
                body = b'{"farfeed": "x", "api": 1}'
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                conn.sendall(head.encode() + body)
                conn.close()
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-farfeed-batch\r\nContent-Length: 34\r\n\r\n")
                if late_body is not None:
                    threading.Timer(1, lambda c=conn: _try(c.sendall, late_body)).start()
                threading.Timer(5, conn.close).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    listener.close()


def _try(fn: Callable[[bytes], None], data: bytes) -> None:
    try:
        fn(data)
    except OSError:  # the client hung up first: what the test wants
        pass


async def test_a_cancelled_read_lets_go_of_its_buffer_at_once(late_server: str) -> None:
    """Cancelling a read (the engine closing) returns without waiting for the timeout, and
    bytes that come later never land in the caller's buffer (the receiver thread let go)."""
    async with open_store(f"{late_server}/ds", timeout=30) as store:
        out = memoryview(bytearray(10))
        task = asyncio.ensure_future(store.read_into([ByteRange("a.tar", 0, 10)], [out]))
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 2
        await asyncio.sleep(1.2)  # the body has been sent by now
        assert bytes(out) == bytes(10)


async def test_a_server_that_stops_sending_times_out(stalling_server: str) -> None:
    async with open_store(f"{stalling_server}/ds", timeout=0.5) as store:
        with pytest.raises(TransientError, match="no data for 0.5 s"):
            await read(store, [ByteRange("a.tar", 0, 10)])


def test_a_tls_server_that_stops_sending_times_out(tmp_path: Path) -> None:
    """Over TLS too (OpenSSL would retry a read the kernel timed out: Python's timeout is used)."""
    cert, key = make_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-farfeed-batch\r\n"
                        b"Content-Length: 34\r\n\r\n")  # fmt: skip
            done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = BatchIntoClient(
        f"https://127.0.0.1:{listener.getsockname()[1]}",
        StoreOptions(timeout=0.5, ssl=str(cert)),
        display="tls",
    )

    async def main() -> None:
        try:
            await client.read_into([("a.tar", 0, 10)], [memoryview(bytearray(10))])
        finally:
            await client.close()

    t0 = time.monotonic()
    with pytest.raises(TransientError, match="no data for 0.5 s"):
        asyncio.run(main())
    assert time.monotonic() - t0 < 3
    done.set()
    thread.join()
    listener.close()


def test_tls_gateway(files: Files, gateway_root: Path, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    ranges = random_ranges(files, random.Random(4), 60)
    with GatewayProcess.start(gateway_root, cert=cert, key=key) as gw:
        url = gw.url.replace("http://", "https://")

        async def main() -> list[bytes]:
            async with open_store(f"{url}/ds", ssl=str(cert)) as store:
                assert isinstance(store, GatewayStore)
                return (await read(store, ranges))[0]

        assert asyncio.run(main()) == expected(files, ranges)
