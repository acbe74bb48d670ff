"""Token windows: fixed seq_len, packed across documents, labels shifted, every window once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from farfeed.format import TokenIndex, pack_text
from farfeed.loader import DataLoader, Dataset

SEQ = 16


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tokens")
    src = root / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    words = ["far", "feed", "link", "tokyo", "fukuoka", "gpu", "shard", "sample"]
    for f in range(3):
        docs = [" ".join(rng.choice(words, size=int(rng.integers(5, 60)))) for _ in range(20)]
        (src / f"part{f}.txt").write_text("\n\x1e\n".join(docs))  # the format's document separator
    pack_text(
        src, root / "corpus", tokenizer="byte", chunk_tokens=64, file_size="4KiB", val_fraction=0.1
    )
    return root / "corpus"


def train_tokens(corpus: Path) -> list[np.ndarray]:
    index = TokenIndex.load(corpus)
    out = []
    for name, lo, hi in index.split_token_range("train"):
        out.append(np.fromfile(corpus / name, dtype=index.dtype)[lo:hi])
    return out


def test_windows_follow_the_token_files_in_order_when_unshuffled(corpus: Path) -> None:
    ds = Dataset(str(corpus), decode="tokens", seq_len=SEQ, shuffle=False)
    windows = list(ds)
    expected = []
    for tokens in train_tokens(corpus):
        for j in range((len(tokens) - 1) // SEQ):
            expected.append(tokens[j * SEQ : j * SEQ + SEQ + 1].astype(np.int64))
    assert len(windows) == len(expected) == len(ds) > 20
    for (inputs, labels), want in zip(windows, expected, strict=True):
        assert inputs.dtype == labels.dtype == torch.int64 and inputs.shape == (SEQ,)
        assert inputs.tolist() == want[:-1].tolist() and labels.tolist() == want[1:].tolist()
    eos = TokenIndex.load(corpus).eos_id
    assert any(eos in inputs.tolist()[1:-1] for inputs, _ in windows)  # packed across documents


def test_shuffled_batches_hold_every_window_once(corpus: Path) -> None:
    ds = Dataset(str(corpus), decode="tokens", seq_len=SEQ, seed=4)
    plain = [
        tuple(x.tolist())
        for x, _ in Dataset(str(corpus), decode="tokens", seq_len=SEQ, shuffle=False)
    ]
    got = [tuple(row.tolist()) for x, _ in DataLoader(ds, batch_size=8, num_workers=2) for row in x]
    assert sorted(got) == sorted(plain)
    assert got != sorted(got)
