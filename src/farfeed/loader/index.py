"""A dataset's index read through a store: the loader's side of `farfeed.format`.

>>> async with open_store("http://storage:8470/imagenet") as store:
...     index = await read_index(store)
...     blobs = await store.read_many(byte_ranges(index, [3, 0, 42]))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from farfeed.format.load import load_index
from farfeed.format.meta import DATASET_JSON, DatasetMeta
from farfeed.format.sample_index import SampleIndex
from farfeed.format.token_index import TokenIndex
from farfeed.store.base import ByteRange, Store


async def read_index(store: Store) -> SampleIndex | TokenIndex:
    """Read dataset.json and the index it names through ``store`` (gateway, S3, HTTP, disk)."""
    meta_json = await store.read(DATASET_JSON)
    meta = DatasetMeta.from_json(meta_json)
    return load_index(meta_json, await store.read(meta.index))


def byte_ranges(index: SampleIndex, ids: Sequence[int] | np.ndarray) -> list[ByteRange]:
    """The spans of many samples as `ByteRange`s, in the order given (for `Store.read_many`)."""
    return [ByteRange(shard, offset, size) for shard, offset, size in index.spans(ids)]
