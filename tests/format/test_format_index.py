"""Reading indexes: from bytes or a folder, dispatch on kind, strict validation, sizes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from farfeed.errors import FormatError
from farfeed.format import (
    DATASET_JSON,
    INDEX_FILE,
    DatasetMeta,
    SampleIndex,
    load_index,
    parse_size,
)


def test_from_bytes_equals_load(packed: Path) -> None:
    a = SampleIndex.load(packed)
    b = SampleIndex.from_bytes(
        (packed / DATASET_JSON).read_bytes(), (packed / INDEX_FILE).read_bytes()
    )
    assert len(a) == len(b) == 44
    for name in ("shard", "offset", "size", "checksum", "label", "split", "key", "member_offset"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert b.shard_names == a.shard_names


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
        ({"checksum": "md5"}, "unsupported checksum 'md5' \\(this farfeed reads xxh64, xxh3_64\\)"),
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
