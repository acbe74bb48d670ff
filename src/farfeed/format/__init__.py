"""farfeed.format: tar shards + index (images, WebDataset) and token corpora; spec in README.md.

Writers (`pack_images`, `pack_text`, `index_webdataset`, sample data) run at the storage
site; readers (`SampleIndex`, `TokenIndex`, `load_index`) are what the loader uses; it reads
them through a store with `farfeed.loader.index.read_index`.
"""

from __future__ import annotations

from farfeed.format.load import load_index
from farfeed.format.meta import DATASET_JSON, FORMAT_VERSION, INDEX_FILE, DatasetMeta, parse_size
from farfeed.format.pack_images import pack_images
from farfeed.format.pack_text import pack_text
from farfeed.format.report import PackReport
from farfeed.format.sample_images import make_sample_images
from farfeed.format.sample_index import SampleIndex
from farfeed.format.sample_text import make_sample_text
from farfeed.format.token_index import TokenIndex
from farfeed.format.wds_index import index_webdataset

__all__ = [
    "DATASET_JSON",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "DatasetMeta",
    "PackReport",
    "SampleIndex",
    "TokenIndex",
    "index_webdataset",
    "load_index",
    "make_sample_images",
    "make_sample_text",
    "pack_images",
    "pack_text",
    "parse_size",
]
