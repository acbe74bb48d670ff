"""`TokenIndex`: the small index of a token corpus (kind "tokens").

Token files are flat little-endian arrays; documents end with an EOS token. Every
``chunk_tokens`` tokens of a file carry a checksum (the function dataset.json names), so
any range read that covers whole chunks can be verified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from farfeed.checksum import digest_function
from farfeed.errors import ConfigError, FormatError, IntegrityError
from farfeed.format.meta import DATASET_JSON, DatasetMeta
from farfeed.format.npz_index import Buffer, NpzIndex

TOKEN_ARRAYS = {
    "doc_file": np.uint32,
    "doc_start": np.uint64,
    "doc_length": np.uint64,
    "chunk_checksum": np.uint64,
    "file_chunk_start": np.uint64,
    "file_tokens": np.uint64,
}
DTYPES: dict[str, np.dtype] = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}


class TokenIndex(NpzIndex):
    """Documents (file, start token, length) and per-chunk checksums of a token corpus."""

    doc_file: np.ndarray
    doc_start: np.ndarray
    doc_length: np.ndarray
    chunk_checksum: np.ndarray
    file_chunk_start: np.ndarray
    file_tokens: np.ndarray

    ARRAYS = TOKEN_ARRAYS

    def __init__(self, meta: DatasetMeta, arrays: dict[str, np.ndarray]) -> None:
        if meta.kind != "tokens":
            raise FormatError(f"TokenIndex reads kind 'tokens', not {meta.kind!r}")
        raw = meta.raw
        self.meta = meta
        try:
            self.dtype: np.dtype = DTYPES[raw["dtype"]]
            self.eos_id: int = int(raw["eos_id"])
            self.vocab_size: int = int(raw["vocab_size"])
            self.chunk_tokens: int = int(raw["chunk_tokens"])
            self.tokenizer: str = str(raw["tokenizer"])
            self.tokenizer_file: str | None = raw.get("tokenizer_file")
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{DATASET_JSON}: bad or missing token field: {exc!r}") from None
        self.token_files: list[str] = list(meta.shards)
        for name in TOKEN_ARRAYS:
            setattr(self, name, arrays[name])
        self._check()

    def _check(self) -> None:
        f, d = len(self.token_files), len(self.doc_file)
        if self.chunk_tokens <= 0 or not 0 <= self.eos_id < self.vocab_size:
            raise FormatError(f"{DATASET_JSON}: bad chunk_tokens or eos_id/vocab_size")
        if len(self.file_tokens) != f or len(self.file_chunk_start) != f + 1:
            raise FormatError(f"token index: file arrays do not match {f} token files")
        if len(self.doc_start) != d or len(self.doc_length) != d:
            raise FormatError("token index: document arrays have different lengths")
        if d and int(self.doc_file.max()) >= f:
            raise FormatError("token index: a document names a token file out of range")
        per_file = (self.file_tokens.astype(np.int64) + self.chunk_tokens - 1) // self.chunk_tokens
        expect = np.concatenate([[0], np.cumsum(per_file)])
        if not np.array_equal(self.file_chunk_start, expect.astype(np.uint64)):
            raise FormatError(
                "token index: file_chunk_start does not match file_tokens/chunk_tokens"
            )
        if len(self.chunk_checksum) != int(expect[-1]):
            raise FormatError("token index: chunk_checksum has the wrong length")
        sizes = np.asarray(self.meta.shard_bytes, dtype=np.uint64)
        if not np.array_equal(sizes, self.file_tokens * np.uint64(self.dtype.itemsize)):
            raise FormatError("token index: shard_bytes do not match file_tokens")

    def __repr__(self) -> str:
        return (f"TokenIndex(tokens={self.num_tokens()}, documents={self.num_documents()}, "
                f"files={len(self.token_files)}, dtype={self.dtype.name})")  # fmt: skip

    def num_tokens(self) -> int:
        """All tokens in all files, EOS included."""
        return int(self.file_tokens.sum())

    def num_documents(self) -> int:
        return len(self.doc_file)

    def num_chunks(self) -> int:
        return len(self.chunk_checksum)

    def _check_chunk(self, c: int) -> int:
        c = int(c)
        if not 0 <= c < self.num_chunks():
            raise ConfigError(f"chunk {c} out of range: the corpus has {self.num_chunks()} chunks")
        return c

    def chunk_file(self, c: int) -> int:
        """The token file (position in ``token_files``) holding chunk ``c``."""
        c = self._check_chunk(c)
        return int(np.searchsorted(self.file_chunk_start, c, side="right")) - 1

    def chunk_tokens_range(self, c: int) -> tuple[int, int, int]:
        """(file index, first token, token count) of chunk ``c``."""
        f = self.chunk_file(c)
        start = (c - int(self.file_chunk_start[f])) * self.chunk_tokens
        return f, start, min(self.chunk_tokens, int(self.file_tokens[f]) - start)

    def chunk_range(self, c: int) -> tuple[str, int, int]:
        """(file name, byte offset, byte length) of chunk ``c``: one range read, then `verify_chunk`."""
        f, start, count = self.chunk_tokens_range(c)
        size = self.dtype.itemsize
        return self.token_files[f], start * size, count * size

    def chunk_at(self, file: int, token: int) -> int:
        """The chunk holding token number ``token`` of token file ``file``."""
        if not 0 <= file < len(self.token_files) or not 0 <= token < int(self.file_tokens[file]):
            raise ConfigError(f"no token {token!r} in token file {file!r}")
        return int(self.file_chunk_start[file]) + token // self.chunk_tokens

    def verify_chunk(self, c: int, data: Buffer) -> None:
        """Raise `IntegrityError` unless ``data`` is exactly chunk ``c`` (length and checksum)."""
        name, offset, size = self.chunk_range(c)
        where = f"token chunk {c} ({name} at offset {offset})"
        if len(data) != size:
            raise IntegrityError(f"{where}: got {len(data)} bytes, the index says {size}")
        digest = digest_function(self.meta.checksum)(data)
        if digest != int(self.chunk_checksum[c]):
            raise IntegrityError(f"{where}: {self.meta.checksum} {digest:016x} does not match the index")

    def split_doc_range(self, split: str) -> tuple[int, int]:
        """Documents [first, stop) of a split ("train": all but the last ~2 %, "val": those)."""
        splits: dict[str, Any] = self.meta.splits
        if split not in splits:
            raise ConfigError(f"unknown split {split!r}; this corpus has {list(splits)}")
        lo, hi = splits[split]["doc_range"]
        return int(lo), int(hi)

    def split_token_range(self, split: str) -> list[tuple[str, int, int]]:
        """The tokens of a split as (file name, first token, stop token) segments, in order.

        Each document's trailing EOS is included, so a loader can cut fixed windows from
        the concatenation of these segments (or from each one) without crossing splits.
        """
        lo, hi = self.split_doc_range(split)
        if lo >= hi:
            return []
        files = self.doc_file[lo:hi]
        ends = (self.doc_start[lo:hi] + self.doc_length[lo:hi] + np.uint64(1)).tolist()
        starts = self.doc_start[lo:hi].tolist()
        cuts = (np.flatnonzero(np.diff(files)) + 1).tolist()
        segments = []
        for a, b in zip([0, *cuts], [*cuts, hi - lo], strict=True):
            segments.append((self.token_files[int(files[a])], int(starts[a]), int(ends[b - 1])))
        return segments
