"""The gateway as a real child process: TLS, several workers on one port, SIGKILL mid-upload,
restart on the same port."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from helpers.data import fake_dataset
from helpers.http import call, call_json, make_cert

from farfeed.server import GatewayProcess


async def test_tls(gateway_root: Path, tmp_path: Path) -> None:
    files = fake_dataset(gateway_root)
    cert, key = make_cert(tmp_path)
    with GatewayProcess.start(gateway_root, cert=cert, key=key) as gw:
        assert gw.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{gw.url}/ds/shard-00001.tar", ssl=context, headers={"Range": "bytes=10-19"}) as r:
                assert r.status == 206 and await r.read() == files["ds/shard-00001.tar"][10:20]
            body = json.dumps({"ranges": [["ds/shard-00000.tar", 5, 50_000]]})
            async with s.post(f"{gw.url}/_farfeed/batch", data=body, ssl=context) as r:
                assert r.status == 200 and files["ds/shard-00000.tar"][5:50_005] in await r.read()
        try:  # plain HTTP is not answered on a TLS port
            status = call(gw.url.replace("https", "http"), "GET", "/healthz")[0]
        except (OSError, http.client.HTTPException):
            status = None
        assert status != 200


def test_two_workers_share_the_port(gateway_root: Path) -> None:
    files = fake_dataset(gateway_root)
    with GatewayProcess.start(gateway_root, workers=2) as gw:
        workers = set()
        for _ in range(40):  # each call is a new connection; the kernel spreads them
            status, info = call_json(gw.url, "GET", "/_farfeed/info")
            assert status == 200
            workers.add(info["worker"])
        assert len(workers) == 2 and gw.pid not in workers
        for i in range(4):  # an upload's parts and commit may land on either worker
            _, made = call_json(gw.url, "POST", "/_farfeed/uploads", {"path": f"checkpoints/w{i}.bin"})
            for n in range(3):
                assert call(gw.url, "PUT", f"/_farfeed/uploads/{made['upload_id']}/{n}", body=bytes([n]) * 10)[0] == 200
            assert call_json(gw.url, "POST", f"/_farfeed/uploads/{made['upload_id']}/commit", {"parts": 3})[0] == 201
            assert (gateway_root / "checkpoints" / f"w{i}.bin").read_bytes() == b"\0" * 10 + b"\1" * 10 + b"\2" * 10
        assert call(gw.url, "GET", "/ds/shard-00002.tar")[2] == files["ds/shard-00002.tar"]
    assert gw.pid is None


def test_sigkill_mid_upload_leaves_old_object(gateway_root: Path) -> None:
    final = gateway_root / "checkpoints" / "run1" / "model.bin"
    final.parent.mkdir()
    final.write_bytes(b"old model")
    with GatewayProcess.start(gateway_root) as gw:
        _, made = call_json(gw.url, "POST", "/_farfeed/uploads", {"path": "checkpoints/run1/model.bin"})
        uid = made["upload_id"]
        assert call(gw.url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"new ")[0] == 200
        parts = urlsplit(gw.url)
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.sendall(b"PUT /checkpoints/run1/model.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n")
        sock.sendall(b"n" * 8_000_000)  # well into the body: a staging file is being written
        staging = gateway_root / ".farfeed-uploads"
        for _ in range(1000):
            if any(p.name.startswith("put-") for p in staging.iterdir()):
                break
            time.sleep(0.01)
        assert any(p.name.startswith("put-") for p in staging.iterdir())  # really mid-upload
        gw.kill()
        sock.close()
        assert final.read_bytes() == b"old model"
        assert sorted(p.name for p in (gateway_root / "checkpoints").rglob("*")) == ["model.bin", "run1"]
        gw.restart()  # same port: clients come back to the same URL
        assert [p.name for p in staging.iterdir()] == [uid]  # the killed PUT's bytes reclaimed at start
        assert call(gw.url, "GET", "/checkpoints/run1/model.bin")[2] == b"old model"
        status, state = call_json(gw.url, "GET", f"/_farfeed/uploads/{uid}")  # the chunked upload resumes
        assert status == 200 and set(state["parts"]) == {"0"}
        assert call(gw.url, "PUT", f"/_farfeed/uploads/{uid}/1", body=b"model")[0] == 200
        assert call_json(gw.url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 2})[0] == 201
        assert final.read_bytes() == b"new model"
