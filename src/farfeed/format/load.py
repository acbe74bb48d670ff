"""Open any dataset's index from its bytes, dispatching on its kind."""

from __future__ import annotations

from farfeed.format.meta import DatasetMeta
from farfeed.format.sample_index import SampleIndex
from farfeed.format.token_index import TokenIndex


def load_index(meta_json: bytes, index_bytes: bytes) -> SampleIndex | TokenIndex:
    """A `TokenIndex` for kind "tokens", else a `SampleIndex` (bytes as read from any store)."""
    if DatasetMeta.from_json(meta_json).kind == "tokens":
        return TokenIndex.from_bytes(meta_json, index_bytes)
    return SampleIndex.from_bytes(meta_json, index_bytes)
