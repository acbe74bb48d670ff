"""The per-sample (and per-token-chunk) checksums a dataset's index records.

``dataset.json`` names the function in ``"checksum"``; every reader hashes what it
received with that function and compares it with the index. Two are known:

- ``"xxh3_64"`` (what `farfeed pack` writes): XXH3, 64 bits. ~4 x cheaper per byte than
  xxh64 on this project's test box (0.03 against 0.13 CPU-s/GB, in cache), which matters
  when every byte a GPU node receives is hashed once.
- ``"xxh64"``: what datasets packed before it carry; read as before.

Both are non-cryptographic: they catch corruption on disks and links, not tampering
(that is TLS's and the tokens' job).

>>> import xxhash
>>> digest_function("xxh3_64")(b"hello") == xxhash.xxh3_64_intdigest(b"hello")
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import xxhash

from farfeed.errors import ConfigError

Checksum = Literal["xxh64", "xxh3_64"]
"""The name of a checksum function, as ``dataset.json`` spells it."""

CHECKSUMS: tuple[Checksum, ...] = ("xxh64", "xxh3_64")
DEFAULT_CHECKSUM: Checksum = "xxh3_64"
"""What new datasets are packed with."""

_FUNCTIONS: dict[str, Callable[[Any], int]] = {
    "xxh64": xxhash.xxh64_intdigest,
    "xxh3_64": xxhash.xxh3_64_intdigest,
}
_HASHERS: dict[str, Callable[[], Any]] = {"xxh64": xxhash.xxh64, "xxh3_64": xxhash.xxh3_64}


def digest_function(checksum: str) -> Callable[[Any], int]:
    """The one-shot function (buffer -> unsigned 64-bit int) for ``checksum``."""
    try:
        return _FUNCTIONS[checksum]
    except KeyError:
        raise ConfigError(f"unknown checksum {checksum!r}; known: {', '.join(CHECKSUMS)}") from None


def new_hasher(checksum: str) -> Any:
    """An incremental hasher (``update``, ``intdigest``) for ``checksum``."""
    digest_function(checksum)  # the same error for an unknown name
    return _HASHERS[checksum]()
