"""Connection limits (issue 11): idle, half-sent header and half-sent body connections are
closed after their (test-shortened) timeouts; 1,000 idle connections under ``ulimit -n
1024`` neither exhaust descriptors nor lock out a normal client; 503 only when every
connection is busy; accept() failures make one log line, not a traceback each; tokens
never reach a log."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from helpers.data import fake_dataset
from helpers.http import call, error_of
from helpers.world import READ_TOKEN, WRITE_TOKEN

from farfeed.server import GatewayProcess, serve_in_thread
from farfeed.server.limits import ConnectionLimits

BOTH = "x" * 32  # a read+write token


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def metrics(url: str, token: str | None = None) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = call(url, "GET", "/metrics", headers=headers)
    assert status == 200
    return {k: float(v) for k, _, v in (line.rpartition(" ") for line in body.decode().splitlines() if not line.startswith("#"))}


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def tokens_file(folder: Path) -> Path:
    path = folder / "tokens.txt"
    path.write_text(f"{READ_TOKEN} read\n{WRITE_TOKEN} write\n{BOTH} read,write\n")
    return path


def test_idle_half_header_and_half_body_connections_are_closed(gateway_root: Path) -> None:
    limits = ConnectionLimits(keepalive_timeout=1.5, header_timeout=0.5, body_timeout=0.5)
    with serve_in_thread(gateway_root, connection_limits=limits) as url:
        idle = socket.create_connection(address(url))
        half_header = socket.create_connection(address(url))
        half_header.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        half_body = socket.create_connection(address(url))
        half_body.sendall(b"PUT /checkpoints/x.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        kept = http.client.HTTPConnection(*address(url), timeout=10)
        kept.request("GET", "/healthz")
        assert kept.getresponse().read() == b"ok"
        # a slow client that keeps sending is not cut: 8 pieces, 0.3 s apart (body_timeout 0.5 s)
        slow_status: list[int] = []

        def slow_upload() -> None:
            conn = socket.create_connection(address(url))
            conn.sendall(b"PUT /checkpoints/slow.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 8000\r\n\r\n")
            for _ in range(8):
                time.sleep(0.3)
                conn.sendall(b"s" * 1000)
            slow_status.append(int(conn.recv(4096).split()[1]))
            conn.close()

        slow = threading.Thread(target=slow_upload)
        slow.start()
        for sock in (half_header, half_body, idle):
            assert closed_within(sock, 10)
        assert kept.sock is not None and closed_within(kept.sock, 10)
        slow.join(10)
        assert slow_status == [201]
        seen = metrics(url)
        assert seen['farfeed_connections_closed_total{reason="header"}'] == 1
        assert seen['farfeed_connections_closed_total{reason="body"}'] == 1
        assert seen['farfeed_connections_closed_total{reason="idle"}'] == 2
        assert os.listdir(gateway_root / ".farfeed-uploads") == []  # the cut PUT left nothing
        assert (gateway_root / "checkpoints" / "slow.bin").read_bytes() == b"s" * 8000
        for sock in (idle, half_header, half_body):
            sock.close()
        kept.close()


def test_1000_idle_connections_and_a_normal_client(gateway_root: Path, tmp_path: Path) -> None:
    """Under ``ulimit -n 1024`` the cap is 768: the 1,000 anonymous idle connections evict each
    other, the authenticated client's connection stays, and new clients are served."""
    files = fake_dataset(gateway_root)
    auth = {"Authorization": f"Bearer {BOTH}"}
    with GatewayProcess.start(gateway_root, tokens_file=tokens_file(tmp_path), max_open_files=1024) as gw:
        client = http.client.HTTPConnection(*address(gw.url), timeout=30)
        client.request("GET", "/ds/shard-00000.tar", headers=auth)
        assert client.getresponse().read() == files["ds/shard-00000.tar"]
        flood = [socket.create_connection(address(gw.url), timeout=30) for _ in range(1000)]
        try:
            client.request("GET", "/ds/shard-00001.tar", headers=auth)  # the same connection
            assert client.getresponse().read() == files["ds/shard-00001.tar"]
            assert call(gw.url, "GET", "/ds/shard-00002.tar", headers=auth)[2] == files["ds/shard-00002.tar"]
            assert call(gw.url, "PUT", "/checkpoints/run1/model.bin", body=b"model", headers=auth)[0] == 201
            body = json.dumps({"ranges": [["ds/shard-00000.tar", 10, 100]]}).encode()
            assert call(gw.url, "POST", "/_farfeed/batch", body=body, headers=auth)[0] == 200
            seen = metrics(gw.url, BOTH)
            assert seen["farfeed_open_connections"] <= 768
            assert seen['farfeed_connections_closed_total{reason="evicted"}'] >= 1000 - 768
            assert seen["farfeed_connections_refused_total"] == 0
        finally:
            for sock in flood:
                sock.close()
        log = gw.log_text()
        assert "Traceback" not in log and len(log) < 20_000, log[-3000:]


