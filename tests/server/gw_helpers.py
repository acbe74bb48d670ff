"""Helpers for the gateway tests: a fake dataset, raw HTTP calls, frame parsing, snapshots."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

FRAME = struct.Struct(">IQ")
TRAILER = 0xFFFFFFFF


def make_dataset(root: Path, name: str = "ds", *, sizes: tuple[int, ...] = (300_000, 200_000, 150_000), seed: int = 0) -> dict[str, bytes]:
    """A fake dataset folder (dataset.json + random 'shards'); returns ROOT-relative path -> bytes."""
    rng = random.Random(seed)
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({"kind": "images", "samples": 42, "bytes": sum(sizes)}))
    files = {}
    for i, size in enumerate(sizes):
        data = rng.randbytes(size)
        (folder / f"shard-{i:05d}.tar").write_bytes(data)
        files[f"{name}/shard-{i:05d}.tar"] = data
    return files


def call(
    url: str, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (the path is sent exactly as given, no normalising)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def call_json(url: str, method: str, path: str, obj: Any = None, *, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """A request with a JSON body; the decoded JSON answer (or None when empty)."""
    body = None if obj is None else json.dumps(obj).encode()
    status, _, data = call(url, method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    return status, (json.loads(data) if data else None)


def error_of(data: bytes) -> str:
    """The message of a JSON error body (fails the test if the body is not one)."""
    obj = json.loads(data)
    assert set(obj) == {"error"}, obj
    return str(obj["error"])


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Frames of a batch response; asserts it ends with exactly one trailer."""
    frames, pos = [], 0
    while True:
        index, length = FRAME.unpack_from(data, pos)
        pos += FRAME.size
        if index == TRAILER:
            assert length == 0 and pos == len(data), "trailer must end the stream"
            return frames
        frames.append((index, data[pos : pos + length]))
        pos += length


def snapshot(top: Path, *, skip: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``top`` except under ``skip``: path -> (size, mtime_ns, sha256)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            dirnames[:] = []
            continue
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = hashlib.sha256(Path(p).read_bytes()).hexdigest() if os.path.isfile(p) and not os.path.islink(p) else os.readlink(p) if os.path.islink(p) else ""
            out[p] = (st.st_size, st.st_mtime_ns, digest)
    return out


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made with the openssl command (the `cryptography`
    package is not installed)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


READ_TOKEN = "r" * 32
WRITE_TOKEN = "w" * 32
BOTH_TOKEN = "b" * 32


@dataclass
class World:
    """A served ROOT and the untouchable folder beside it."""

    url: str
    root: Path
    outside: Path
    files: dict[str, bytes]
    before: dict[str, tuple[int, int, str]]

    def unharmed(self, *, headers: dict[str, str] | None = None) -> None:
        """Nothing outside ROOT changed, the old checkpoint is intact, and the server still answers."""
        assert snapshot(self.root.parent, skip=self.root) == self.before
        assert (self.root / "checkpoints" / "run1" / "model.bin").read_bytes() == b"old model"
        status, _, body = call(self.url, "GET", "/healthz")
        assert (status, body) == (200, b"ok")
        status, _, body = call(self.url, "GET", "/ds/shard-00000.tar", headers=headers)
        assert status == 200 and body == self.files["ds/shard-00000.tar"]
