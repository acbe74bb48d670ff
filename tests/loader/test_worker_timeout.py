"""A DataLoader worker that is stuck (neither delivers nor fails a batch) is an error after
`worker_timeout`, not a training job that waits forever."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from farfeed.errors import FarfeedError
from farfeed.loader import DataLoader, Dataset, dataloader
from farfeed.loader.engine import FetchEngine


def test_the_default_timeout_outlasts_a_fetch_that_retries(image_dataset: Path) -> None:
    ds = Dataset(str(image_dataset), retry_for=100, store_options={"timeout": 20})
    assert DataLoader(ds, batch_size=8, num_workers=1).timeout == 100 + 3 * 20 + 300
    assert DataLoader(ds, batch_size=8, num_workers=1, timeout=7).timeout == 7
    assert DataLoader(ds, batch_size=8).timeout == 0  # in-process: the engine raises itself


def test_a_stuck_worker_is_an_error_that_says_so(image_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def stuck(self: FetchEngine) -> None:
        threading.Event().wait()  # never delivers, never fails

    monkeypatch.setattr(FetchEngine, "get", stuck)  # forked workers inherit it
    monkeypatch.setattr(dataloader, "WORKER_TIMEOUT_MARGIN_S", 1.0)
    ds = Dataset(str(image_dataset), retry_for=0, store_options={"timeout": 1})
    loader = DataLoader(ds, batch_size=8, num_workers=1)
    assert loader.timeout == 4
    with pytest.raises(FarfeedError, match="no batch from the DataLoader workers for 4 s") as caught:
        next(iter(loader))
    assert "timeout=SECONDS" in str(caught.value)
