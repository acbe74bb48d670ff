"""Open any dataset's index from bytes or through a `Store`, dispatching on its kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from farfeed.format.meta import DATASET_JSON, DatasetMeta
from farfeed.format.sample_index import SampleIndex
from farfeed.format.token_index import TokenIndex

if TYPE_CHECKING:  # pragma: no cover
    from farfeed.store.base import Store


def load_index(meta_json: bytes, index_bytes: bytes) -> SampleIndex | TokenIndex:
    """A `TokenIndex` for kind "tokens", else a `SampleIndex`."""
    if DatasetMeta.from_json(meta_json).kind == "tokens":
        return TokenIndex.from_bytes(meta_json, index_bytes)
    return SampleIndex.from_bytes(meta_json, index_bytes)


async def read_index(store: Store) -> SampleIndex | TokenIndex:
    """Read dataset.json and the index it names through ``store`` (gateway, S3, HTTP, disk)."""
    meta_json = await store.read(DATASET_JSON)
    meta = DatasetMeta.from_json(meta_json)
    return load_index(meta_json, await store.read(meta.index))
