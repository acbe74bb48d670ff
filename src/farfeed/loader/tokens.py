"""Token windows: a token corpus cut into samples of ``seq_len + 1`` tokens, packed across documents.

Within each token file of a split the documents are concatenated (each ends with its
EOS), and window ``j`` holds tokens ``[j * seq_len, j * seq_len + seq_len + 1)``: the
``+ 1`` gives the shifted labels. Windows never cross files or splits. Checksums cover
whole chunks of ``chunk_tokens`` tokens, so a window is read as the chunks that cover
it (neighbouring windows in one request share those bytes on the wire) and every chunk
is verified before the window is cut out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from farfeed.errors import ConfigError, IntegrityError
from farfeed.loader.decode import token_window
from farfeed.store.base import ByteRange


class TokenSource:
    """Windows of a `farfeed.format.TokenIndex` split, as loader samples."""

    def __init__(self, index: Any, *, split: str, seq_len: int, url: str) -> None:
        if seq_len < 1:
            raise ConfigError(f"seq_len must be >= 1, got {seq_len!r}")
        segments = index.split_token_range(split)
        files, starts = [], []
        for name, lo, hi in segments:
            count = max(0, (hi - lo - 1) // seq_len)
            files.append(np.full(count, index.token_files.index(name), dtype=np.uint32))
            starts.append(lo + seq_len * np.arange(count, dtype=np.int64))
        self._file = np.concatenate(files) if files else np.zeros(0, np.uint32)
        self._start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        if len(self._start) == 0:
            raise ConfigError(
                f"split {split!r} of {url!r} has fewer than seq_len + 1 = {seq_len + 1} tokens per file"
            )
        self.ids = np.arange(len(self._start), dtype=np.int64)
        self.index = index
        self.seq_len = seq_len
        self.url = url
        self.mean_bytes = max(1, self.span(0).length)

    def _chunks(self, i: int) -> tuple[int, int, int, int]:
        """(file, first token, first chunk, last chunk) of window ``i``."""
        f, t0 = int(self._file[i]), int(self._start[i])
        return f, t0, self.index.chunk_at(f, t0), self.index.chunk_at(f, t0 + self.seq_len)

    def span(self, i: int) -> ByteRange:
        _, _, c0, c1 = self._chunks(i)
        name, off0, _ = self.index.chunk_range(c0)
        _, off1, len1 = self.index.chunk_range(c1)
        return ByteRange(name, off0, off1 + len1 - off0)

    def check(self, i: int, data: memoryview) -> bool:
        _, _, c0, c1 = self._chunks(i)
        view = memoryview(data)
        base = self.index.chunk_range(c0)[1]
        try:
            for c in range(c0, c1 + 1):
                _, off, size = self.index.chunk_range(c)
                self.index.verify_chunk(c, view[off - base : off - base + size])
        except IntegrityError:
            return False
        return True

    def unpack(self, i: int, data: memoryview) -> tuple[Any, Any]:
        """(input_ids, labels), LongTensors of ``seq_len``."""
        f, t0, c0, _ = self._chunks(i)
        _, first_token, _ = self.index.chunk_tokens_range(c0)
        size = self.index.dtype.itemsize
        lo = (t0 - first_token) * size
        return token_window(
            data[lo : lo + (self.seq_len + 1) * size], dtype=self.index.dtype, seq_len=self.seq_len
        )

    def describe(self, i: int) -> str:
        f, t0, _, _ = self._chunks(i)
        return (
            f"token window {i} ({self.index.token_files[f]} tokens {t0}..{t0 + self.seq_len + 1})"
        )
