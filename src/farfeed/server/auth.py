"""Bearer tokens and their scopes: who may read, who may write.

The tokens file has one ``TOKEN SCOPES`` pair per line (``#`` comments, blank lines ok),
scopes a comma list of ``read`` and ``write``; see docs/HTTP_API.md. Tokens are compared
by their SHA-256 digest, so a lookup takes the same time whatever the guess.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from farfeed.errors import ConfigError
from farfeed.server.responses import ApiError, Handler

SCOPES = frozenset({"read", "write"})
MIN_TOKEN_LENGTH = 16
_F = TypeVar("_F", bound=Handler)


def needs(scope: str | None) -> Callable[[_F], _F]:
    """Mark a handler with the scope a token must hold to call it (None: open to all)."""

    def mark(handler: _F) -> _F:
        handler.farfeed_scope = scope  # type: ignore[attr-defined]
        return handler

    return mark


def required_scope(request: web.Request) -> str | None:
    """The scope the matched handler needs; ``read`` for anything unmarked or unrouted."""
    handler = request.match_info.handler
    return getattr(handler, "farfeed_scope", "read")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Tokens and their scopes.

    >>> TokenTable({"3f9c2a0e6b1d4c7f8a5e9d2b1c0f4a6e": {"read"}}).scopes_for("nope")
    frozenset()
    """

    def __init__(self, tokens: Mapping[str, frozenset[str] | set[str]]) -> None:
        self._table: dict[bytes, frozenset[str]] = {}
        for token, scopes in tokens.items():
            _check_token(token)
            bad = set(scopes) - SCOPES
            if bad or not scopes:
                raise ConfigError(f"token scopes must be a non-empty subset of {sorted(SCOPES)}, got {sorted(scopes)!r}")
            self._table[_digest(token)] = frozenset(scopes)

    @classmethod
    def load(cls, path: str | Path) -> TokenTable:
        """Read a tokens file; ConfigError naming the file and line of the first problem."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read tokens file {str(path)!r}: {exc}") from exc
        tokens: dict[str, frozenset[str]] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"tokens file {str(path)!r} line {number}"
            fields = line.split()
            if len(fields) != 2:
                raise ConfigError(f"{where}: expected 'TOKEN SCOPES', got {len(fields)} fields")
            token, scope_text = fields
            scopes = frozenset(s.strip() for s in scope_text.split(",") if s.strip())
            try:
                _check_token(token)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            if not scopes or scopes - SCOPES:
                raise ConfigError(
                    f"{where}: scopes must be a comma list of read,write; got {scope_text!r}"
                )
            if token in tokens:
                raise ConfigError(f"{where}: this token is listed twice")
            tokens[token] = scopes
        if not tokens:
            raise ConfigError(f"tokens file {str(path)!r} lists no tokens")
        return cls(tokens)

    def scopes_for(self, token: str) -> frozenset[str]:
        """The scopes of ``token``; empty when it is unknown."""
        return self._table.get(_digest(token), frozenset())

    def __len__(self) -> int:
        return len(self._table)


def _check_token(token: str) -> None:
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"a token must be at least {MIN_TOKEN_LENGTH} characters, got {len(token)}")
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ConfigError("a token must be printable ASCII without spaces")


def auth_middleware(tokens: TokenTable) -> Middleware:
    """Middleware: 401 without a known bearer token, 403 when its scopes lack the handler's."""

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = required_scope(request)
        if scope is None:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing bearer token (Authorization: Bearer TOKEN)", headers=_CHALLENGE)
        scopes = tokens.scopes_for(token.strip())
        if not scopes:
            raise ApiError(401, "unknown bearer token", headers=_CHALLENGE)
        if scope not in scopes:
            raise ApiError(403, f"token lacks the {scope!r} scope for {request.method} {request.path}")
        return await handler(request)

    return check_token


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="farfeed"'}
