"""The one place a client's path becomes a real file path: always inside ROOT, never hidden.

Every endpoint goes through `GatewayPaths.resolve` (reads) or `resolve_write` (writes), so
a traversal attempt (``..``, absolute, backslash, NUL, hidden or reserved names) is a 400,
a symlink leading out of ROOT reads as absent (404), and writes land only in checkpoints/.
"""

from __future__ import annotations

import os
from pathlib import Path

from farfeed.errors import ConfigError
from farfeed.server.responses import ApiError

#: The writable area, directly under ROOT.
CHECKPOINTS = "checkpoints"
#: Upload staging, directly under ROOT (hidden, so never served).
STAGING = ".farfeed-uploads"
#: Path segments starting with this are the API's, not objects.
RESERVED = "_farfeed"


def split_path(path: object, *, what: str = "path") -> list[str]:
    """Check a client path and return its segments; ApiError(400) naming the problem.

    >>> split_path("imagenet//shard-00000.tar")
    ['imagenet', 'shard-00000.tar']
    """
    if not isinstance(path, str):
        raise ApiError(400, f"{what} must be a string, got {path!r}")
    if "\x00" in path:
        raise ApiError(400, f"{what} may not contain NUL bytes: {path!r}")
    if "\\" in path:
        raise ApiError(400, f"{what} may not contain backslashes: {path!r}")
    if path.startswith("/"):
        raise ApiError(400, f"{what} must be relative to the gateway root: {path!r}")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ApiError(400, f"{what} is empty: {path!r}")
    for part in parts:
        if part in (".", ".."):
            raise ApiError(400, f"{what} may not contain '.' or '..' segments: {path!r}")
        if part.startswith("."):
            raise ApiError(400, f"{what} names a hidden entry ({part!r}), never served: {path!r}")
        if part.startswith(RESERVED):
            raise ApiError(400, f"{what} uses a name reserved for the API ({part!r}): {path!r}")
    return parts


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
