"""Writes against a real gateway: whole PUT, chunked resumable uploads (joined, and in place
with a declared part_size), DELETE, abort, sweep."""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import xxhash
from helpers.http import call, call_json, error_of

from farfeed.server import GatewayProcess, upload_inplace
from farfeed.server.reclaim import sweep


def test_whole_put_then_get_and_delete(gateway_root: Path, gateway_url: str) -> None:
    data = random.Random(1).randbytes(5_000_000)
    digest = xxhash.xxh64(data).hexdigest()
    status, _, body = call(gateway_url, "PUT", "/checkpoints/run1/step-1/model.bin", body=data, headers={"X-Farfeed-Xxh64": digest})
    assert status == 201
    assert json.loads(body) == {"path": "checkpoints/run1/step-1/model.bin", "size": len(data), "xxh64": digest}
    assert (gateway_root / "checkpoints/run1/step-1/model.bin").read_bytes() == data
    assert call(gateway_url, "GET", "/checkpoints/run1/step-1/model.bin")[2] == data
    assert os.listdir(gateway_root / ".farfeed-uploads") == []  # nothing left staged
    assert call(gateway_url, "DELETE", "/checkpoints/run1/step-1/model.bin")[0] == 204
    assert not (gateway_root / "checkpoints/run1/step-1/model.bin").exists()
    assert call(gateway_url, "DELETE", "/checkpoints/run1/step-1/model.bin")[0] == 204  # missing is fine


def test_chunked_upload_out_of_order_resume_and_commit(gateway_root: Path, gateway_url: str) -> None:
    rng = random.Random(2)
    parts = [rng.randbytes(n) for n in (1_000_000, 1_000_000, 777)]
    whole = b"".join(parts)
    (gateway_root / "checkpoints" / "run1").mkdir()
    (gateway_root / "checkpoints" / "run1" / "model.bin").write_bytes(b"old")
    status, made = call_json(gateway_url, "POST", "/_farfeed/uploads", {"path": "checkpoints/run1/model.bin"})
    assert status == 201 and made["upload_id"].startswith("u-")
    uid = made["upload_id"]
    for n in (2, 0):  # out of order; part 1 "lost with the connection"
        status, _, body = call(gateway_url, "PUT", f"/_farfeed/uploads/{uid}/{n}", body=parts[n],
                               headers={"X-Farfeed-Xxh64": xxhash.xxh64(parts[n]).hexdigest()})
        assert status == 200, body
    status, state = call_json(gateway_url, "GET", f"/_farfeed/uploads/{uid}")
    assert status == 200 and state["path"] == "checkpoints/run1/model.bin"
    assert state["parts"] == {str(n): {"size": len(parts[n]), "xxh64": xxhash.xxh64(parts[n]).hexdigest()} for n in (0, 2)}
    assert (gateway_root / "checkpoints/run1/model.bin").read_bytes() == b"old"  # nothing visible yet
    call(gateway_url, "PUT", f"/_farfeed/uploads/{uid}/1", body=b"wrong bytes first")
    assert call(gateway_url, "PUT", f"/_farfeed/uploads/{uid}/1", body=parts[1])[0] == 200  # re-send replaces
    status, done = call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 3, "xxh64": xxhash.xxh64(whole).hexdigest()})
    assert status == 201, done
    assert done == {"path": "checkpoints/run1/model.bin", "size": len(whole), "xxh64": xxhash.xxh64(whole).hexdigest()}
    assert (gateway_root / "checkpoints/run1/model.bin").read_bytes() == whole
    assert os.listdir(gateway_root / ".farfeed-uploads") == []
    assert call_json(gateway_url, "GET", f"/_farfeed/uploads/{uid}")[0] == 404  # gone after commit


def test_abort_frees_staging(gateway_root: Path, gateway_url: str) -> None:
    _, made = call_json(gateway_url, "POST", "/_farfeed/uploads", {"path": "checkpoints/x.bin"})
    uid = made["upload_id"]
    assert call(gateway_url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"abc")[0] == 200
    assert call(gateway_url, "DELETE", f"/_farfeed/uploads/{uid}")[0] == 204
    assert os.listdir(gateway_root / ".farfeed-uploads") == []
    assert call(gateway_url, "PUT", f"/_farfeed/uploads/{uid}/1", body=b"abc")[0] == 404
    assert not (gateway_root / "checkpoints" / "x.bin").exists()


