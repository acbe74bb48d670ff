"""Reading a dataset's index through a store (`farfeed.loader.index`)."""

from __future__ import annotations

from pathlib import Path

from helpers.samples import read_span
from helpers.stores import DirStore

from farfeed.format import SampleIndex
from farfeed.loader.index import read_index


async def test_read_index_through_a_store(image_dataset: Path) -> None:
    async with DirStore(image_dataset) as store:
        index = await read_index(store)
    assert isinstance(index, SampleIndex) and len(index) == len(SampleIndex.load(image_dataset)) == 144
    assert index.unpack(7, read_span(image_dataset, index, 7))["__key__"] == index.key_of(7)
