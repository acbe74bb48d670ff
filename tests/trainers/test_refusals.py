"""What farfeed refuses: a trainer that re-wraps its loader (accelerate's prepare, skip_first_batches,
a Hugging Face Trainer given the bare Dataset) fails at once with what to do, instead of reading
some samples twice or never. In one process: accelerate's loaders run here without a process group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import accelerate
import pytest
import torch
from accelerate.data_loader import prepare_data_loader, skip_first_batches

from farfeed.errors import ConfigError
from farfeed.loader import DataLoader, Dataset


@pytest.fixture
def accelerator() -> Iterator[object]:
    """A one-process CPU Accelerator, its global state reset afterwards."""
    from accelerate.state import AcceleratorState

    yield accelerate.Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("dispatch", [None, False])
def test_prepare_of_farfeeds_loader_is_refused(
    image_dataset: Path, accelerator: object, dispatch: bool | None
) -> None:
    ds = Dataset(str(image_dataset), seed=1)
    loader = DataLoader(ds, batch_size=4)
    prepared = prepare_data_loader(loader, dispatch_batches=dispatch, num_processes=1, process_index=0)
    assert type(prepared).__module__.startswith("accelerate")
    with pytest.raises(ConfigError, match=r"accelerate's \w+ iterates it.*prepare the model and optimizer only"):
        next(iter(prepared))
    assert sum(len(b["__key__"]) for b in loader) == 120  # farfeed's own loader still works


def test_accelerator_prepare_and_skip_first_batches_are_refused(
    image_dataset: Path, accelerator: object
) -> None:
    ds = Dataset(str(image_dataset), seed=1)
    loader = DataLoader(ds, batch_size=4, num_workers=1)
    model = torch.nn.Linear(2, 2)
    _, prepared = accelerator.prepare(model, loader)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="belongs to a farfeed.loader.DataLoader"):
        next(iter(prepared))
    with pytest.raises(ConfigError, match="ignore_data_skip=True"):  # a Trainer's resume
        next(iter(skip_first_batches(loader, 2)))


@pytest.mark.parametrize(("dispatch", "workers"), [(False, 0), (False, 1), (True, 0)])
def test_bare_multi_rank_dataset_under_accelerate_is_refused(
    image_dataset: Path, accelerator: object, dispatch: bool, workers: int
) -> None:
    """What a Hugging Face Trainer does with train_dataset=ds on 2 ranks: a torch DataLoader, then
    accelerate slices each rank's (already split) stream again, or rank 0 reads for all."""
    ds = Dataset(str(image_dataset), seed=1, rank=0, world_size=2)
    plain = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers)
    prepared = prepare_data_loader(plain, dispatch_batches=dispatch, num_processes=2, process_index=0,
                                   put_on_device=True)  # fmt: skip
    wrapper = "DataLoaderDispatcher" if dispatch else "IterableDatasetShard"
    with pytest.raises(ConfigError, match=f"{wrapper} iterates a farfeed.Dataset of rank 0 of 2"):
        next(iter(prepared))
    assert sum(len(b["__key__"]) for b in plain) == 60  # torch's own DataLoader stays allowed