def test_stale_record_is_recomputed(gateway_root: Path, gateway_url: str) -> None:
    """A part whose size/xxh64 record does not match it (a crash between renames) is rehashed."""
    _, made = call_json(gateway_url, "POST", "/_farfeed/uploads", {"path": "checkpoints/y.bin"})
    uid = made["upload_id"]
    assert call(gateway_url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"first")[0] == 200
    (gateway_root / ".farfeed-uploads" / uid / "part-0.json").write_text('{"size": 5, "xxh64": "0000000000000000", "ino": 1}')
    _, state = call_json(gateway_url, "GET", f"/_farfeed/uploads/{uid}")
    assert state["parts"]["0"] == {"size": 5, "xxh64": xxhash.xxh64(b"first").hexdigest()}


def test_sweep_removes_only_stale_uploads(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    (staging / "u-old").mkdir(parents=True)
    (staging / "u-old" / "part-0").write_bytes(b"x")
    (staging / "u-new").mkdir()
    (staging / "put-old.tmp").write_bytes(b"x")
    old = time.time() - 2 * 86400
    for p in (staging / "u-old" / "part-0", staging / "u-old", staging / "put-old.tmp"):
        os.utime(p, (old, old))
    assert sorted(sweep(str(staging), max_age=86400)) == ["put-old.tmp", "u-old"]
    assert os.listdir(staging) == ["u-new"]


# -- in-place mode: {"part_size": N} at start, parts pwritten into one file, commit renames it --

PART = 64 * 1024


def start_inplace(url: str, path: str, part_size: int = PART) -> str:
    status, made = call_json(url, "POST", "/_farfeed/uploads", {"path": path, "part_size": part_size})
    assert status == 201 and made["part_size"] == part_size, made
    return str(made["upload_id"])


def put_part(url: str, uid: str, n: int, data: bytes, digest: str | None = None) -> tuple[int, bytes]:
    status, _, body = call(url, "PUT", f"/_farfeed/uploads/{uid}/{n}", body=data,
                           headers={"X-Farfeed-Xxh64": digest or xxhash.xxh64(data).hexdigest()})
    return status, body


def test_inplace_parallel_out_of_order_parts_commit_by_rename(gateway_root: Path, gateway_url: str) -> None:
    rng = random.Random(3)
    parts = [rng.randbytes(PART) for _ in range(7)] + [rng.randbytes(1234)]
    whole = b"".join(parts)
    target = gateway_root / "checkpoints" / "run1" / "model.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    uid = start_inplace(gateway_url, "checkpoints/run1/model.bin")
    order = list(range(len(parts)))
    rng.shuffle(order)
    with ThreadPoolExecutor(4) as pool:  # four connections at once, any order
        answers = list(pool.map(lambda n: put_part(gateway_url, uid, n, parts[n]), order))
    assert all(status == 200 for status, _ in answers), answers
    folder = gateway_root / ".farfeed-uploads" / uid
    assert sorted(os.listdir(folder)) == sorted(["data", "meta.json"] + [f"part-{n}.json" for n in order])
    status, state = call_json(gateway_url, "GET", f"/_farfeed/uploads/{uid}")
    assert status == 200 and state["part_size"] == PART
    assert state["parts"] == {str(n): {"size": len(p), "xxh64": xxhash.xxh64(p).hexdigest()} for n, p in enumerate(parts)}
    assert target.read_bytes() == b"old"  # nothing visible before the commit
    inode = (folder / "data").stat().st_ino
    status, done = call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit",
                             {"parts": len(parts), "xxh64": xxhash.xxh64(whole).hexdigest()})
    assert status == 201, done
    assert done == {"path": "checkpoints/run1/model.bin", "size": len(whole), "xxh64": xxhash.xxh64(whole).hexdigest()}
    assert target.read_bytes() == whole
    assert target.stat().st_ino == inode  # renamed into place, not copied
    assert os.listdir(gateway_root / ".farfeed-uploads") == []
    assert call_json(gateway_url, "GET", f"/_farfeed/uploads/{uid}")[0] == 404