def test_503_only_when_every_connection_is_busy(gateway_root: Path) -> None:
    limits = ConnectionLimits(max_connections=3, body_timeout=30.0)
    with serve_in_thread(gateway_root, connection_limits=limits) as url:
        busy = []
        for n in range(3):  # each in the middle of a PUT body
            sock = socket.create_connection(address(url), timeout=10)
            sock.sendall(f"PUT /checkpoints/b{n}.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nxxxxx".encode())
            busy.append(sock)
        time.sleep(0.2)
        status, headers, body = call(url, "GET", "/healthz")
        assert status == 503 and headers["retry-after"] == "1" and "all in the middle of a request" in error_of(body)
        busy[0].sendall(b"yyyyy")  # one request ends; its connection turns idle
        assert busy[0].recv(4096).startswith(b"HTTP/1.1 201")
        assert call(url, "GET", "/healthz")[:3:2] == (200, b"ok")  # makes room by closing the idle one
        for sock in busy:
            sock.close()


def test_accept_errors_are_one_line_not_a_traceback_each(gateway_root: Path) -> None:
    """With a cap set above what 64 descriptors allow, accept() runs out of descriptors: the
    log says so once per interval, and the gateway serves again once connections go."""
    with GatewayProcess.start(gateway_root, max_open_files=64, options=["--max-connections", "1000"]) as gw:
        flood = [socket.create_connection(address(gw.url), timeout=30) for _ in range(150)]
        time.sleep(1.5)  # asyncio retries accept() every second: a few more failures
        for sock in flood:
            sock.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                if call(gw.url, "GET", "/healthz")[2] == b"ok":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, gw.log_text()[-3000:]
            time.sleep(0.2)
        log = gw.log_text()
        assert "Traceback" not in log, log[-3000:]
        assert 1 <= log.count("could not accept a connection") <= 2, log[-3000:]
        assert "Too many open files" in log


def test_tokens_never_reach_the_log(gateway_root: Path, tmp_path: Path) -> None:
    fake_dataset(gateway_root)
    query_secret = "q" * 40
    options = ["--access-log"]
    with GatewayProcess.start(gateway_root, tokens_file=tokens_file(tmp_path), options=options) as gw:
        # a token in the query string is not accepted (only the Authorization header is)
        assert call(gw.url, "GET", f"/ds/shard-00000.tar?token={READ_TOKEN}")[0] == 401
        assert call(gw.url, "GET", f"/ds/shard-00000.tar?access_token={query_secret}&x={query_secret}")[0] == 401
        ok = call(gw.url, "GET", f"/_farfeed/list?prefix=ds/&token={query_secret}", headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert ok[0] == 200
        with socket.create_connection(address(gw.url)) as sock:  # malformed, with a token in it
            sock.sendall(f"GET /x?token={query_secret} HTTP/1.1 junk\r\nHost: x\r\n\r\n".encode())
            assert b" 400 Bad Request" in sock.recv(4096)
        time.sleep(0.2)
        log = gw.log_text()
        assert READ_TOKEN not in log and query_secret not in log, log
        assert '"GET /_farfeed/list?prefix=…&token=… HTTP/1.1" 200' in log
        assert "refused a malformed HTTP request" in log and "Traceback" not in log
