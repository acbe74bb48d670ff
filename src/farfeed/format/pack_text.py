"""`pack_text`: a text corpus -> flat token files + index.npz + dataset.json (kind "tokens")."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from farfeed.checksum import DEFAULT_CHECKSUM, new_hasher
from farfeed.errors import ConfigError, FormatError
from farfeed.format.builder import write_index
from farfeed.format.meta import CREATED_BY, FORMAT_NAME, FORMAT_VERSION, INDEX_FILE, parse_size
from farfeed.format.output import staged_output
from farfeed.format.report import PackReport, progress_bar
from farfeed.format.text import BpeTokenizer, ByteTokenizer, corpus_files, iter_documents

DEFAULT_CHUNK_TOKENS = 2**19
DEFAULT_FILE_SIZE = 256 * 2**20
TOKENIZER_FILE = "tokenizer.json"
BATCH_DOCS = 256


class TokenFileWriter:
    """Appends documents (each followed by EOS) to ``tokens-NNNNN.bin`` files, rolling over at
    ``file_size`` bytes between documents, and hashes every ``chunk_tokens`` tokens of a file.
    """

    def __init__(
        self, directory: Path, *, dtype: np.dtype, eos_id: int, chunk_tokens: int, file_size: int
    ) -> None:
        self.directory, self.dtype, self.chunk_tokens = directory, dtype, chunk_tokens
        self.file_size, self.eos = file_size, np.array([eos_id], dtype=dtype)
        self.files: list[str] = []
        self.file_tokens: list[int] = []
        self.chunk_checksum: list[int] = []
        self.file_chunk_start: list[int] = [0]
        self.doc_file: list[int] = []
        self.doc_start: list[int] = []
        self.doc_length: list[int] = []
        self._f: BinaryIO | None = None
        self._pos = 0  # tokens in the current file
        self._hash = new_hasher(DEFAULT_CHECKSUM)

    def add(self, tokens: np.ndarray) -> None:
        """One document's tokens; EOS is appended."""
        size = (len(tokens) + 1) * self.dtype.itemsize
        if self._f is None or (
            self._pos and (self._pos * self.dtype.itemsize + size > self.file_size)
        ):
            self._next_file()
        self.doc_file.append(len(self.files) - 1)
        self.doc_start.append(self._pos)
        self.doc_length.append(len(tokens))
        self._write(tokens.astype(self.dtype, copy=False))
        self._write(self.eos)

    def _write(self, arr: np.ndarray) -> None:
        assert self._f is not None
        data = memoryview(arr.astype(self.dtype.newbyteorder("<"), copy=False).tobytes())
        self._f.write(data)
        step = self.dtype.itemsize
        while data:
            room = (self.chunk_tokens - self._pos % self.chunk_tokens) * step
            self._hash.update(data[:room])
            taken = min(room, len(data))
            self._pos += taken // step
            data = data[taken:]
            if self._pos % self.chunk_tokens == 0:
                self._end_chunk()

    def _end_chunk(self) -> None:
        self.chunk_checksum.append(self._hash.intdigest())
        self._hash = new_hasher(DEFAULT_CHECKSUM)

    def _next_file(self) -> None:
        self._close_file()
        name = f"tokens-{len(self.files):05d}.bin"
        self.files.append(name)
        self._f = open(self.directory / name, "wb")
        self._pos = 0

    def _close_file(self) -> None:
        if self._f is None:
            return
        if self._pos % self.chunk_tokens:
            self._end_chunk()
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self._f = None
        self.file_tokens.append(self._pos)
        self.file_chunk_start.append(len(self.chunk_checksum))

    def close(self) -> None:
        self._close_file()

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "doc_file": np.asarray(self.doc_file, dtype=np.uint32),
            "doc_start": np.asarray(self.doc_start, dtype=np.uint64),
            "doc_length": np.asarray(self.doc_length, dtype=np.uint64),
            "chunk_checksum": np.asarray(self.chunk_checksum, dtype=np.uint64),
            "file_chunk_start": np.asarray(self.file_chunk_start, dtype=np.uint64),
            "file_tokens": np.asarray(self.file_tokens, dtype=np.uint64),
        }


