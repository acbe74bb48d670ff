"""Writes against a real gateway: whole PUT, chunked resumable uploads, DELETE, abort, sweep."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import xxhash
from gw_helpers import call, call_json

from farfeed.server.staging import sweep


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
