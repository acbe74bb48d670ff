"""Addresses of the emulator and what it forwards to: ``HOST:PORT`` text, (host, port)
tuples, and URLs rewritten to go through it.

>>> rewrite_url("http://127.0.0.1:8470/imagenet", parse_address("127.0.0.1:9470"))
'http://127.0.0.1:9470/imagenet'
"""

from __future__ import annotations

import urllib.parse

from farfeed.errors import ConfigError


def parse_address(text: str, *, what: str = "address") -> tuple[str, int]:
    """``"HOST:PORT"`` (or ``"[v6]:PORT"``) as a (host, port) tuple; ConfigError quotes bad text."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port)


def check_address(name: str, address: object) -> tuple[str, int]:
    """``address`` if it is a (host, port) tuple; ConfigError naming ``name`` otherwise."""
    if (
        not isinstance(address, tuple)
        or len(address) != 2
        or not isinstance(address[0], str)
        or isinstance(address[1], bool)
        or not isinstance(address[1], int)
        or not 0 <= address[1] <= 65535
    ):
        raise ConfigError(f"{name} must be a (host, port) tuple, got {address!r}")
    return address[0], address[1]


def format_address(address: tuple[str, int]) -> str:
    """(host, port) as ``HOST:PORT`` (IPv6 hosts in brackets)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_url(address: tuple[str, int]) -> str:
    """``http://HOST:PORT`` of an emulator listening on ``address``."""
    return f"http://{format_address(address)}"


def rewrite_url(url: str, address: tuple[str, int]) -> str:
    """``url`` sent through the emulator: same scheme, path and query, host:port replaced.

    >>> rewrite_url("http://127.0.0.1:8470/imagenet", ("127.0.0.1", 9470))
    'http://127.0.0.1:9470/imagenet'
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ConfigError(f"expected an absolute URL like http://host:port/path, got {url!r}")
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = format_address(address)
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
