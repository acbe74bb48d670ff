"""64 clients at once against a gateway process with its default limits, for `SOAK_SECONDS`
(8 s; ``FARFEED_SOAK_SECONDS=30`` for the issue's full run): batch-gets, range GETs, PUTs and
chunked uploads, every byte checked, 0 errors. The new caps and timers must never touch a
client that is working."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path

import aiohttp
import xxhash
from helpers.data import fake_dataset
from helpers.http import parse_frames

from farfeed.server import GatewayProcess

SOAK_SECONDS = float(os.environ.get("FARFEED_SOAK_SECONDS", "8"))
CLIENTS = 64
TOKEN = "s" * 32


async def one_client(n: int, url: str, files: dict[str, bytes], deadline: float, done: list[str], errors: list[str]) -> None:
    """One trainer-like client on its own keep-alive connection, until ``deadline``."""
    rng = random.Random(n)
    names = sorted(files)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {TOKEN}"}) as s:
        step = 0
        while time.monotonic() < deadline:
            kind = ("batch", "batch", "batch", "range", "put", "upload")[step % 6]
            step += 1
            try:
                if kind == "batch":
                    want = []
                    for _ in range(32):
                        name = rng.choice(names)
                        offset = rng.randrange(len(files[name]) - 4096)
                        want.append([name, offset, rng.randrange(1, 4096)])
                    async with s.post(f"{url}/_farfeed/batch", data=json.dumps({"ranges": want})) as r:
                        body = await r.read()
                        assert r.status == 200, (r.status, body[:200])
                    got = parse_frames(body)
                    assert [i for i, _ in got] == list(range(32))
                    assert all(files[p][o : o + ln] == b for (p, o, ln), (_, b) in zip(want, got, strict=True))
                elif kind == "range":
                    name = rng.choice(names)
                    async with s.get(f"{url}/{name}", headers={"Range": "bytes=1000-99999"}) as r:
                        assert r.status == 206 and await r.read() == files[name][1000:100_000]
                elif kind == "put":
                    data = rng.randbytes(rng.randrange(1, 300_000))
                    headers = {"X-Farfeed-Xxh64": xxhash.xxh64(data).hexdigest()}
                    async with s.put(f"{url}/checkpoints/c{n}/put.bin", data=data, headers=headers) as r:
                        assert r.status == 201, await r.text()
                else:
                    parts = [rng.randbytes(65_536), rng.randbytes(1234)]
                    path = f"checkpoints/c{n}/step-{step}/t.bin"
                    async with s.post(f"{url}/_farfeed/uploads", json={"path": path, "part_size": 65_536}) as r:
                        assert r.status == 201, await r.text()
                        uid = (await r.json())["upload_id"]
                    for i, part in enumerate(parts):
                        async with s.put(f"{url}/_farfeed/uploads/{uid}/{i}", data=part) as r:
                            assert r.status == 200, await r.text()
                    async with s.post(f"{url}/_farfeed/uploads/{uid}/commit", json={"parts": 2}) as r:
                        assert r.status == 201, await r.text()
                    async with s.get(f"{url}/{path}") as r:
                        assert await r.read() == b"".join(parts)
                done.append(kind)
            except Exception as exc:  # counted, not raised: the test reports them all
                errors.append(f"client {n} {kind}: {type(exc).__name__}: {exc}"[:300])


async def soak(url: str, files: dict[str, bytes]) -> tuple[list[str], list[str]]:
    done: list[str] = []
    errors: list[str] = []
    deadline = time.monotonic() + SOAK_SECONDS
    await asyncio.gather(*(one_client(n, url, files, deadline, done, errors) for n in range(CLIENTS)))
    return done, errors


def test_64_clients_with_default_limits_see_no_errors(gateway_root: Path, tmp_path: Path) -> None:
    files = fake_dataset(gateway_root, sizes=(2_000_000, 1_500_000, 1_000_000, 500_000))
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{TOKEN} read,write\n")
    with GatewayProcess.start(gateway_root, tokens_file=tokens) as gw:
        done, errors = asyncio.run(soak(gw.url, files))
        log = gw.log_text()
    assert errors == [], errors[:10]
    assert len(done) >= CLIENTS * 4 and {"batch", "range", "put", "upload"} <= set(done)
    assert "Traceback" not in log and "WARNING" not in log, log[-3000:]
    assert os.listdir(gateway_root / ".farfeed-uploads") == []
