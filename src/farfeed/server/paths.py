"""The one place a client's path becomes a real file path: always inside ROOT, never hidden.

Every endpoint goes through `GatewayPaths.resolve` (reads) or `resolve_write` (writes), so
a traversal attempt (``..``, absolute, backslash, NUL, hidden or reserved names) is a 400,
a symlink leading out of ROOT reads as absent (404), and writes land only in checkpoints/.
Sizes are checked before any file system call: a name over `MAX_NAME_BYTES`, a path over
`MAX_PATH_BYTES` or deeper than `MAX_DEPTH`, or text that is not valid Unicode is a 400
(a URL path: 414 for the sizes), never an ``ENAMETOOLONG`` or a ``RecursionError``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote_to_bytes

from aiohttp import web

from farfeed.errors import ConfigError
from farfeed.server.responses import ApiError, Handler

#: The writable area, directly under ROOT.
CHECKPOINTS = "checkpoints"
#: Upload staging, directly under ROOT (hidden, so never served).
STAGING = ".farfeed-uploads"
#: Path segments starting with this are the API's, not objects.
RESERVED = "_farfeed"
#: Longest name of one file or folder, in UTF-8 bytes (NAME_MAX of Linux file systems).
MAX_NAME_BYTES = 255
#: Longest path below ROOT, in UTF-8 bytes (leaves room for ROOT within PATH_MAX, 4,096).
MAX_PATH_BYTES = 2048
#: Most segments in a path.
MAX_DEPTH = 64


def split_path(path: object, *, what: str = "path") -> list[str]:
    """Check a client path and return its segments; ApiError(400) naming the problem.

    >>> split_path("imagenet//shard-00000.tar")
    ['imagenet', 'shard-00000.tar']
    """
    if not isinstance(path, str):
        raise ApiError(400, f"{what} must be a string, got {path!r}"[:300])
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise ApiError(400, f"{what} is not valid Unicode (it holds a lone surrogate such as '\\ud800')") from None
    if size > MAX_PATH_BYTES:
        raise ApiError(400, f"{what} has {size} bytes, more than the {MAX_PATH_BYTES} a path may have")
    if "\x00" in path:
        raise ApiError(400, f"{what} may not contain NUL bytes: {path!r}")
    if "\\" in path:
        raise ApiError(400, f"{what} may not contain backslashes: {path!r}")
    if path.startswith("/"):
        raise ApiError(400, f"{what} must be relative to the gateway root: {path!r}")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ApiError(400, f"{what} is empty: {path!r}")
    if len(parts) > MAX_DEPTH:
        raise ApiError(400, f"{what} has {len(parts)} levels, more than the {MAX_DEPTH} a path may have")
    for part in parts:
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise ApiError(400, f"{what} has a name of {len(part.encode())} bytes, more than the {MAX_NAME_BYTES} a file name may have: {part[:40]!r}...")
        if part in (".", ".."):
            raise ApiError(400, f"{what} may not contain '.' or '..' segments: {path!r}")
        if part.startswith("."):
            raise ApiError(400, f"{what} names a hidden entry ({part!r}), never served: {path!r}")
        if part.startswith(RESERVED):
            raise ApiError(400, f"{what} uses a name reserved for the API ({part!r}): {path!r}")
    return parts


@web.middleware
async def url_path_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a URL path that is too long or too deep (414) or not UTF-8 once
    percent-decoded (400), before any handler or file system call sees it."""
    raw = request.raw_path.partition("?")[0]
    decoded = unquote_to_bytes(raw)
    if len(decoded) > MAX_PATH_BYTES + 1:
        raise ApiError(414, f"URL path of {len(decoded)} bytes is too long: a path may have {MAX_PATH_BYTES}")
    if decoded.count(b"/") > MAX_DEPTH + 1:
        raise ApiError(414, f"URL path has {decoded.count(b'/')} levels, more than the {MAX_DEPTH} a path may have")
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "URL path is not valid UTF-8 once percent-decoded (e.g. %ED%A0%80, a lone surrogate)") from None
    return await handler(request)


def check_prefix(prefix: str) -> str:
    """Check a listing prefix (a partial path such as ``"checkpoints/run1/step-"``)."""
    if prefix == "":
        return ""
    if prefix.startswith("/"):
        raise ApiError(400, f"prefix must be relative to the gateway root: {prefix!r}")
    head, _, tail = prefix.rpartition("/")
    if head:
        split_path(head, what="prefix")
    if tail:
        split_path(tail, what="prefix")
    return prefix


class GatewayPaths:
    """ROOT, its writable area and its staging directory, with the checks that keep clients inside."""

    def __init__(self, root: str | Path) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise ConfigError(f"gateway root is not a directory: {str(root)!r}")
        self.checkpoints = os.path.join(self.root, CHECKPOINTS)
        self.staging = os.path.join(self.root, STAGING)
        os.makedirs(self.checkpoints, exist_ok=True)
        os.makedirs(self.staging, exist_ok=True)
        self.checkpoints_real = os.path.realpath(self.checkpoints)
        if not self.inside(self.checkpoints_real) or self.checkpoints_real == self.root:
            raise ConfigError(f"{self.checkpoints!r} must be a directory inside the gateway root")

    def inside(self, real: str, base: str | None = None) -> bool:
        """True when the real path ``real`` is ``base`` (default ROOT) or below it."""
        base = base or self.root
        return real == base or real.startswith(base + os.sep)

    def resolve(self, path: object) -> str:
        """The real path of an existing file for a read; 400 traversal, 404 absent or outside ROOT."""
        parts = split_path(path)
        real = os.path.realpath(os.path.join(self.root, *parts))
        if not self.inside(real) or _hidden(real[len(self.root) + 1 :]) or not os.path.isfile(real):
            raise ApiError(404, f"no such object: {path!r}")
        return real

    def resolve_write(self, path: object) -> str:
        """The real path an upload or delete targets: inside ROOT/checkpoints/ only (else 403)."""
        parts = split_path(path)
        if parts[0] != CHECKPOINTS or len(parts) < 2:
            raise ApiError(403, f"writes are allowed only under {CHECKPOINTS}/, not {path!r}")
        real = os.path.realpath(os.path.join(self.root, *parts))
        if not self.inside(real, self.checkpoints_real) or real == self.checkpoints_real:
            raise ApiError(403, f"{path!r} resolves outside {CHECKPOINTS}/ (a symlink?)")
        if os.path.isdir(real):
            raise ApiError(400, f"{path!r} is a directory, not an object")
        return real

    def relpath(self, real: str) -> str:
        """The client-facing path of a real path inside ROOT."""
        return os.path.relpath(real, self.root).replace(os.sep, "/")


def _hidden(rel: str) -> bool:
    """True when any segment of a ROOT-relative path is hidden or reserved."""
    return any(p.startswith((".", RESERVED)) for p in rel.split(os.sep))
