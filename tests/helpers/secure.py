"""A gateway as a storage site runs it: TLS with a private CA, and tokens with scopes.

>>> with secure_gateway(root, tmp_path) as site:
...     ds = farfeed.Dataset(f"{site.url}/images", token=site.tokens["read"], ca_file=site.ca_file)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from farfeed.server.process import GatewayProcess
from helpers.http import make_cert

#: One token per scope set the tokens file grants.
TOKENS = {
    "read": "read-only-token-0123456789abcdef",
    "write": "write-only-token-0123456789abcdef",
    "read,write": "read-write-token-0123456789abcdef",
}


@dataclass(frozen=True)
class SecureSite:
    """Where the gateway answers (``https://127.0.0.1:PORT``), the CA file that trusts it
    (its self-signed certificate) and its tokens by scope set."""

    url: str
    ca_file: Path
    tokens: dict[str, str]


@contextmanager
def secure_gateway(root: Path, folder: Path) -> Iterator[SecureSite]:
    """`farfeed serve ROOT --cert --key --tokens` in a child process; certificate and
    tokens file are written to ``folder``."""
    cert, key = make_cert(folder)
    tokens_file = folder / "tokens"
    tokens_file.write_text("".join(f"{t} {scopes}\n" for scopes, t in TOKENS.items()))
    with GatewayProcess.start(root, cert=cert, key=key, tokens_file=tokens_file) as gw:
        assert gw.url.startswith("https://")
        yield SecureSite(url=gw.url, ca_file=cert, tokens=dict(TOKENS))
