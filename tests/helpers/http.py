"""Raw HTTP for the gateway tests: one request as sent, JSON calls, batch frames, a certificate."""

from __future__ import annotations

import http.client
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

#: A batch response frame header: range index (u32) and length (u64), big-endian.
FRAME = struct.Struct(">IQ")
#: The index of the frame that ends a batch response.
TRAILER = 0xFFFFFFFF


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


def call_json(
    url: str, method: str, path: str, obj: Any = None, *, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """A request with a JSON body; the decoded JSON answer (or None when empty)."""
    body = None if obj is None else json.dumps(obj).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    status, _, data = call(url, method, path, body=body, headers=all_headers)
    return status, (json.loads(data) if data else None)


def error_of(data: bytes) -> str:
    """The message of a JSON error body (fails the test if the body is not one)."""
    obj = json.loads(data)
    assert set(obj) == {"error"}, obj
    return str(obj["error"])


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Frames of a batch response; asserts it ends with exactly one trailer."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while True:
        index, length = FRAME.unpack_from(data, pos)
        pos += FRAME.size
        if index == TRAILER:
            assert length == 0 and pos == len(data), "trailer must end the stream"
            return frames
        frames.append((index, data[pos : pos + length]))
        pos += length


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key) made with the openssl command (the
    `cryptography` package is not installed); skips the test when openssl is missing."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
