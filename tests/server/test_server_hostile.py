"""Hostile input from issue 11: names and paths too long or too deep, JSON nested 100,000
deep, lone surrogates. Each is a 4xx naming the problem, no answer holds the server's own
paths, nothing is left on disk, and the server keeps serving."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.http import call, call_json, error_of
from helpers.world import World

from farfeed.server import serve_in_thread


def leaves_nothing(world: World) -> None:
    """No staged file and no new folder or file under checkpoints/ (beyond the world's own)."""
    assert os.listdir(world.root / ".farfeed-uploads") == []
    found = sorted(str(p.relative_to(world.root)) for p in (world.root / "checkpoints").rglob("*"))
    assert found == ["checkpoints/escape", "checkpoints/run1", "checkpoints/run1/model.bin"]


def refused(world: World, method: str, path: str, *, body: bytes | None = None, status: tuple[int, ...] = (400,)) -> str:
    """Send one request; assert its status, a JSON error, and no server path in the answer."""
    got, _, data = call(world.url, method, path, body=body)
    assert got in status, (got, data[:300])
    assert str(world.root) not in data.decode(errors="replace") and "/tmp" not in data.decode(errors="replace")
    return error_of(data)


def test_put_a_300_character_name(world: World) -> None:
    message = refused(world, "PUT", "/checkpoints/" + "n" * 300, body=b"abc", status=(400, 414))
    assert "300 bytes" in message and "255" in message
    leaves_nothing(world)
    world.unharmed()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_1500_level_path(world: World, method: str) -> None:
    got, _, data = call(world.url, method, "/checkpoints/" + "a/" * 1500 + "x", body=b"abc" if method == "PUT" else None)
    assert got == 414
    if method != "HEAD":
        assert "too long" in error_of(data)
    leaves_nothing(world)
    world.unharmed()


def test_deep_paths_in_bodies(world: World) -> None:
    deep = "checkpoints/" + "a/" * 1500 + "x"
    assert "3013 bytes" in refused(world, "POST", "/_farfeed/uploads", body=json.dumps({"path": deep}).encode())
    assert "range 0" in refused(world, "POST", "/_farfeed/batch", body=json.dumps({"ranges": [[deep, 0, 1]]}).encode())
    levels = "checkpoints/" + "a/" * 70 + "x"  # short enough in bytes, too many levels
    assert "72 levels" in refused(world, "POST", "/_farfeed/uploads", body=json.dumps({"path": levels}).encode())
    leaves_nothing(world)
    world.unharmed()


@pytest.mark.parametrize("endpoint", ["/_farfeed/batch", "/_farfeed/uploads"])
def test_100000_nested_brackets(gateway_url: str, endpoint: str) -> None:
    """(The world's batch body limit is 64 KiB, so this uses a gateway with the default 8 MiB.)"""
    for body in (b"[" * 100_000, b'{"ranges": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        status, _, data = call(gateway_url, "POST", endpoint, body=body)
        assert status == 400 and "nested too deeply" in error_of(data)
    assert call(gateway_url, "GET", "/healthz")[2] == b"ok"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_lone_surrogate_in_url(world: World, method: str) -> None:
    for path in ("/ds/%ED%A0%80", "/checkpoints/run1/%ED%B2%80.bin", "/checkpoints/%FF"):
        assert "not valid UTF-8" in refused(world, method, path, body=b"x" if method == "PUT" else None)
    leaves_nothing(world)
    world.unharmed()


def test_lone_surrogate_in_json_paths(world: World) -> None:
    for surrogate in ("\\ud800", "\\udc80"):  # \udc80 would even encode (surrogateescape) as byte 0x80
        body = ('{"ranges": [["ds/shard-00000.tar", 0, 1], ["ds/' + surrogate + '", 0, 1]]}').encode()
        assert "range 1" in refused(world, "POST", "/_farfeed/batch", body=body)
        body = ('{"path": "checkpoints/run1/' + surrogate + '.bin"}').encode()
        assert "lone surrogate" in refused(world, "POST", "/_farfeed/uploads", body=body)
    leaves_nothing(world)
    world.unharmed()


def test_20_nested_250_character_folders(world: World) -> None:
    deep = "checkpoints/" + "/".join(["d" * 250] * 20) + "/x.bin"
    refused(world, "PUT", "/" + deep, body=b"abc", status=(400, 414))
    refused(world, "POST", "/_farfeed/uploads", body=json.dumps({"path": deep}).encode())
    leaves_nothing(world)
    world.unharmed()


def test_file_system_limit_below_the_gateways(tmp_path: Path) -> None:
    """Where ROOT itself is long, a path within the gateway's limits can still be too long for
    the kernel (ENAMETOOLONG): 400 without ROOT in the answer, and the folders that the
    refused write had made are gone again."""
    root = tmp_path.joinpath(*["r" * 240] * 9)  # about 2,200 bytes of ROOT
    (root / "checkpoints").mkdir(parents=True)
    deep = "checkpoints/" + "/".join(["d" * 200] * 10) + "/x.bin"  # 2,027 bytes: allowed
    with serve_in_thread(root) as url:
        status, made = call_json(url, "POST", "/_farfeed/uploads", {"path": deep})
        assert status == 201  # the destination is not touched before the commit
        uid = made["upload_id"]
        assert call(url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"abc")[0] == 200
        for method, path, body in (
            ("PUT", "/" + deep, b"abc"),
            ("POST", f"/_farfeed/uploads/{uid}/commit", json.dumps({"parts": 1}).encode()),
            ("GET", "/" + deep, None),
        ):
            status, _, data = call(url, method, path, body=body)
            text = data.decode()
            assert status == (404 if method == "GET" else 400), (status, text)
            assert "r" * 240 not in text and str(tmp_path) not in text
            if method != "GET":
                assert "too long for the storage site's file system" in error_of(data)
        assert os.listdir(root / "checkpoints") == []  # no folder left by the refused writes
        assert call(url, "DELETE", f"/_farfeed/uploads/{uid}")[0] == 204
        assert os.listdir(root / ".farfeed-uploads") == []
        assert call(url, "PUT", "/checkpoints/ok.bin", body=b"fine")[0] == 201
