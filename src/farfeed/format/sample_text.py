"""`make_sample_text`: a text corpus from what ships with Python (nothing downloaded).

Documents are the pydoc topic pages and the standard library's ``*.py`` sources (sorted,
so the corpus is the same on every run of one Python), separated as `pack_text` expects.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from pathlib import Path

from farfeed.errors import ConfigError
from farfeed.format.report import progress_bar
from farfeed.format.text import DOC_SEPARATOR

FILE_BYTES = 8 * 2**20
SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def _topic_documents() -> Iterator[bytes]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - some distributions strip pydoc_data
        return
    for name in sorted(topics):
        doc = f"# pydoc topic: {name}\n\n{topics[name]}".encode()
        if DOC_SEPARATOR not in doc:
            yield doc


def _source_documents() -> Iterator[bytes]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if SKIP_DIRS & set(rel.parts):
            continue
        try:
            data = path.read_bytes()
            data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # a few test files are deliberately not UTF-8
        if data.strip() and DOC_SEPARATOR not in data:
            yield f"# file: Lib/{rel.as_posix()}\n\n".encode() + data


def make_sample_text(
    out: str | Path, *, max_bytes: int = 32 * 2**20, progress: bool = False
) -> Path:
    """Write ``OUT/pydoc-topics.txt`` and ``OUT/stdlib-NN.txt`` (documents separated by
    ``"\\n\\x1e\\n"``), at most ``max_bytes`` in all.

    >>> make_sample_text("sample-text", max_bytes=8 * 2**20)
    """
    if not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ConfigError(f"max_bytes must be a positive int, got {max_bytes!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    with progress_bar("collecting text", max_bytes, enabled=progress) as advance:
        for prefix, docs in (("pydoc-topics", _topic_documents()), ("stdlib", _source_documents())):
            number, parts, size = 0, [], 0
            for doc in docs:
                cost = len(doc) + len(DOC_SEPARATOR)
                if total + cost > max_bytes:
                    break
                parts.append(doc)
                size += cost
                total += cost
                advance(cost)
                if prefix == "stdlib" and size >= FILE_BYTES:
                    (out / f"{prefix}-{number:02d}.txt").write_bytes(DOC_SEPARATOR.join(parts))
                    number, parts, size = number + 1, [], 0
            if parts:
                name = prefix if prefix == "pydoc-topics" else f"{prefix}-{number:02d}"
                (out / f"{name}.txt").write_bytes(DOC_SEPARATOR.join(parts))
    return out
