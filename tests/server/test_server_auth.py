"""Tokens: 401 without a known one, 403 without the scope; /healthz stays open; file errors name the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.http import call, error_of
from helpers.world import BOTH_TOKEN, READ_TOKEN, WRITE_TOKEN, World

from farfeed.errors import ConfigError
from farfeed.server import TokenTable


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_read_token_reads_and_healthz_is_open(token_world: World) -> None:
    assert call(token_world.url, "GET", "/healthz")[0] == 200
    for path in ("/ds/shard-00000.tar", "/_farfeed/info", "/_farfeed/datasets", "/_farfeed/list?prefix=ds", "/metrics"):
        assert call(token_world.url, "GET", path, headers=bearer(READ_TOKEN))[0] == 200, path
    token_world.unharmed(headers=bearer(BOTH_TOKEN))


@pytest.mark.parametrize("path", ["/ds/shard-00000.tar", "/_farfeed/info", "/metrics", "/nowhere"])
def test_missing_token_is_401(token_world: World, path: str) -> None:
    status, headers, body = call(token_world.url, "GET", path)
    assert status == 401 and "bearer" in error_of(body).lower() and headers["www-authenticate"].startswith("Bearer")
    token_world.unharmed(headers=bearer(READ_TOKEN))


@pytest.mark.parametrize("header", [f"Bearer {'x' * 32}", f"Basic {READ_TOKEN}", "Bearer", f"Bearer {READ_TOKEN}x"])
def test_wrong_token_is_401(token_world: World, header: str) -> None:
    assert call(token_world.url, "GET", "/ds/shard-00000.tar", headers={"Authorization": header})[0] == 401
    assert call(token_world.url, "PUT", "/checkpoints/run1/model.bin", body=b"pwned", headers={"Authorization": header})[0] == 401
    token_world.unharmed(headers=bearer(READ_TOKEN))


def test_read_token_cannot_write(token_world: World) -> None:
    h = bearer(READ_TOKEN)
    assert call(token_world.url, "PUT", "/checkpoints/run1/model.bin", body=b"pwned", headers=h)[0] == 403
    assert call(token_world.url, "DELETE", "/checkpoints/run1/model.bin", headers=h)[0] == 403
    status, _, body = call(token_world.url, "POST", "/_farfeed/uploads", body=b'{"path": "checkpoints/x"}', headers=h)
    assert status == 403 and "write" in error_of(body)
    token_world.unharmed(headers=h)


def test_write_token_cannot_read_but_writes(token_world: World) -> None:
    h = bearer(WRITE_TOKEN)
    assert call(token_world.url, "GET", "/ds/shard-00000.tar", headers=h)[0] == 403
    assert call(token_world.url, "POST", "/_farfeed/batch", body=b'{"ranges": []}', headers=h)[0] == 403
    assert call(token_world.url, "PUT", "/checkpoints/run2/m.bin", body=b"new", headers=h)[0] == 201
    assert call(token_world.url, "PUT", "/ds/new.bin", body=b"new", headers=h)[0] == 403  # outside checkpoints/
    assert (token_world.root / "checkpoints" / "run2" / "m.bin").read_bytes() == b"new"
    token_world.unharmed(headers=bearer(BOTH_TOKEN))


def test_tokens_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# token scopes\n\n{READ_TOKEN}  read   # the reader\n{BOTH_TOKEN} read,write\n")
    table = TokenTable.load(path)
    assert table.scopes_for(READ_TOKEN) == {"read"}
    assert table.scopes_for(BOTH_TOKEN) == {"read", "write"}
    assert table.scopes_for(WRITE_TOKEN) == frozenset()


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (f"{READ_TOKEN} read\n{BOTH_TOKEN} admin\n", 2, "scopes"),
        (f"# c\n{READ_TOKEN}\n", 2, "fields"),
        ("short read\n", 1, "at least 16"),
        (f"{READ_TOKEN} read\n{READ_TOKEN} write\n", 2, "twice"),
        (f"{READ_TOKEN} read extra\n", 1, "fields"),
    ],
)
def test_bad_tokens_file_names_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"line {line}: .*{words}"):
        TokenTable.load(path)


def test_empty_or_missing_tokens_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("# nobody\n")
    with pytest.raises(ConfigError, match="no tokens"):
        TokenTable.load(tmp_path / "empty")
    with pytest.raises(ConfigError, match="cannot read"):
        TokenTable.load(tmp_path / "missing")
