"""Documents of a text corpus, and the two tokenizers `pack_text` offers (byte, BPE).

A corpus is one file or a folder of ``*.txt`` / ``*.jsonl`` files (recursive, sorted).
In a ``.txt`` file documents are separated by a line holding only the ASCII record
separator (``"\\n\\x1e\\n"``; a file without one is one document); in a ``.jsonl`` file
each line is an object whose ``"text"`` is one document. Empty documents are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from farfeed.errors import ConfigError, FormatError

DOC_SEPARATOR = b"\n\x1e\n"
TEXT_SUFFIXES = (".txt", ".jsonl")
BYTE_EOS = 256
BYTE_VOCAB = 257
EOS_TOKEN = "<|endoftext|>"


def corpus_files(src: Path) -> list[Path]:
    """The files of a corpus: ``src`` itself, or its ``*.txt``/``*.jsonl`` files, sorted."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise ConfigError(f"source {str(src)!r} is neither a file nor a directory")
    files = sorted(
        p for p in src.rglob("*")
        if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(src).parts)
    )  # fmt: skip
    if not files:
        raise FormatError(f"no *.txt or *.jsonl files in {src}")
    return files


def iter_documents(files: list[Path], *, utf8: bool = False) -> Iterator[bytes]:
    """Every non-empty document of the corpus as bytes, in file order (``utf8``: check it decodes)."""
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FormatError(f"cannot read {path}: {exc.strerror or exc}") from None
        if utf8:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FormatError(
                    f"{path}: not UTF-8 text ({exc}); the BPE tokenizer needs UTF-8"
                ) from None
        if path.suffix.lower() == ".jsonl":
            yield from _jsonl_documents(path, data)
        else:
            yield from (doc for doc in data.split(DOC_SEPARATOR) if doc)


def _jsonl_documents(path: Path, data: bytes) -> Iterator[bytes]:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
            if not isinstance(text, str):
                raise TypeError("'text' is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(
                f"{path}:{number}: expected a JSON object with a 'text' string ({exc})"
            ) from None
        if text:
            yield text.encode("utf-8", "replace")


class ByteTokenizer:
    """Token = byte value; EOS = 256; vocabulary 257. Lossless for any bytes."""

    name = "byte"
    vocab_size = BYTE_VOCAB
    eos_id = BYTE_EOS

    def encode_many(self, docs: list[bytes]) -> list[np.ndarray]:
        return [np.frombuffer(doc, dtype=np.uint8) for doc in docs]


class BpeTokenizer:
    """A ByteLevel BPE trained locally with `tokenizers` on the corpus itself."""

    name = "bpe"

    def __init__(self, files: list[Path], *, vocab_size: int) -> None:
        from tokenizers import ByteLevelBPETokenizer

        if not 258 <= vocab_size <= 2**32 - 1:
            raise ConfigError(f"BPE vocab_size must be in [258, 2**32), got {vocab_size!r}")
        self.tokenizer = ByteLevelBPETokenizer()
        self.tokenizer.train_from_iterator(
            (doc.decode("utf-8") for doc in iter_documents(files, utf8=True)),
            vocab_size=vocab_size,
            min_frequency=2,
            special_tokens=[EOS_TOKEN],
            show_progress=False,
        )
        self.vocab_size = self.tokenizer.get_vocab_size()
        eos = self.tokenizer.token_to_id(EOS_TOKEN)
        assert eos is not None
        self.eos_id = int(eos)

    def encode_many(self, docs: list[bytes]) -> list[np.ndarray]:
        encoded = self.tokenizer.encode_batch([doc.decode("utf-8") for doc in docs])
        return [np.asarray(e.ids, dtype=np.uint32) for e in encoded]

    def save(self, path: Path) -> None:
        self.tokenizer.save(str(path))
