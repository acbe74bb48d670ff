"""A dataset's index read through a store: the loader's side of `farfeed.format`.

>>> async with open_store("http://storage:8470/imagenet") as store:
...     index = await read_index(store)
...     blobs = await store.read_many(byte_ranges(index, [3, 0, 42]))
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from farfeed.errors import StoreError
from farfeed.format.load import load_index
from farfeed.format.meta import DATASET_JSON, INDEX_FILE, DatasetMeta
from farfeed.format.sample_index import SampleIndex
from farfeed.format.token_index import TokenIndex
from farfeed.store.base import ByteRange, Store


async def read_index(store: Store) -> SampleIndex | TokenIndex:
    """Read dataset.json and the index it names through ``store`` (gateway, S3, HTTP, disk).

    The index file is asked for at its usual name (``index.npz``, what every farfeed
    writer names it) at the same time as dataset.json, so across a long link the two
    cost one round trip, not two in a row. When dataset.json names another file, or the
    early read failed, the index is read again by its name (the early bytes are dropped).
    """
    guess = asyncio.ensure_future(store.read(INDEX_FILE))
    data: bytes | None = None
    try:
        meta_json = await store.read(DATASET_JSON)
        meta = DatasetMeta.from_json(meta_json)
        if meta.index == INDEX_FILE:
            try:
                data = await guess
            except StoreError:
                data = None  # read again below: that read's error is the one to report
    finally:
        guess.cancel()  # nothing when it is done
        await asyncio.gather(guess, return_exceptions=True)
    if data is None:
        data = await store.read(meta.index)
    return load_index(meta_json, data)


def byte_ranges(index: SampleIndex, ids: Sequence[int] | np.ndarray) -> list[ByteRange]:
    """The spans of many samples as `ByteRange`s, in the order given (for `Store.read_many`)."""
    return [ByteRange(shard, offset, size) for shard, offset, size in index.spans(ids)]
