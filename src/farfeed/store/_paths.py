"""Checks on the relative paths and URLs a store is given (one place, so every backend agrees)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from farfeed.errors import ConfigError


def clean_relpath(path: str) -> str:
    """Return ``path`` as a canonical relative POSIX path; ConfigError if it could escape the root.

    >>> clean_relpath("run1//step-100/./model.bin")
    'run1/step-100/model.bin'
    """
    if not isinstance(path, str):
        raise ConfigError(f"object path must be a str, got {path!r}")
    _check_chars(path)
    if path.startswith("/"):
        raise ConfigError(f"object path must be relative, got {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ConfigError(f"object path may not contain '..', got {path!r}")
    if not parts:
        raise ConfigError(f"object path is empty: {path!r}")
    return "/".join(parts)


def clean_prefix(prefix: str) -> str:
    """Check a listing prefix (a partial relative path such as ``"run1/step-"``); keep its tail."""
    if not isinstance(prefix, str):
        raise ConfigError(f"list prefix must be a str, got {prefix!r}")
    _check_chars(prefix)
    if prefix.startswith("/"):
        raise ConfigError(f"list prefix must be relative, got {prefix!r}")
    if ".." in prefix.split("/"):
        raise ConfigError(f"list prefix may not contain '..', got {prefix!r}")
    head, _, tail = prefix.rpartition("/")
    cleaned_head = "/".join(p for p in head.split("/") if p not in ("", "."))
    return f"{cleaned_head}/{tail}" if cleaned_head else tail


def _check_chars(path: str) -> None:
    if "\x00" in path:
        raise ConfigError(f"object path may not contain NUL bytes, got {path!r}")
    if "\\" in path:
        raise ConfigError(f"object path may not contain backslashes, got {path!r}")


def redact_url(url: str) -> str:
    """``url`` without user name, password or query string: safe to print in messages."""
    parts = urlsplit(url)
    if not parts.scheme or parts.scheme == "file":
        return url
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    port: int | str | None
    try:
        port = parts.port
    except ValueError:  # a bad port is reported elsewhere; keep what was written
        port = parts.netloc.rpartition(":")[2] or None
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