def test_inplace_commit_ignores_later_parts_and_checks_only_when_asked(gateway_root: Path, gateway_url: str) -> None:
    parts = [bytes([n]) * PART for n in range(3)]
    uid = start_inplace(gateway_url, "checkpoints/two.bin")
    for n in (2, 1, 0):
        assert put_part(gateway_url, uid, n, parts[n])[0] == 200
    status, done = call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 2})
    assert status == 201 and done == {"path": "checkpoints/two.bin", "size": 2 * PART, "xxh64": None}
    assert (gateway_root / "checkpoints" / "two.bin").read_bytes() == parts[0] + parts[1]
    uid = start_inplace(gateway_url, "checkpoints/empty.bin")
    assert call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 0})[0] == 201
    assert (gateway_root / "checkpoints" / "empty.bin").read_bytes() == b""


def test_inplace_part_size_rules(gateway_root: Path, gateway_url: str) -> None:
    for bad in (0, -1, "8", True, 1.5, (256 << 20) + 1):
        status, body = call_json(gateway_url, "POST", "/_farfeed/uploads", {"path": "checkpoints/x.bin", "part_size": bad})
        assert status == 400 and "part_size" in body["error"], (bad, body)
    uid = start_inplace(gateway_url, "checkpoints/x.bin", part_size=1000)
    status, body = put_part(gateway_url, uid, 0, b"y" * 1001)
    assert status == 400 and "part_size 1000" in error_of(body)
    conn = http.client.HTTPConnection(urlsplit(gateway_url).hostname or "", urlsplit(gateway_url).port, timeout=30)
    try:  # without Content-Length (chunked), the part is cut off once it is too long
        conn.request("PUT", f"/_farfeed/uploads/{uid}/0", body=iter([b"y" * 600, b"y" * 401]))
        resp = conn.getresponse()
        assert resp.status == 400 and "part_size 1000" in error_of(resp.read())
    finally:
        conn.close()
    assert put_part(gateway_url, uid, 0, b"a" * 999)[0] == 200  # short: fine for a last part...
    assert put_part(gateway_url, uid, 1, b"b" * 1000)[0] == 200
    status, body = call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 2})
    assert status == 409 and "0 (999 bytes)" in body["error"]  # ...but not in the middle
    assert put_part(gateway_url, uid, 0, b"a" * 1000)[0] == 200  # re-sending replaces it
    assert put_part(gateway_url, uid, 1, b"c" * 1000, digest="0" * 16)[0] == 409
    assert sorted(call_json(gateway_url, "GET", f"/_farfeed/uploads/{uid}")[1]["parts"]) == ["0"]  # 1 is gone
    assert put_part(gateway_url, uid, 1, b"b" * 1000)[0] == 200
    assert call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 2})[0] == 201
    assert (gateway_root / "checkpoints" / "x.bin").read_bytes() == b"a" * 1000 + b"b" * 1000


def test_inplace_missing_part_and_mismatch_keep_the_old_object(gateway_root: Path, gateway_url: str) -> None:
    parts = [random.Random(n).randbytes(PART if n < 2 else 10) for n in range(3)]
    whole = xxhash.xxh64(b"".join(parts)).hexdigest()
    target = gateway_root / "checkpoints" / "m.bin"
    target.write_bytes(b"old")
    uid = start_inplace(gateway_url, "checkpoints/m.bin")
    for n in (0, 2):
        assert put_part(gateway_url, uid, n, parts[n])[0] == 200
    status, body = call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 3, "xxh64": whole})
    assert status == 409 and "missing parts 1 of 3" in body["error"]
    assert sorted(call_json(gateway_url, "GET", f"/_farfeed/uploads/{uid}")[1]["parts"]) == ["0", "2"]  # resume from here
    assert put_part(gateway_url, uid, 1, parts[1])[0] == 200
    status, body = call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 3, "xxh64": "0" * 16})
    assert status == 409 and "every part matches its record" in body["error"]
    with open(gateway_root / ".farfeed-uploads" / uid / "data", "r+b") as f:  # bytes rot under a record
        f.seek(PART + 100)
        f.write(b"rot")
    status, body = call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 3, "xxh64": whole})
    assert status == 409 and "parts 1 did not match" in body["error"]
    assert target.read_bytes() == b"old"
    assert sorted(call_json(gateway_url, "GET", f"/_farfeed/uploads/{uid}")[1]["parts"]) == ["0", "2"]  # 1 must come again
    assert put_part(gateway_url, uid, 1, parts[1])[0] == 200
    assert call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 3, "xxh64": whole})[0] == 201
    assert target.read_bytes() == b"".join(parts)


