"""The README's epoch loop with the checkpoint guide's resume: set_epoch after
load_state_dict continues the restored epoch (it used to rewind it silently)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.samples import assert_exactly_once

from farfeed.errors import ConfigError
from farfeed.loader import DataLoader, Dataset

EPOCHS = 3


def _loader(path: Path) -> tuple[Dataset, DataLoader]:
    ds = Dataset(str(path), seed=7, batch_size=8)
    return ds, DataLoader(ds, batch_size=8, num_workers=2)


def _keys(batch: dict) -> list[str]:
    return list(batch["__key__"])


def test_resume_loop_continues_the_restored_epoch(image_dataset: Path) -> None:
    ds, loader = _loader(image_dataset)
    seen: dict[int, list[str]] = {}
    state = None
    for epoch in range(EPOCHS):  # the run that crashes in epoch 1, after 5 batches
        ds.set_epoch(epoch)
        seen[epoch] = []
        for step, batch in enumerate(loader):
            seen[epoch] += _keys(batch)
            if epoch == 1 and step == 4:
                state = loader.state_dict()
                break
        if state is not None:
            break
    assert state is not None and state["epoch"] == 1

    ds, loader = _loader(image_dataset)  # the restarted job, as the guide says
    loader.load_state_dict(state)
    for epoch in range(state["epoch"], EPOCHS):
        ds.set_epoch(epoch)  # keeps the resume point of epoch 1
        seen.setdefault(epoch, [])
        for batch in loader:
            seen[epoch] += _keys(batch)
    for epoch in range(EPOCHS):
        assert_exactly_once(seen[epoch], image_dataset)  # nothing trained twice, nothing lost


def test_set_epoch_to_another_epoch_refuses_to_drop_the_resume_point(image_dataset: Path) -> None:
    ds, loader = _loader(image_dataset)
    ds.set_epoch(2)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    del it
    ds, loader = _loader(image_dataset)
    loader.load_state_dict(state)
    with pytest.raises(ConfigError, match=r"restored epoch 2 at sample 24.*range\(state\['epoch'\]"):
        ds.set_epoch(0)
    ds.set_epoch(2)  # the restored epoch: fine, and the iteration resumes at sample 24
    assert sum(len(b["__key__"]) for b in loader) == 120 - 24
    ds.set_epoch(0)  # the resume point was used: any epoch again
    assert sum(len(b["__key__"]) for b in loader) == 120
