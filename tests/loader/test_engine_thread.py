"""The fetch engine's thread never leaves the consumer waiting in silence: an error where it
starts is raised where the samples are read, and a thread that ended without a word is
noticed within a second."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from farfeed.errors import FarfeedError
from farfeed.loader import Dataset, engine
from farfeed.loader.engine import FetchEngine


def test_an_error_while_the_thread_starts_reaches_the_loop(
    image_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_loop() -> None:
        raise RuntimeError("no event loop can be made here")

    monkeypatch.setattr(engine, "_new_event_loop", no_loop)
    with pytest.raises(RuntimeError, match="no event loop can be made here"):
        next(iter(Dataset(str(image_dataset))))


def test_a_thread_that_ended_without_a_word_is_an_error_not_a_hang(
    image_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FetchEngine, "_thread_main", lambda self: None)  # ends at once, says nothing
    t0 = time.monotonic()
    with pytest.raises(FarfeedError, match="fetch thread ended without finishing"):
        next(iter(Dataset(str(image_dataset))))
    assert time.monotonic() - t0 < 5
