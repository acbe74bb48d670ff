"""Checks on samples: a span read from disk, the keys of samples, every key exactly once, bytes
equal to the shard files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from farfeed.format import SampleIndex


def read_span(dataset: Path, index: SampleIndex, i: int) -> bytes:
    """The bytes of sample ``i``'s span, read from its shard file."""
    name, offset, size = index.span(i)
    with open(dataset / name, "rb") as f:
        f.seek(offset)
        return f.read(size)


def keys(samples: Iterable[dict[str, object]]) -> list[str]:
    """The ``__key__`` of each raw sample, in order."""
    return [str(s["__key__"]) for s in samples]


def assert_exactly_once(got: Iterable[str], dataset: Path, split: str = "train") -> None:
    """Every sample key of ``split`` appears exactly once in ``got``."""
    index = SampleIndex.load(dataset)
    expected = Counter(index.key_of(int(i)) for i in index.ids(split))
    counts = Counter(got)
    assert counts == expected, (
        f"missing {sorted(set(expected) - set(counts))[:5]}, "
        f"extra {sorted(set(counts) - set(expected))[:5]}, "
        f"twice {[k for k, n in counts.items() if n > 1][:5]}"
    )


def assert_source_bytes(got: Iterable[dict[str, object]], dataset: Path) -> None:
    """Every raw sample in ``got`` equals that sample read straight from ``dataset``'s shard
    files (key, index, and every member's bytes)."""
    index = SampleIndex.load(dataset)
    by_key = {index.key_of(int(i)): int(i) for i in index.ids()}
    for sample in got:
        i = by_key[str(sample["__key__"])]
        want = index.unpack(i, read_span(dataset, index, i), verify=False)
        assert sample == want, f"sample {sample['__key__']!r} differs from its shard's bytes"