def test_inplace_locks_keep_writers_apart(gateway_root: Path, gateway_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A part being written (its record locked) is not written twice; no part lands during a commit."""
    monkeypatch.setattr(upload_inplace, "PART_LOCK_GRACE", 0.2)
    uid = start_inplace(gateway_url, "checkpoints/l.bin")
    folder = gateway_root / ".farfeed-uploads" / uid
    assert put_part(gateway_url, uid, 0, b"0" * PART)[0] == 200
    with open(folder / "part-1.json", "a+b") as record:  # as a PUT of part 1 still running holds it
        fcntl.flock(record, fcntl.LOCK_EX)
        status, body = put_part(gateway_url, uid, 1, b"1" * 5)
        assert status == 409 and "another connection" in error_of(body)
    with open(folder / "data", "rb") as data:
        fcntl.flock(data, fcntl.LOCK_SH)  # as a PUT in flight holds it
        status, body = call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 1})
        assert status == 409 and "parts arriving" in body["error"]
        fcntl.flock(data, fcntl.LOCK_UN)
        fcntl.flock(data, fcntl.LOCK_EX)  # as a commit holds it
        status, body = put_part(gateway_url, uid, 1, b"1" * 5)
        assert status == 409 and "being committed" in error_of(body)
    assert put_part(gateway_url, uid, 1, b"1" * 5)[0] == 200
    assert call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 2})[0] == 201
    assert (gateway_root / "checkpoints" / "l.bin").read_bytes() == b"0" * PART + b"1" * 5
    assert put_part(gateway_url, uid, 1, b"1" * 5)[0] == 404  # committed: no straggler can write into it


def test_inplace_parts_from_two_worker_processes(gateway_root: Path) -> None:
    parts = [random.Random(n).randbytes(PART) for n in range(12)]
    with GatewayProcess.start(gateway_root, workers=2) as gw:
        uid = start_inplace(gw.url, "checkpoints/w.bin")
        with ThreadPoolExecutor(6) as pool:  # new connections: the kernel spreads them over both workers
            statuses = list(pool.map(lambda n: put_part(gw.url, uid, n, parts[n])[0], reversed(range(12))))
        assert statuses == [200] * 12
        status, done = call_json(gw.url, "POST", f"/_farfeed/uploads/{uid}/commit",
                                 {"parts": 12, "xxh64": xxhash.xxh64(b"".join(parts)).hexdigest()})
        assert status == 201, done
    assert (gateway_root / "checkpoints" / "w.bin").read_bytes() == b"".join(parts)


def test_inplace_client_gone_mid_part_leaves_it_unlisted(gateway_root: Path, gateway_url: str) -> None:
    uid = start_inplace(gateway_url, "checkpoints/g.bin")
    with socket.create_connection((urlsplit(gateway_url).hostname or "", urlsplit(gateway_url).port or 0)) as sock:
        sock.sendall(f"PUT /_farfeed/uploads/{uid}/0 HTTP/1.1\r\nHost: x\r\nContent-Length: {PART}\r\n\r\n".encode())
        sock.sendall(b"z" * (PART // 2))  # then the link is cut
    assert call_json(gateway_url, "GET", f"/_farfeed/uploads/{uid}")[1]["parts"] == {}
    assert put_part(gateway_url, uid, 0, b"a" * PART)[0] == 200  # the re-send takes over
    assert call_json(gateway_url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 1})[0] == 201
    assert (gateway_root / "checkpoints" / "g.bin").read_bytes() == b"a" * PART
