"""Who iterates a `farfeed.Dataset`: refuse a loader that re-wraps it, before it costs data.

farfeed splits every epoch by rank and by worker itself (the sampler's rules 4 and 5),
and `farfeed.loader.DataLoader` counts the batches it hands out so that `state_dict` is
exact. A trainer that rebuilds the loader breaks both, silently:

- ``accelerate``'s ``prepare(loader)`` (and the Hugging Face ``Trainer``, which prepares
  the DataLoader it builds) either lets rank 0 read and dispatch every batch
  (``dispatch_batches``: the other ranks' shares are never read) or slices each rank's
  stream again (`IterableDatasetShard`: each rank keeps 1/world of its own share);
- a new DataLoader over the same Dataset (``accelerate.skip_first_batches``, a trainer's
  resume that re-reads the epoch's first batches) no longer counts what was delivered,
  so a saved position is wrong.

So `farfeed.loader.DataLoader` marks its Dataset while it starts an iteration
(`iterating`), and `Dataset.__iter__` calls `check_iteration`: a Dataset that belongs to
a farfeed DataLoader but is iterated by another loader is refused, and so is a Dataset
of a multi-rank job iterated under one of accelerate's loaders. Iterating a Dataset with
torch's own DataLoader stays allowed (``decode="batch"`` with ``batch_size=None``).
The trainer recipes in docs/trainers/ show the way that keeps every sample once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from farfeed.errors import ConfigError

#: How many callers up `check_iteration` looks for an accelerate loader (iter(dataset)
#: sits 5-7 frames below the DataLoader's __iter__ when it runs in the training process).
_FRAMES = 12

_WHAT_TO_DO = (
    "farfeed splits each epoch by rank and DataLoader worker itself, and its loader counts "
    "the batches it delivers for state_dict(). Give the trainer farfeed's loader unwrapped: "
    "accelerate: prepare the model and optimizer only (accelerator.prepare(model, optimizer)) "
    "and move each batch with batch.to(accelerator.device); Hugging Face Trainer: return "
    "farfeed's DataLoader from get_train_dataloader() and set ignore_data_skip=True (the "
    "loader's own state_dict resumes exactly). See docs/trainers/huggingface.md."
)


@contextmanager
def iterating(dataset: Any) -> Iterator[None]:
    """Mark ``dataset`` as being iterated by its own `farfeed.loader.DataLoader` while the
    DataLoader starts its workers (they copy the mark) or its in-process iterator."""
    dataset._loader_iterating = True
    try:
        yield
    finally:
        dataset._loader_iterating = False


def check_iteration(dataset: Any) -> None:
    """Raise `ConfigError` when ``dataset`` is iterated by a loader that re-wraps it
    (see the module docstring); called at the start of every `Dataset.__iter__`."""
    owned = getattr(dataset, "_loader_owned", False)
    if owned and not getattr(dataset, "_loader_iterating", False):
        wrapper = _accelerate_loader()
        by = f"accelerate's {wrapper}" if wrapper else "another DataLoader"
        raise ConfigError(
            f"this farfeed.Dataset belongs to a farfeed.loader.DataLoader, but {by} iterates "
            "it (accelerate's prepare(), skip_first_batches(), or a trainer that rebuilt the "
            f"DataLoader): every sample would no longer be read once. {_WHAT_TO_DO}"
        )
    if dataset.world.world_size > 1 and not owned:
        wrapper = _accelerate_loader()
        if wrapper:
            raise ConfigError(
                f"accelerate's {wrapper} iterates a farfeed.Dataset of rank "
                f"{dataset.world.rank} of {dataset.world.world_size}: it re-splits or "
                "dispatches what farfeed already split by rank, so ranks would skip samples "
                "(a Hugging Face Trainer given train_dataset=farfeed.Dataset does this). Wrap "
                f"the Dataset in farfeed.loader.DataLoader instead. {_WHAT_TO_DO}"
            )


def _accelerate_loader() -> str | None:
    """The class name of an accelerate data-loading object iterating us, if one shows: the
    DataLoader worker's dataset, or a caller's ``self`` in the training process."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    if info is not None:
        candidates: list[object] = [info.dataset]
    else:
        candidates = []
        frame: FrameType | None = sys._getframe(2)
        for _ in range(_FRAMES):
            if frame is None:
                break
            candidates.append(frame.f_locals.get("self"))
            frame = frame.f_back
    for obj in candidates:
        if type(obj).__module__.split(".")[0] == "accelerate":
            return type(obj).__name__
    return None
