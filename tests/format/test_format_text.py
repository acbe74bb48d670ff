"""pack_text and TokenIndex: byte and BPE tokenizers, chunk checksums, splits, sample text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.stores import DirStore

from farfeed.errors import ConfigError, FormatError, IntegrityError
from farfeed.format import DATASET_JSON, TokenIndex, make_sample_text, pack_text
from farfeed.format.text import DOC_SEPARATOR
from farfeed.loader.index import read_index


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~256 KB of Python's own text: pydoc topics + stdlib sources."""
    return make_sample_text(tmp_path_factory.mktemp("text") / "corpus", max_bytes=256 * 1024)


def _tokens(directory: Path, index: TokenIndex) -> np.ndarray:
    return np.concatenate(
        [np.fromfile(directory / name, dtype=index.dtype) for name in index.token_files]
    )


def _documents(corpus: Path) -> list[bytes]:
    docs = []
    for path in sorted(corpus.glob("*.txt")):
        docs += path.read_bytes().split(DOC_SEPARATOR)
    return docs


def test_sample_text_is_deterministic_and_bounded(corpus: Path, tmp_path: Path) -> None:
    again = make_sample_text(tmp_path / "again", max_bytes=256 * 1024)
    names = sorted(p.name for p in corpus.glob("*.txt"))
    assert names == sorted(p.name for p in again.glob("*.txt")) and "pydoc-topics.txt" in names
    assert all((corpus / n).read_bytes() == (again / n).read_bytes() for n in names)
    assert sum((corpus / n).stat().st_size for n in names) <= 256 * 1024


def test_byte_tokens_decode_back_to_the_source(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    report = pack_text(corpus, out, chunk_tokens=4096, file_size="100KB")
    index = TokenIndex.load(out)
    meta = json.loads((out / DATASET_JSON).read_bytes())
    assert (meta["vocab_size"], meta["eos_id"], meta["dtype"], meta["tokenizer"]) == (
        257,
        256,
        "uint16",
        "byte",
    )
    assert meta["tokenizer_file"] is None and len(index.token_files) > 1  # rolled over at ~100 KB
    docs = _documents(corpus)
    assert report.samples == index.num_documents() == len(docs)
    for j, doc in enumerate(docs):
        f, start, length = int(index.doc_file[j]), int(index.doc_start[j]), int(index.doc_length[j])
        tokens = np.fromfile(out / index.token_files[f], dtype=index.dtype)
        assert bytes(tokens[start : start + length].astype(np.uint8)) == doc
        assert tokens[start + length] == index.eos_id
    # the files hold nothing but documents and their EOS tokens
    assert index.num_tokens() == sum(len(d) + 1 for d in docs) == meta["tokens"]


def test_chunk_checksums_verify_range_reads(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    pack_text(corpus, out, chunk_tokens=5000, file_size="200KB")
    index = TokenIndex.load(out)
    assert index.num_chunks() > 3
    total = 0
    for c in range(index.num_chunks()):
        name, offset, size = index.chunk_range(c)
        with open(out / name, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        index.verify_chunk(c, data)
        total += size
        f_idx, first, count = index.chunk_tokens_range(c)
        assert index.chunk_at(f_idx, first) == c and count * 2 == size
    assert total == sum(index.meta.shard_bytes)
    name, offset, size = index.chunk_range(1)
    data = bytearray((out / name).read_bytes()[offset : offset + size])
    data[10] ^= 1
    with pytest.raises(IntegrityError, match=f"token chunk 1 \\({name} at offset {offset}\\)"):
        index.verify_chunk(1, bytes(data))
    with pytest.raises(ConfigError, match="out of range"):
        index.chunk_range(index.num_chunks())


def test_splits_cover_all_documents(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    pack_text(corpus, out, file_size="100KB")
    index = TokenIndex.load(out)
    d = index.num_documents()
    train, val = index.split_doc_range("train"), index.split_doc_range("val")
    assert (
        train == (0, val[0]) and val[1] == d and 1 <= val[1] - val[0] <= max(1, round(d * 0.02)) + 1
    )
    segments = index.split_token_range("train") + index.split_token_range("val")
    assert sum(hi - lo for _, lo, hi in segments) == index.num_tokens()
    for name, lo, hi in index.split_token_range("val"):
        tokens = np.fromfile(out / name, dtype=index.dtype)[lo:hi]
        assert tokens[-1] == index.eos_id
    splits = json.loads((out / DATASET_JSON).read_bytes())["splits"]
    assert splits["val"]["tokens"] == sum(hi - lo for _, lo, hi in index.split_token_range("val"))
    with pytest.raises(ConfigError, match="'test'"):
        index.split_token_range("test")


async def test_bpe_round_trip_and_read_index(corpus: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    out = tmp_path / "bpe"
    pack_text(corpus, out, tokenizer="bpe", vocab_size=1000)
    async with DirStore(out) as store:
        index = await read_index(store)
    assert isinstance(index, TokenIndex) and index.tokenizer == "bpe"
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert index.vocab_size == tokenizer.get_vocab_size() <= 1000
    assert tokenizer.id_to_token(index.eos_id) == "<|endoftext|>"
    tokens = _tokens(out, index)
    assert tokens.max() < index.vocab_size
    for j, doc in enumerate(_documents(corpus)[:25]):
        start, length = int(index.doc_start[j]), int(index.doc_length[j])
        assert tokenizer.decode(tokens[start : start + length].tolist()).encode() == doc
    assert index.num_tokens() < sum(len(d) for d in _documents(corpus)) / 2  # BPE compresses


def test_jsonl_corpus_and_bad_inputs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text('{"text": "héllo"}\n\n{"text": "world"}\n')
    (src / "ignored.py").write_text("print()")
    pack_text(src, tmp_path / "out")
    index = TokenIndex.load(tmp_path / "out")
    tokens = _tokens(tmp_path / "out", index)
    assert bytes(tokens[: index.doc_length[0]].astype(np.uint8)).decode() == "héllo"
    assert index.num_documents() == 2 and index.split_doc_range("val") == (1, 2)
    (src / "b.jsonl").write_text('{"text": "ok"}\n{"body": 1}\n')
    with pytest.raises(FormatError, match=r"b\.jsonl:2"):
        pack_text(src, tmp_path / "out2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no \\*.txt or \\*.jsonl"):
        pack_text(tmp_path / "empty", tmp_path / "out3")
    with pytest.raises(ConfigError, match="'word'"):
        pack_text(src, tmp_path / "out3", tokenizer="word")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="100"):
        pack_text(src / "a.jsonl", tmp_path / "out3", tokenizer="bpe", vocab_size=100)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(FormatError, match="latin1.txt: not UTF-8"):
        pack_text(tmp_path / "latin1.txt", tmp_path / "out4", tokenizer="bpe")
    pack_text(tmp_path / "latin1.txt", tmp_path / "out4")  # the byte tokenizer takes any bytes
    assert TokenIndex.load(tmp_path / "out4").num_tokens() == 5
