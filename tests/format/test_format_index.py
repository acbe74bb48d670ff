"""Reading indexes: from bytes, through a Store, dispatch on kind, strict validation, synthetic size."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from format_helpers import DirStore, read_span

from farfeed.bench.format.synthetic_index import write_synthetic_index
from farfeed.errors import FormatError
from farfeed.format import (
    DATASET_JSON,
    INDEX_FILE,
    DatasetMeta,
    SampleIndex,
    load_index,
    parse_size,
)
from farfeed.loader.index import read_index


def test_from_bytes_equals_load(packed: Path) -> None:
    a = SampleIndex.load(packed)
    b = SampleIndex.from_bytes(
        (packed / DATASET_JSON).read_bytes(), (packed / INDEX_FILE).read_bytes()
    )
    assert len(a) == len(b) == 44
    for name in ("shard", "offset", "size", "checksum", "label", "split", "key", "member_offset"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert b.shard_names == a.shard_names


async def test_read_index_through_a_store(packed: Path) -> None:
    async with DirStore(packed) as store:
        index = await read_index(store)
    assert isinstance(index, SampleIndex) and len(index) == 44
    assert index.unpack(7, read_span(packed, index, 7))["__key__"] == index.key_of(7)


def test_index_arrays_have_the_specified_dtypes(packed: Path) -> None:
    with np.load(packed / INDEX_FILE) as npz:
        dtypes = {name: npz[name].dtype for name in npz.files}
    assert dtypes["shard"] == np.uint32 and dtypes["split"] == np.uint8
    assert dtypes["member_ext"] == np.uint16 and dtypes["label"] == np.int64
    assert all(
        dtypes[n] == np.uint64
        for n in ("offset", "size", "checksum", "member_start", "member_offset", "member_size")
    )
    assert dtypes["key"].kind == "S"
    with np.load(packed / INDEX_FILE) as npz:
        assert len(npz["member_start"]) == 45 and len(npz["member_ext"]) == 88


def _meta(packed: Path) -> dict:
    return json.loads((packed / DATASET_JSON).read_bytes())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other"}, "'format' must be 'farfeed'"),
        ({"format_version": 2}, "format_version 2 is not supported"),
        ({"kind": "video"}, "unknown kind 'video'"),
        ({"shards": ["../../etc/passwd"]}, "bad shard name"),
        ({"index": "/abs/index.npz"}, "bad index name"),
        ({"samples": "many"}, "'samples' must be int"),
        ({"samples": 45}, "arrays hold 44 samples"),
    ],
)
def test_bad_metadata_is_a_format_error(packed: Path, change: dict, message: str) -> None:
    meta = _meta(packed) | change
    with pytest.raises(FormatError, match=message):
        SampleIndex.from_bytes(json.dumps(meta).encode(), (packed / INDEX_FILE).read_bytes())


def test_bad_index_bytes_are_a_format_error(packed: Path) -> None:
    meta = (packed / DATASET_JSON).read_bytes()
    with pytest.raises(FormatError, match="not a readable npz"):
        load_index(meta, b"garbage")
    with pytest.raises(FormatError, match="not a readable npz"):
        load_index(meta, (packed / INDEX_FILE).read_bytes()[:5000])  # truncated zip
    with np.load(packed / INDEX_FILE) as npz:
        arrays = {n: npz[n] for n in npz.files}
    arrays["label"] = arrays["label"].astype(np.int32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(FormatError, match="'label' has dtype int32"):
        load_index(meta, buf.getvalue())
    del arrays["checksum"]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(FormatError, match="missing arrays"):
        load_index(meta, buf.getvalue())
    with pytest.raises(FormatError, match="not valid JSON"):
        DatasetMeta.from_json(b"{")
    with pytest.raises(FormatError, match="not a farfeed dataset"):
        SampleIndex.load(packed.parent)


def test_synthetic_index_is_consistent(tmp_path: Path) -> None:
    out = write_synthetic_index(tmp_path / "syn", samples=5000, shards=7, classes=100)
    index = SampleIndex.load(out)
    assert len(index) == 5000 and len(index.shard_names) == 7
    assert np.all(index.member_offset[1::2] + index.member_size[1::2] == index.size)
    assert index.key_of(0).startswith("train/n")
    ends = index.offset + index.size
    for s in range(7):
        ids = np.flatnonzero(index.shard == s)
        assert np.all(ends[ids] <= index.meta.shard_bytes[s])
        assert np.all(index.offset[ids[1:]] > ends[ids[:-1]])  # spans do not overlap


def test_parse_size() -> None:
    assert parse_size("64MB") == 64_000_000
    assert parse_size("1GiB") == 2**30
    assert parse_size("256M") == 256 * 2**20
    assert parse_size("4096") == parse_size(4096) == 4096
    assert parse_size("1.5 kib") == 1536
    for bad in ("0", "-3MB", "MB", "12 parsecs"):
        with pytest.raises(ValueError, match=repr(bad).replace("+", r"\+")):
            parse_size(bad)


def test_span_past_end_of_shard_is_a_format_error(packed: Path) -> None:
    meta = _meta(packed)
    meta["shard_bytes"] = [size // 2 for size in meta["shard_bytes"]]
    with pytest.raises(FormatError, match="past the end of its shard"):
        SampleIndex.from_bytes(json.dumps(meta).encode(), (packed / INDEX_FILE).read_bytes())
