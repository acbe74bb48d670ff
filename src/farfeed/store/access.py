"""One way to authenticate and to trust, the same for the Dataset, checkpoints and weights.

Every public entry point that reaches a store (`farfeed.Dataset`, `farfeed.checkpoint.*`,
`farfeed.weights.*`) takes ``token=`` and ``ca_file=`` and turns them into
`open_store` keyword arguments here, once, in the calling process:

- **token** (the gateway's bearer token), for each URL, the first that is there:
  a token in the URL itself (``https://:TOKEN@storage:8470/imagenet``), ``token=``
  (or ``store_options={"token": ...}``), the ``FARFEED_TOKEN`` environment variable.
  A URL's token and ``token=`` must agree when both are given.
- **trust** (the CAs an https server's certificate is checked against): ``ca_file=`` (a
  PEM bundle; or ``store_options={"ssl": ...}``: a CA file, an `ssl.SSLContext`, or
  False to skip the check on a self-signed test server), else ``SSL_CERT_FILE`` for
  ``https://`` URLs, else the system's CA bundle. For ``s3://`` an explicit ``ca_file``
  applies; without one, ``AWS_CA_BUNDLE``, else ``SSL_CERT_FILE`` (for an https
  endpoint), else the system's CA bundle (`farfeed.store.s3.S3Store`).

>>> access_options("https://storage:8470/imagenet", token="3f9c…", ca_file="site-ca.pem")
{'token': '3f9c…', 'ssl': 'site-ca.pem'}
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from farfeed.errors import ConfigError
from farfeed.store._paths import redact_url
from farfeed.store.open import open_store

__all__ = ["CA_FILE_ENV", "STORE_OPTIONS", "TOKEN_ENV", "access_options", "redact_url", "token_in_url"]

#: Environment variable holding the gateway token when none is given.
TOKEN_ENV = "FARFEED_TOKEN"
#: Environment variable naming a CA bundle for https URLs when ``ca_file`` is not given.
CA_FILE_ENV = "SSL_CERT_FILE"

#: What ``store_options`` may hold: `open_store`'s keyword arguments.
STORE_OPTIONS = frozenset(inspect.signature(open_store).parameters) - {"url", "gateway_info"}


def access_options(
    urls: str | Sequence[str],
    *,
    token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    store_options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`open_store` keyword arguments for ``urls`` from ``token``, ``ca_file`` and
    ``store_options``, with the environment fallbacks (module docstring).

    ``urls``: the URL (or the primary URL and its replicas) these options are for.
    ``environ``: where the fallbacks are read (default `os.environ`, read now, once).
    Unknown store options, a token that disagrees with the URL's, a ``ca_file`` given
    twice or not readable raise `ConfigError`.
    """
    url_list = [urls] if isinstance(urls, str) else list(urls)
    env = os.environ if environ is None else environ
    options = dict(store_options or {})
    unknown = sorted(set(options) - STORE_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown store_options {unknown}; known: {sorted(STORE_OPTIONS)}")
    for key, value in (
        ("token", _token(url_list, token, options.get("token"), env)),
        ("ssl", _trust(url_list, ca_file, options.get("ssl"), env)),
    ):
        options.pop(key, None)
        if value is not None:
            options[key] = value
    return options


def token_in_url(url: str) -> str | None:
    """The token carried as the URL's user info (``https://:TOKEN@host/...``), if any."""
    if "://" not in url:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return None
    found = unquote(parts.password or parts.username or "")
    return found or None


def _token(
    urls: list[str], token: str | None, in_options: Any, env: Mapping[str, str]
) -> str | None:
    if token is not None and in_options is not None and token != in_options:
        raise ConfigError('give the token once: token= and store_options["token"] differ')
    given = token if token is not None else in_options
    if given is not None and (not isinstance(given, str) or not given.strip()):
        raise ConfigError(f"token must be a non-empty string, got {given!r}")
    for url in urls:
        carried = token_in_url(url)
        if given is not None and carried is not None and carried != given:
            raise ConfigError(
                f"the token in the URL {redact_url(url)!r} and token= differ: give one of them"
            )
    if given is not None:
        return given
    from_env = env.get(TOKEN_ENV, "").strip()
    return from_env or None


def _trust(
    urls: list[str], ca_file: str | os.PathLike[str] | None, in_options: Any, env: Mapping[str, str]
) -> Any:
    if ca_file is not None:
        if in_options is not None:
            raise ConfigError('give ca_file= or store_options["ssl"], not both')
        return _readable(os.fspath(ca_file), "ca_file")
    if in_options is not None:
        return in_options
    from_env = env.get(CA_FILE_ENV, "")
    if from_env and any(u.lower().startswith("https://") for u in urls):
        return _readable(from_env, f"${CA_FILE_ENV}")
    return None


def _readable(path: str, what: str) -> str:
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{what} must be the path of a PEM CA bundle, got {path!r}")
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"{what}={path!r} is not a readable file (a PEM bundle of CA certificates)")
    return path
