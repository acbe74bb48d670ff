"""Reclaiming staged bytes (issue 11): a new save to the same destination removes the
uploads abandoned there, never one a live client is using; a delete (retention) leaves no
empty folders behind."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from helpers.http import call, call_json
from helpers.torch_state import tiny_state

import farfeed.checkpoint as ckpt
from farfeed.server import ServerLimits, serve_in_thread
from farfeed.server.reclaim import dest_key

IDLE = 1.0  # reclaim_idle_seconds in these tests


def start(url: str, path: str, part_size: int | None = None) -> str:
    body: dict[str, object] = {"path": path} if part_size is None else {"path": path, "part_size": part_size}
    status, made = call_json(url, "POST", "/_farfeed/uploads", body)
    assert status == 201, made
    return str(made["upload_id"])


def exists(url: str, uid: str) -> bool:
    return call_json(url, "GET", f"/_farfeed/uploads/{uid}")[0] == 200


def test_a_new_save_reclaims_abandoned_uploads_of_its_destination(gateway_root: Path) -> None:
    dest = "checkpoints/run1/step-3/tensors.bin"
    with serve_in_thread(gateway_root, limits=ServerLimits(reclaim_idle_seconds=IDLE)) as url:
        dead = [start(url, dest, part_size=4), start(url, dest)]  # a killed trainer's, both modes
        for uid in dead:
            assert call(url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"dead")[0] == 200
        other = start(url, "checkpoints/run1/step-4/tensors.bin")  # another destination
        assert all(uid.startswith(f"u-{dest_key(dest)}") for uid in dead)
        time.sleep(IDLE + 0.2)
        fresh = start(url, dest, part_size=4)  # the restarted trainer saves step 3 again
        assert not any(exists(url, uid) for uid in dead)
        assert exists(url, other) and exists(url, fresh)
        assert call(url, "PUT", "/checkpoints/run1/step-4/x.bin", body=b"whole")[0] == 201
        assert exists(url, other)  # idle too, but not this PUT's destination
        assert sorted(os.listdir(gateway_root / ".farfeed-uploads")) == sorted([other, fresh])
        assert call(url, "PUT", "/checkpoints/run1/step-4/tensors.bin", body=b"whole")[0] == 201
        assert not exists(url, other)  # a whole PUT to its destination supersedes it too


def test_uploads_of_live_clients_are_kept(gateway_root: Path) -> None:
    """Recently touched, or with a request in progress (however long it has been idle): kept."""
    dest = "checkpoints/run1/model.bin"
    with serve_in_thread(gateway_root, limits=ServerLimits(reclaim_idle_seconds=IDLE)) as url:
        busy = start(url, dest, part_size=10)
        parts = urlsplit(url)
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        sock.sendall(f"PUT /_farfeed/uploads/{busy}/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello".encode())
        recent = start(url, dest)
        assert call(url, "PUT", f"/_farfeed/uploads/{recent}/0", body=b"recent")[0] == 200
        time.sleep(IDLE + 0.2)  # `busy` idle past the limit, but its part is still arriving
        assert call(url, "PUT", f"/_farfeed/uploads/{recent}/1", body=b"!")[0] == 200  # touched again
        start(url, dest)  # a second client saves to the same destination
        assert exists(url, busy) and exists(url, recent)
        sock.sendall(b"world")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.close()
        assert call_json(url, "POST", f"/_farfeed/uploads/{busy}/commit", {"parts": 1})[0] == 201
        assert (gateway_root / "checkpoints" / "run1" / "model.bin").read_bytes() == b"helloworld"


def test_delete_and_retention_leave_no_empty_folders(gateway_root: Path) -> None:
    with serve_in_thread(gateway_root) as url:
        for path in ("checkpoints/run1/step-1/a/b.bin", "checkpoints/run1/step-1/c.bin", "checkpoints/run1/keep.bin"):
            assert call(url, "PUT", f"/{path}", body=b"x")[0] == 201
        assert call(url, "DELETE", "/checkpoints/run1/step-1/a/b.bin")[0] == 204
        assert not (gateway_root / "checkpoints/run1/step-1/a").exists()
        assert call(url, "DELETE", "/checkpoints/run1/step-1/c.bin")[0] == 204
        assert sorted(os.listdir(gateway_root / "checkpoints/run1")) == ["keep.bin"]
        assert call(url, "DELETE", "/checkpoints/run1/keep.bin")[0] == 204
        assert os.listdir(gateway_root / "checkpoints") == []  # checkpoints/ itself stays
        state = tiny_state()
        for step in range(1, 6):
            ckpt.save(state, f"{url}/checkpoints/run2", step=step, keep=2, background=False).wait()
        assert sorted(os.listdir(gateway_root / "checkpoints" / "run2")) == ["step-000000000004", "step-000000000005"]
        assert os.listdir(gateway_root / ".farfeed-uploads") == []
