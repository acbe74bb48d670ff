"""One test per bad input: the right 4xx, nothing outside ROOT changed, the server still answers."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest
import xxhash
from helpers.http import call, call_json, error_of
from helpers.world import World


def batch(world: World, body: object, *, raw: bytes | None = None) -> tuple[int, str]:
    data = raw if raw is not None else json.dumps(body).encode()
    status, _, out = call(world.url, "POST", "/_farfeed/batch", body=data)
    return status, error_of(out)


def get(world: World, path: str, **headers: str) -> tuple[int, str]:
    status, _, out = call(world.url, "GET", path, headers=headers)
    return status, error_of(out)


# --- traversal -------------------------------------------------------------------------


def test_raw_dotdot_get(world: World) -> None:
    assert get(world, "/ds/../../outside/secret.txt")[0] == 400
    world.unharmed()


@pytest.mark.parametrize("path", ["/ds/%2e%2e/%2E%2E/outside/secret.txt", "/..%2f..%2foutside/secret.txt"])
def test_encoded_dotdot_get(world: World, path: str) -> None:
    status, message = get(world, path)
    assert status == 400 and ".." in message
    world.unharmed()


def test_dotdot_in_batch_item(world: World) -> None:
    status, message = batch(world, {"ranges": [["ds/shard-00000.tar", 0, 1], ["ds/../../outside/secret.txt", 0, 6]]})
    assert status == 400 and "range 1" in message
    world.unharmed()


def test_dotdot_in_upload_path(world: World) -> None:
    assert call_json(world.url, "POST", "/_farfeed/uploads", {"path": "checkpoints/../../outside/x"})[0] == 400
    assert call(world.url, "PUT", "/checkpoints/../../outside/secret.txt", body=b"pwned")[0] == 400
    assert call(world.url, "PUT", "/checkpoints/%2e%2e/%2e%2e/outside/secret.txt", body=b"pwned")[0] == 400
    assert call(world.url, "DELETE", "/checkpoints/../../outside/secret.txt")[0] == 400
    world.unharmed()


@pytest.mark.parametrize("path", ["//etc/passwd", "/%2Fetc/passwd"])
def test_absolute_path_get(world: World, path: str) -> None:
    status, message = get(world, path)
    assert status == 400 and "relative" in message
    world.unharmed()


def test_absolute_path_in_batch_and_upload(world: World) -> None:
    assert batch(world, {"ranges": [[str(world.outside / "secret.txt"), 0, 6]]})[0] == 400
    assert call_json(world.url, "POST", "/_farfeed/uploads", {"path": str(world.outside / "x")})[0] == 400
    world.unharmed()


def test_nul_and_backslash(world: World) -> None:
    assert get(world, "/ds/shard-00000.tar%00.txt")[0] == 400
    assert get(world, "/ds%5c..%5c..%5coutside%5csecret.txt")[0] == 400
    assert batch(world, {"ranges": [["ds\\shard-00000.tar", 0, 1]]})[0] == 400
    world.unharmed()


def test_symlink_file_out_of_root(world: World) -> None:
    assert get(world, "/ds/link-out")[0] == 404
    assert batch(world, {"ranges": [["ds/link-out", 0, 6]]})[0] == 404
    listed = call_json(world.url, "GET", "/_farfeed/list?prefix=ds/")[1]["objects"]
    assert "ds/link-out" not in [o["path"] for o in listed]
    world.unharmed()


def test_symlink_dir_out_of_root(world: World) -> None:
    assert get(world, "/ds/dirlink-out/data.bin")[0] == 404
    assert batch(world, {"ranges": [["ds/dirlink-out/data.bin", 0, 4]]})[0] == 404
    world.unharmed()


def test_write_through_symlink_out_of_root(world: World) -> None:
    assert call(world.url, "PUT", "/checkpoints/escape/data.bin", body=b"pwned")[0] == 403
    assert call(world.url, "DELETE", "/checkpoints/escape/data.bin")[0] == 403
    assert call_json(world.url, "POST", "/_farfeed/uploads", {"path": "checkpoints/escape/new.bin"})[0] == 403
    world.unharmed()


# --- ranges ------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=-5-3", "bytes=a-b", "bytes=0-1,5-6", "items=0-1"])
def test_bad_range_header(world: World, header: str) -> None:
    assert get(world, "/ds/shard-00000.tar", Range=header)[0] == 400
    world.unharmed()


def test_negative_offset_or_length_in_batch(world: World) -> None:
    assert batch(world, {"ranges": [["ds/shard-00000.tar", -1, 5]]})[0] == 400
    assert batch(world, {"ranges": [["ds/shard-00000.tar", 0, -5]]})[0] == 400
    world.unharmed()


def test_range_past_the_end_get(world: World) -> None:
    size = len(world.files["ds/shard-00000.tar"])
    status, headers, body = call(world.url, "GET", "/ds/shard-00000.tar", headers={"Range": f"bytes={size}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{size}" and error_of(body)
    world.unharmed()


def test_range_past_the_end_batch(world: World) -> None:
    size = len(world.files["ds/shard-00000.tar"])
    status, message = batch(world, {"ranges": [["ds/shard-00000.tar", 0, 1], ["ds/shard-00000.tar", size - 10, 11]]})
    assert status == 416 and "range 1" in message
    world.unharmed()


def test_unknown_dataset_and_object(world: World) -> None:
    assert get(world, "/imagenet/shard-00000.tar")[0] == 404
    assert get(world, "/ds/shard-99999.tar")[0] == 404
    assert get(world, "/ds")[0] == 404  # a folder is not an object
    assert batch(world, {"ranges": [["ds/nope.tar", 0, 1]]})[0] == 404
    world.unharmed()


# --- malformed batch bodies --------------------------------------------------------------


def test_batch_not_json(world: World) -> None:
    status, message = batch(world, None, raw=b"{not json")
    assert status == 400 and "JSON" in message
    world.unharmed()


@pytest.mark.parametrize(
    "body",
    [[], {"ranges": {}}, {"ranges": [["ds/shard-00000.tar", 0]]}, {"ranges": [1]}, {"ranges": [], "extra": 1}, {}],
)
def test_batch_wrong_shapes(world: World, body: object) -> None:
    assert batch(world, body)[0] == 400
    world.unharmed()


@pytest.mark.parametrize("item", [[7, 0, 1], ["ds/shard-00000.tar", "0", 1], ["ds/shard-00000.tar", 0, None]])
def test_batch_wrong_types(world: World, item: list[object]) -> None:
    assert batch(world, {"ranges": [item]})[0] == 400
    world.unharmed()


@pytest.mark.parametrize("item", [["ds/shard-00000.tar", True, 1], ["ds/shard-00000.tar", 0, 1.5], ["ds/shard-00000.tar", 1e3, 1]])
def test_batch_bool_and_float_numbers(world: World, item: list[object]) -> None:
    status, message = batch(world, {"ranges": [item]})
    assert status == 400 and "integer" in message
    world.unharmed()


def test_batch_body_too_large(world: World) -> None:
    ranges = [["ds/shard-00000.tar", 0, 1]] * 5000  # ~130 KB of JSON, over the world's 64 KiB
    assert batch(world, {"ranges": ranges})[0] == 413
    world.unharmed()


def test_too_many_ranges(world: World) -> None:
    status, message = batch(world, {"ranges": [["a", 0, 1]] * 4097})
    assert status == 400 and "too many ranges" in message
    world.unharmed()


def test_batch_asks_too_many_bytes(world: World) -> None:
    status, message = batch(world, {"ranges": [["ds/shard-00000.tar", 0, 600 << 20]] * 2})
    assert status == 400 and "max_batch_bytes" in message
    world.unharmed()


# --- writes ------------------------------------------------------------------------------


def test_write_outside_checkpoints(world: World) -> None:
    assert call(world.url, "PUT", "/ds/shard-00000.tar", body=b"pwned")[0] == 403
    assert call(world.url, "DELETE", "/ds/shard-00000.tar")[0] == 403
    assert call(world.url, "PUT", "/checkpoints", body=b"x")[0] == 403
    assert call_json(world.url, "POST", "/_farfeed/uploads", {"path": "ds/new.tar"})[0] == 403
    world.unharmed()


def test_commit_with_missing_part_keeps_old_object(world: World) -> None:
    _, made = call_json(world.url, "POST", "/_farfeed/uploads", {"path": "checkpoints/run1/model.bin"})
    uid = made["upload_id"]
    assert call(world.url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"new ")[0] == 200
    assert call(world.url, "PUT", f"/_farfeed/uploads/{uid}/2", body=b"model")[0] == 200
    status, answer = call_json(world.url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 3})
    assert status == 409 and "missing parts 1" in answer["error"]
    world.unharmed()


def test_put_checksum_mismatch_keeps_old_object(world: World) -> None:
    status, _, body = call(world.url, "PUT", "/checkpoints/run1/model.bin", body=b"new model",
                           headers={"X-Farfeed-Xxh64": xxhash.xxh64(b"other").hexdigest()})
    assert status == 409 and "mismatch" in error_of(body)
    assert list((world.root / ".farfeed-uploads").iterdir()) == []
    world.unharmed()


def test_commit_checksum_mismatch_keeps_old_object(world: World) -> None:
    _, made = call_json(world.url, "POST", "/_farfeed/uploads", {"path": "checkpoints/run1/model.bin"})
    uid = made["upload_id"]
    call(world.url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"new model")
    status, answer = call_json(world.url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 1, "xxh64": "0123456789abcdef"})
    assert status == 409 and "mismatch" in answer["error"]
    world.unharmed()


def test_part_checksum_mismatch_and_bad_header(world: World) -> None:
    _, made = call_json(world.url, "POST", "/_farfeed/uploads", {"path": "checkpoints/run1/model.bin"})
    uid = made["upload_id"]
    assert call(world.url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"abc", headers={"X-Farfeed-Xxh64": "0" * 16})[0] == 409
    assert call(world.url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"abc", headers={"X-Farfeed-Xxh64": "xyz"})[0] == 400
    assert call(world.url, "PUT", "/checkpoints/run1/model.bin", body=b"abc", headers={"X-Farfeed-Xxh64": "12"})[0] == 400
    assert call_json(world.url, "GET", f"/_farfeed/uploads/{uid}")[1]["parts"] == {}
    world.unharmed()


@pytest.mark.parametrize("part", ["-1", "abc", "100000", "1.5"])
def test_bad_part_number(world: World, part: str) -> None:
    _, made = call_json(world.url, "POST", "/_farfeed/uploads", {"path": "checkpoints/x.bin"})
    assert call(world.url, "PUT", f"/_farfeed/uploads/{made['upload_id']}/{part}", body=b"abc")[0] == 400
    world.unharmed()


@pytest.mark.parametrize("uid", ["..%2f..%2foutside", "u-123", "u-" + "0" * 32])
def test_unknown_or_malformed_upload_id(world: World, uid: str) -> None:
    assert call(world.url, "PUT", f"/_farfeed/uploads/{uid}/0", body=b"abc")[0] == 404
    assert call_json(world.url, "POST", f"/_farfeed/uploads/{uid}/commit", {"parts": 1})[0] == 404
    assert call(world.url, "DELETE", f"/_farfeed/uploads/{uid}")[0] == 404
    world.unharmed()


@pytest.mark.parametrize("body", [{"parts": -1}, {"parts": True}, {"parts": "3"}, {"parts": 1, "xxh64": 5}, {"parts": 1, "x": 1}])
def test_bad_commit_body(world: World, body: object) -> None:
    _, made = call_json(world.url, "POST", "/_farfeed/uploads", {"path": "checkpoints/x.bin"})
    assert call_json(world.url, "POST", f"/_farfeed/uploads/{made['upload_id']}/commit", body)[0] == 400
    world.unharmed()


def test_part_too_large(world: World) -> None:
    _, made = call_json(world.url, "POST", "/_farfeed/uploads", {"path": "checkpoints/x.bin"})
    assert call(world.url, "PUT", f"/_farfeed/uploads/{made['upload_id']}/0", body=b"x" * ((1 << 20) + 1))[0] == 413
    world.unharmed()


def test_put_onto_a_folder_or_under_a_file(world: World) -> None:
    assert call(world.url, "PUT", "/checkpoints/run1", body=b"x")[0] == 400
    assert call(world.url, "PUT", "/checkpoints/run1/model.bin/inner", body=b"x")[0] == 400
    assert list((world.root / ".farfeed-uploads").iterdir()) == []
    world.unharmed()


def test_client_gone_mid_put_leaves_nothing(world: World) -> None:
    parts = urlsplit(world.url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(b"PUT /checkpoints/run1/model.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
    staging = world.root / ".farfeed-uploads"
    done = 'farfeed_requests_total{endpoint="object_put",status="499"} 1'
    for _ in range(500):  # wait until the server has seen the reset and finished the PUT
        if done in call(world.url, "GET", "/metrics")[2].decode():
            break
        time.sleep(0.01)
    assert done in call(world.url, "GET", "/metrics")[2].decode()
    assert list(staging.iterdir()) == []  # the staging file was dropped
    listing = call_json(world.url, "GET", "/_farfeed/list?prefix=checkpoints/")[1]["objects"]
    assert [o["path"] for o in listing] == ["checkpoints/run1/model.bin"]
    world.unharmed()


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ds/.hidden", "/.farfeed-uploads", "/_farfeed/nothing", "/ds/_farfeed"])
def test_hidden_and_reserved_names_read(world: World, path: str) -> None:
    assert get(world, path)[0] == 400
    world.unharmed()


@pytest.mark.parametrize("path", ["/checkpoints/.x", "/checkpoints/run1/_farfeed.bin"])
def test_hidden_and_reserved_names_write(world: World, path: str) -> None:
    assert call(world.url, "PUT", path, body=b"x")[0] == 400
    world.unharmed()


def test_bad_list_prefix_and_method(world: World) -> None:
    assert call(world.url, "GET", "/_farfeed/list?prefix=../outside")[0] == 400
    assert call(world.url, "GET", "/_farfeed/list?prefix=/etc")[0] == 400
    status, _, body = call(world.url, "POST", "/ds/shard-00000.tar", body=b"x")
    assert status == 405 and error_of(body)
    world.unharmed()
