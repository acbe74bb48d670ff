"""A full disk (a small tmpfs), and staged bytes that would fill it: 507 that clients do not
retry, the previous data intact, abandoned staging reclaimed (on a full disk, at gateway
start after a kill -9), and the next save succeeding."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import xxhash
from helpers.http import call, call_json, error_of
from helpers.torch_state import assert_same, tiny_state

import farfeed.checkpoint as ckpt
from farfeed.errors import CheckpointError, StorageFullError, TransientError
from farfeed.server import GatewayProcess, ServerLimits, serve_in_thread
from farfeed.store import open_store

MB = 1_000_000


def metric(url: str, series: str) -> int:
    """The value of one series on /metrics (0 when absent)."""
    for line in call(url, "GET", "/metrics")[2].decode().splitlines():
        if line.startswith(series + " "):
            return int(float(line.split()[-1]))
    return 0


def staged(root: Path) -> list[str]:
    return sorted(os.listdir(root / ".farfeed-uploads"))


def test_full_disk_is_507_and_not_retried(small_disk: Callable[[int], Path]) -> None:
    root = small_disk(8 << 20)
    (root / "checkpoints").mkdir()
    old, big = random.randbytes(3 * MB), random.randbytes(6 * MB)
    with serve_in_thread(root) as url:
        assert call(url, "PUT", "/checkpoints/run1/model.bin", body=old)[0] == 201
        for path in ("/checkpoints/run1/model.bin", "/checkpoints/run2/model.bin"):
            status, _, body = call(url, "PUT", path, body=big)
            assert status == 507 and "disk is full" in error_of(body) and str(root) not in body.decode()
        _, made = call_json(url, "POST", "/_farfeed/uploads", {"path": "checkpoints/run2/model.bin", "part_size": 6 * MB})
        status, _, body = call(url, "PUT", f"/_farfeed/uploads/{made['upload_id']}/0", body=big)
        assert status == 507 and "disk is full" in error_of(body)
        assert call_json(url, "GET", f"/_farfeed/uploads/{made['upload_id']}")[1]["parts"] == {}
        assert call(url, "DELETE", f"/_farfeed/uploads/{made['upload_id']}")[0] == 204
        # the previous object is intact, and the refused writes left nothing
        assert call(url, "GET", "/checkpoints/run1/model.bin")[2] == old
        assert staged(root) == [] and sorted(os.listdir(root / "checkpoints")) == ["run1"]

        async def client_write() -> BaseException:
            async with open_store(f"{url}/checkpoints") as store:
                try:
                    await store.write("run1/model.bin", big)
                except Exception as exc:
                    return exc
            raise AssertionError("a write to a full disk succeeded")

        before = metric(url, 'farfeed_requests_total{endpoint="object_put",status="507"}')
        error = asyncio.run(client_write())
        assert isinstance(error, StorageFullError) and not isinstance(error, TransientError)
        assert "disk is full" in str(error)
        assert metric(url, 'farfeed_requests_total{endpoint="object_put",status="507"}') == before + 1  # not retried

        assert call(url, "DELETE", "/checkpoints/run1/model.bin")[0] == 204  # space frees up
        assert call(url, "PUT", "/checkpoints/run2/model.bin", body=big)[0] == 201
        assert call(url, "GET", "/checkpoints/run2/model.bin")[2] == big


def test_checkpoint_save_on_a_full_disk(small_disk: Callable[[int], Path]) -> None:
    """The trainer's view: a save that does not fit fails at once with the disk named, the
    previous checkpoint still loads, and once space frees the next save succeeds."""
    root = small_disk(6 << 20)
    (root / "checkpoints").mkdir()
    small, large = tiny_state(0, big=250_000), tiny_state(1, big=1_100_000)  # ~1 MB and ~4.4 MB
    with serve_in_thread(root) as url:
        run = f"{url}/checkpoints/run1"
        ckpt.save(small, run, step=1, background=False, keep=None).wait()
        (root / "filler").write_bytes(b"\0" * (2 << 20))  # something else takes space
        started = time.monotonic()
        with pytest.raises((StorageFullError, CheckpointError), match="disk is full"):
            ckpt.save(large, run, step=2, background=False, keep=None).wait()
        assert time.monotonic() - started < 10  # not retried for minutes
        assert [i.step for i in ckpt.list_checkpoints(run)] == [1]
        assert_same(ckpt.load(run), small)
        assert staged(root) == []
        (root / "filler").unlink()
        ckpt.save(large, run, step=2, background=False, keep=None).wait()
        assert_same(ckpt.load(run), large)


def test_full_disk_reclaims_an_abandoned_upload(small_disk: Callable[[int], Path]) -> None:
    """A trainer killed mid-save left 4 MB staged on an 8 MiB disk. The next save does not fit
    beside it: the gateway reclaims the abandoned upload (idle past reclaim_idle_seconds) and
    writes again; a live upload (just touched) is kept."""
    root = small_disk(8 << 20)
    (root / "checkpoints").mkdir()
    part = 2 * MB
    with serve_in_thread(root, limits=ServerLimits(reclaim_idle_seconds=2.0)) as url:
        _, dead = call_json(url, "POST", "/_farfeed/uploads", {"path": "checkpoints/run1/step-1/t.bin", "part_size": part})
        for n in range(2):
            assert call(url, "PUT", f"/_farfeed/uploads/{dead['upload_id']}/{n}", body=random.randbytes(part))[0] == 200
        time.sleep(2.2)  # the killed trainer never comes back
        _, live = call_json(url, "POST", "/_farfeed/uploads", {"path": "checkpoints/run2/step-1/t.bin", "part_size": part})
        live_part = random.randbytes(MB)
        assert call(url, "PUT", f"/_farfeed/uploads/{live['upload_id']}/0", body=live_part)[0] == 200
        new = random.randbytes(5 * MB)
        assert call(url, "PUT", "/checkpoints/run1/step-2/t.bin", body=new)[0] == 201
        assert call(url, "GET", "/checkpoints/run1/step-2/t.bin")[2] == new
        assert call(url, "GET", f"/_farfeed/uploads/{dead['upload_id']}")[0] == 404
        status, done = call_json(url, "POST", f"/_farfeed/uploads/{live['upload_id']}/commit", {"parts": 1})
        assert status == 201 and call(url, "GET", "/checkpoints/run2/step-1/t.bin")[2] == live_part


def test_gateway_killed_mid_upload_then_restarted(small_disk: Callable[[int], Path]) -> None:
    """kill -9 mid-PUT leaves ~10 MB staged on a 24 MiB disk; the restarted gateway reclaims it
    before its first request, so the next 16 MB save fits (it would not beside the leftover)."""
    root = small_disk(24 << 20)
    (root / "checkpoints").mkdir()
    old, new = random.randbytes(4 * MB), random.randbytes(16 * MB)
    with GatewayProcess.start(root) as gw:
        assert call(gw.url, "PUT", "/checkpoints/run1/model.bin", body=old)[0] == 201
        parts = urlsplit(gw.url)
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.sendall(b"PUT /checkpoints/run1/model.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 16000000\r\n\r\n")
        sock.sendall(random.randbytes(10 * MB))
        leftover = 0
        for _ in range(1000):  # until most of it is on disk
            files = [p for p in (root / ".farfeed-uploads").iterdir() if p.name.startswith("put-")]
            leftover = files[0].stat().st_size if files else 0
            if leftover >= 8 << 20:
                break
            time.sleep(0.01)
        assert leftover >= 8 << 20
        gw.kill()
        sock.close()
        assert [p.name.startswith("put-") for p in (root / ".farfeed-uploads").iterdir()] == [True]  # left behind
        gw.restart()
        assert staged(root) == []  # reclaimed at start
        assert call(gw.url, "GET", "/checkpoints/run1/model.bin")[2] == old
        status, _, body = call(gw.url, "PUT", "/checkpoints/run1/model.bin", body=new,
                               headers={"X-Farfeed-Xxh64": xxhash.xxh64(new).hexdigest()})  # fmt: skip
        assert status == 201, body
        assert (root / "checkpoints" / "run1" / "model.bin").read_bytes() == new
