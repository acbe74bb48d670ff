"""index_webdataset: indexes existing WebDataset shards in place, exactly as webdataset reads them."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import webdataset as wds
from helpers.samples import read_span

from farfeed.errors import ConfigError, DatasetExistsError, FormatError
from farfeed.format import DATASET_JSON, SampleIndex, index_webdataset


def _write_shards(folder: Path) -> None:
    folder.mkdir()
    with wds.ShardWriter(str(folder / "train-%05d.tar"), maxcount=7, verbose=0) as sink:
        for i in range(20):
            sample = {
                "__key__": f"sub/dir/s{i:04d}",
                "png": bytes([i]) * (100 + 37 * i),
                "cls": str(i % 3).encode(),
            }
            if i % 4 == 0:
                sample["json"] = b'{"note": %d}' % i  # some samples have an extra member
            sink.write(sample)
    with wds.TarWriter(str(folder / "val-00000.tar")) as sink:
        for i in range(3):
            sink.write({"__key__": f"v{i}", "txt": f"val {i}".encode(), "label": b"-2"})
    with wds.TarWriter(str(folder / "extra.tar")) as sink:
        sink.write({"__key__": "x", "seg.png": b"abc", "class": b"cat"})


def _digests(folder: Path) -> dict[str, bytes]:
    return {p.name: hashlib.sha256(p.read_bytes()).digest() for p in folder.glob("*.tar")}


def test_same_samples_as_webdataset(tmp_path: Path) -> None:
    folder = tmp_path / "wds"
    _write_shards(folder)
    before = _digests(folder)
    report = index_webdataset(folder)
    assert _digests(folder) == before  # shards never rewritten
    assert report.samples == 24 and report.shards == 5
    index = SampleIndex.load(folder)
    assert index.meta.kind == "webdataset"
    urls = [str(folder / name) for name in index.shard_names]
    expected = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert len(expected) == len(index)
    for i, want in enumerate(expected):
        got = index.unpack(i, read_span(folder, index, i))
        assert got["__key__"] == want["__key__"]
        assert {k: v for k, v in got.items() if not k.startswith("__")} == \
            {k: v for k, v in want.items() if not k.startswith("__")}  # fmt: skip
        assert index.shard_names[int(index.shard[i])] == Path(want["__url__"]).name


def test_labels_and_splits_from_names(tmp_path: Path) -> None:
    folder = tmp_path / "wds"
    _write_shards(folder)
    index_webdataset(folder)
    index = SampleIndex.load(folder)
    assert index.split_names == ["train", "val"]
    assert len(index.ids("val")) == 3 and len(index.ids("train")) == 21  # extra.tar -> train
    keys = [index.key_of(i) for i in range(len(index))]
    labels = dict(zip(keys, index.label.tolist(), strict=True))
    assert (
        labels["sub/dir/s0005"] == 2 and labels["v1"] == -2 and labels["x"] == -1
    )  # "cat" is no int
    assert "seg.png" in index.extensions
    assert index.class_names() == ["0", "1", "2"]  # from the cls labels 0..2


def test_class_names_cover_every_label(tmp_path: Path) -> None:
    folder = tmp_path / "wds"
    _write_shards(folder)
    index_webdataset(folder, classes=["cat", "dog", "fox"])
    assert SampleIndex.load(folder).class_names() == ["cat", "dog", "fox"]
    with pytest.raises(ConfigError, match="labels up to 2, but only 2 class names"):
        index_webdataset(folder, overwrite=True, classes=["cat", "dog"])
    with pytest.raises(ConfigError, match="named twice"):
        index_webdataset(folder, overwrite=True, classes=["cat", "dog", "cat"])


def test_index_refuses_existing_and_bad_input(tmp_path: Path) -> None:
    folder = tmp_path / "wds"
    _write_shards(folder)
    index_webdataset(folder)
    with pytest.raises(DatasetExistsError):
        index_webdataset(folder)
    assert index_webdataset(folder, overwrite=True).samples == 24
    (tmp_path / "none").mkdir()
    with pytest.raises(FormatError, match=r"no \*\.tar shards"):
        index_webdataset(tmp_path / "none")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.tar").write_bytes(b"this is not a tar file" * 40)
    with pytest.raises(FormatError, match="a.tar"):
        index_webdataset(bad)
    assert not (bad / DATASET_JSON).exists()


def test_duplicate_member_in_one_sample_is_a_format_error(tmp_path: Path) -> None:
    folder = tmp_path / "dup"
    folder.mkdir()
    with tarfile.open(folder / "train-00000.tar", "w") as tar:
        for name in ("k.txt", "k.TXT"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"a"))
    with pytest.raises(FormatError, match="two members with extension 'txt'"):
        index_webdataset(folder)


def test_indexing_packed_shards_gives_the_same_index(packed: Path, tmp_path: Path) -> None:
    """farfeed's own shards are WebDataset shards: indexing them in place finds the same spans."""
    import shutil

    packed_index = SampleIndex.load(packed)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in packed_index.shard_names:
        shutil.copy(packed / name, copy / name)
    index_webdataset(copy)
    index = SampleIndex.load(copy)
    assert index.shard_names == packed_index.shard_names and index.split_names == ["train", "val"]
    for name in ("shard", "offset", "size", "checksum", "label", "split", "key", "member_offset"):
        assert (getattr(index, name) == getattr(packed_index, name)).all(), name
