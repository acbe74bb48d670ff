"""pack_images: round trip, splits, labels, rollover, determinism, bad inputs."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xxhash
from helpers.data import rehash_dataset
from helpers.samples import read_span

from farfeed.errors import ConfigError, DatasetExistsError, FormatError, IntegrityError
from farfeed.format import DATASET_JSON, SampleIndex, make_sample_images, pack_images


def test_round_trip_equals_source_files(packed: Path) -> None:
    index = SampleIndex.load(packed)
    src = packed.parent / "images"
    sources = sorted(src.rglob("*.jpg"))
    assert len(index) == len(sources) == 44
    seen = set()
    for i in range(len(index)):
        sample = index.unpack(i, read_span(packed, index, i))
        original = src / (sample["__key__"] + ".jpg")
        assert sample["jpg"] == original.read_bytes()
        assert sample["__index__"] == i
        assert int(sample["cls"]) == int(index.label[i])
        assert index.class_names()[int(index.label[i])] == original.parent.name
        seen.add(original)
    assert seen == set(sources)


def test_splits_labels_and_metadata(packed: Path) -> None:
    index = SampleIndex.load(packed)
    meta = json.loads((packed / DATASET_JSON).read_bytes())
    assert meta["classes"] == [f"class_{k:03d}" for k in range(10)]
    assert meta["extensions"] == ["cls", "jpg"]
    assert meta["splits"]["train"]["samples"] == 40 and meta["splits"]["val"]["samples"] == 4
    assert meta["bytes"] == int(index.size.sum())
    assert [(packed / s).stat().st_size for s in meta["shards"]] == meta["shard_bytes"]
    train, val = index.ids("train"), index.ids("val")
    assert len(train) == 40 and len(val) == 4 and not set(train) & set(val)
    assert all(index.key_of(int(i)).startswith("val/") for i in val)
    assert np.array_equal(np.sort(np.concatenate([train, val])), index.ids())
    assert sorted(np.bincount(index.label[train]).tolist()) == [4] * 10
    with pytest.raises(ConfigError, match=r"'test'.*\['train', 'val'\]"):
        index.ids("test")


def test_shards_roll_over_and_are_plain_tar(packed: Path) -> None:
    index = SampleIndex.load(packed)
    train_shards = index.meta.splits["train"]["shards"]
    assert len(train_shards) >= 4  # ~4.3 MB of train images in 1 MB shards
    assert all(size <= 1_000_000 for size in index.meta.shard_bytes)
    with tarfile.open(packed / train_shards[0]) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[0].endswith(".jpg") and names[1] == names[0][:-3] + "cls"
        first = tar.extractfile(members[0])
        assert first is not None
        sample = index.unpack(0, read_span(packed, index, 0))
        assert first.read() == sample["jpg"]
        assert members[0].offset_data == int(index.offset[0])


def test_packs_record_xxh3_and_datasets_with_xxh64_still_verify(packed: Path, tmp_path: Path) -> None:
    """New packs carry XXH3 checksums (dataset.json says so); a dataset packed with xxh64
    (an older farfeed) verifies with xxh64, because dataset.json names the function."""
    index = SampleIndex.load(packed)
    assert index.meta.checksum == "xxh3_64"
    spans = [read_span(packed, index, i) for i in range(len(index))]
    assert index.checksum.tolist() == [xxhash.xxh3_64_intdigest(s) for s in spans]
    old = tmp_path / "old"
    shutil.copytree(packed, old)
    rehash_dataset(old, "xxh64")
    older = SampleIndex.load(old)
    assert older.meta.checksum == "xxh64"
    assert older.checksum.tolist() == [xxhash.xxh64_intdigest(s) for s in spans]
    for i, span in enumerate(spans):
        older.verify(i, span)
    bad = bytearray(spans[3])
    bad[-1] ^= 1
    with pytest.raises(IntegrityError, match="xxh64 [0-9a-f]{16} does not match the index"):
        older.verify(3, bytes(bad))


def test_corrupted_span_raises_integrity_error(packed: Path) -> None:
    index = SampleIndex.load(packed)
    data = bytearray(read_span(packed, index, 5))
    data[len(data) // 2] ^= 0xFF
    shard, offset, _ = index.span(5)
    with pytest.raises(IntegrityError) as info:
        index.unpack(5, bytes(data))
    assert (
        index.key_of(5) in str(info.value)
        and shard in str(info.value)
        and str(offset) in str(info.value)
    )
    with pytest.raises(IntegrityError, match="bytes"):
        index.verify(5, bytes(data[:-1]))
    assert index.unpack(5, bytes(data), verify=False)["__key__"] == index.key_of(5)
    with pytest.raises(ConfigError, match="out of range"):
        index.span(len(index))


def test_spans_of_many_match_each_span(packed: Path) -> None:
    index = SampleIndex.load(packed)
    assert index.spans([3, 0, 43]) == [index.span(i) for i in (3, 0, 43)]
    with pytest.raises(ConfigError, match="sample ids must be in"):
        index.spans([44])


def test_pack_is_deterministic_and_flat_layout_works(tmp_path: Path) -> None:
    src = make_sample_images(tmp_path / "img", count=12, seed=3, classes=3, val_fraction=0.0)
    a = pack_images(src / "train", tmp_path / "a")  # flat layout: SRC/<class>/*
    b = pack_images(src / "train", tmp_path / "b")
    assert a.samples == b.samples == 12 and a.shards == 1
    for name in ("train-00000.tar", "index.npz", DATASET_JSON):
        assert hashlib.sha256((tmp_path / "a" / name).read_bytes()).digest() == \
            hashlib.sha256((tmp_path / "b" / name).read_bytes()).digest()  # fmt: skip
    index = SampleIndex.load(tmp_path / "a")
    assert index.split_names == ["train"] and index.class_names() == [
        "class_000",
        "class_001",
        "class_002",
    ]


def _tiny_tree(root: Path) -> Path:
    make_sample_images(root, count=6, seed=1, classes=2, val_fraction=0.0)
    return root


def test_non_image_fails_or_is_skipped(tmp_path: Path) -> None:
    src = _tiny_tree(tmp_path / "src")
    bad = src / "train" / "class_001" / "notes.jpg"
    bad.write_text("not a jpeg")
    with pytest.raises(FormatError, match="notes.jpg"):
        pack_images(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".out")
    ]  # temp folder cleaned up
    report = pack_images(src, tmp_path / "out", on_error="skip")
    assert report.samples == 6 and [Path(p).name for p, _ in report.skipped] == ["notes.jpg"]
    assert "not an image" in report.skipped[0][1]


def test_png_and_uppercase_extension_kept_lowercased(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "src" / "cat"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / "a.PNG")
    Image.new("RGB", (8, 8), (4, 5, 6)).save(folder / "b.v2.JPEG", format="JPEG")
    pack_images(tmp_path / "src", tmp_path / "out")
    index = SampleIndex.load(tmp_path / "out")
    samples = [index.unpack(i, read_span(tmp_path / "out", index, i)) for i in range(2)]
    assert [s["__key__"] for s in samples] == ["train/cat/a", "train/cat/b_v2"]
    assert "png" in samples[0] and "jpeg" in samples[1]
    assert samples[0]["png"] == (folder / "a.PNG").read_bytes()


def test_empty_source_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "empty" / "train" / "class_a").mkdir(parents=True)
    with pytest.raises(FormatError, match="no images found"):
        pack_images(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ConfigError, match="not a directory"):
        pack_images(tmp_path / "missing", tmp_path / "out")
    src = _tiny_tree(tmp_path / "src")
    with pytest.raises(ConfigError, match="'12 parsecs'"):
        pack_images(src, tmp_path / "out", shard_size="12 parsecs")
    with pytest.raises(ConfigError, match="'sometimes'"):
        pack_images(src, tmp_path / "out", on_error="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="inside the source"):
        pack_images(src, src / "packed")


def test_existing_output_refused_unless_overwrite(tmp_path: Path) -> None:
    src = _tiny_tree(tmp_path / "src")
    out = tmp_path / "out"
    pack_images(src, out)
    before = (out / DATASET_JSON).read_bytes()
    with pytest.raises(DatasetExistsError, match="already holds a dataset"):
        pack_images(src, out)
    assert (out / DATASET_JSON).read_bytes() == before
    make_sample_images(src, count=8, seed=2, classes=2, val_fraction=0.0)  # 2 more images
    assert pack_images(src, out, overwrite=True).samples == 8
    assert SampleIndex.load(out).meta.samples == 8
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(DatasetExistsError, match="not empty"):
        pack_images(src, other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"


def test_shuffled_pack_writes_a_seeded_random_order_of_the_same_samples(tmp_path: Path) -> None:
    """``shuffle_seed``: neighbours in a shard are unrelated (what ``shuffle_block`` needs),
    the same seed gives the same files, and every sample is still there, bytes intact."""
    src = make_sample_images(tmp_path / "img", count=40, seed=3, classes=4, val_fraction=0.25)
    plain = pack_images(src, tmp_path / "plain")
    mixed = pack_images(src, tmp_path / "mixed", shuffle_seed=7)
    again = pack_images(src, tmp_path / "again", shuffle_seed=7)
    assert plain.samples == mixed.samples == again.samples
    a, b = SampleIndex.load(tmp_path / "plain"), SampleIndex.load(tmp_path / "mixed")
    for split in ("train", "val"):
        sorted_keys = [a.key_of(int(i)) for i in a.ids(split)]
        mixed_keys = [b.key_of(int(i)) for i in b.ids(split)]
        assert sorted(mixed_keys) == sorted_keys and mixed_keys != sorted_keys
    for i in b.ids():
        b.verify(int(i), read_span(tmp_path / "mixed", b, int(i)))
    for name in ("train-00000.tar", "index.npz"):
        assert (tmp_path / "mixed" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    with pytest.raises(ConfigError, match="shuffle_seed"):
        pack_images(src, tmp_path / "bad", shuffle_seed=-1)