def _batches(docs: Iterator[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == BATCH_DOCS:
            yield batch
            batch = []
    if batch:
        yield batch


def pack_text(
    src: str | Path,
    out: str | Path,
    *,
    tokenizer: Literal["byte", "bpe"] = "byte",
    vocab_size: int = 8192,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    file_size: int | str = DEFAULT_FILE_SIZE,
    val_fraction: float = 0.02,
    overwrite: bool = False,
    progress: bool = False,
) -> PackReport:
    """Tokenize a corpus (file or folder of ``*.txt``/``*.jsonl``) into a token dataset at ``out``.

    >>> pack_text("corpus/", "/srv/farfeed/corpus", tokenizer="bpe", vocab_size=8192).summary()
    """
    if tokenizer not in ("byte", "bpe"):
        raise ConfigError(f"tokenizer must be 'byte' or 'bpe', got {tokenizer!r}")
    if not isinstance(chunk_tokens, int) or chunk_tokens <= 0:
        raise ConfigError(f"chunk_tokens must be a positive int, got {chunk_tokens!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    limit = parse_size(file_size)
    src, out = Path(src).absolute(), Path(out).absolute()
    if out == src or src in out.parents:
        raise ConfigError(f"output {str(out)!r} must not be inside the source {str(src)!r}")
    started = time.perf_counter()
    files = corpus_files(src)
    tok: ByteTokenizer | BpeTokenizer = (
        ByteTokenizer() if tokenizer == "byte" else BpeTokenizer(files, vocab_size=vocab_size)
    )
    dtype = np.dtype(np.uint16) if tok.vocab_size <= 65535 else np.dtype(np.uint32)
    with staged_output(out, overwrite=overwrite) as tmp:
        writer = TokenFileWriter(
            tmp, dtype=dtype, eos_id=tok.eos_id, chunk_tokens=chunk_tokens, file_size=limit
        )
        with progress_bar(f"tokenizing ({tok.name})", None, enabled=progress) as advance:
            try:
                for batch in _batches(iter_documents(files, utf8=tokenizer == "bpe")):
                    for tokens in tok.encode_many(batch):
                        writer.add(tokens)
                    advance(len(batch))
            finally:
                writer.close()
        if not writer.doc_file:
            raise FormatError(f"no documents in {src}: every file is empty")
        if isinstance(tok, BpeTokenizer):
            tok.save(tmp / TOKENIZER_FILE)
        meta = _token_meta(writer, tok, dtype=dtype, val_fraction=val_fraction)
        write_index(tmp, meta, writer.arrays())
    return PackReport(
        samples=len(writer.doc_file),
        bytes=int(meta["bytes"]),
        shards=len(writer.files),
        seconds=time.perf_counter() - started,
        path=out,
    )


def _token_meta(
    writer: TokenFileWriter,
    tok: ByteTokenizer | BpeTokenizer,
    *,
    dtype: np.dtype,
    val_fraction: float,
) -> dict[str, Any]:
    docs = len(writer.doc_file)
    n_val = min(docs - 1, max(1, round(docs * val_fraction))) if val_fraction > 0 else 0
    cut = docs - n_val
    doc_tokens = np.asarray(writer.doc_length, dtype=np.int64) + 1
    ranges = {"train": (0, cut), "val": (cut, docs)}
    splits = {
        name: {"documents": hi - lo, "tokens": int(doc_tokens[lo:hi].sum()), "doc_range": [lo, hi]}
        for name, (lo, hi) in ranges.items()
        if hi > lo
    }
    shard_bytes = [n * dtype.itemsize for n in writer.file_tokens]
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": "tokens",
        "samples": docs,
        "bytes": sum(shard_bytes),
        "shards": list(writer.files),
        "shard_bytes": shard_bytes,
        "splits": splits,
        "checksum": DEFAULT_CHECKSUM,
        "index": INDEX_FILE,
        "created_by": CREATED_BY,
        "dtype": dtype.name,
        "vocab_size": tok.vocab_size,
        "eos_id": tok.eos_id,
        "tokenizer": tok.name,
        "tokenizer_file": TOKENIZER_FILE if tok.name == "bpe" else None,
        "token_files": list(writer.files),
        "tokens": int(sum(writer.file_tokens)),
        "documents": docs,
        "chunk_tokens": writer.chunk_tokens,
    }
