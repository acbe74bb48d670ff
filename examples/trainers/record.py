"""What the trainer recipes' tests look at, written when a recipe runs with ``--record DIR``.

Not needed to train: drop it (with ``--record`` and ``--crash-after-step``) when you copy a
recipe. Each rank appends JSON lines to ``DIR/rank-R.jsonl``:

- ``{"kind": "batch", "epoch": E, "step": S, "keys": [...]}``: the sample keys of the batch
  trained at optimizer step S (0-based: the steps done before it);
- ``{"kind": "saved", "step": S, "digest": D}``: a checkpoint of step S was saved, with the
  model and optimizer state digested (`digest`);
- ``{"kind": "resumed", "step": S, "digest": D}``: training resumed at step S, the same
  digest taken after the restore. Equal digests mean the resume restored what was saved.

``--crash-after-step N`` ends every rank with ``os._exit(CRASH_EXIT)`` right after optimizer
step N: no cleanup, no checkpoint of its own, like a node lost mid-epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

#: The exit status of a simulated crash.
CRASH_EXIT = 75


class Recorder:
    """One rank's record; every method is a no-op when ``folder`` is None."""

    def __init__(self, folder: str | os.PathLike[str] | None, rank: int) -> None:
        self.path = None if folder is None else Path(folder) / f"rank-{rank}.jsonl"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **line: Any) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(line) + "\n")

    def batch(self, epoch: int, step: int, keys: list[str]) -> None:
        self.write(kind="batch", epoch=epoch, step=step, keys=list(keys))

    def saved(self, step: int, *states: Any) -> None:
        if self.path is not None:
            self.write(kind="saved", step=step, digest=digest(*states))

    def resumed(self, step: int, *states: Any) -> None:
        if self.path is not None:
            self.write(kind="resumed", step=step, digest=digest(*states))


def crash_if(step: int, crash_after_step: int | None) -> None:
    """End this process at once (a simulated crash) after optimizer step ``crash_after_step``."""
    if crash_after_step is not None and step == crash_after_step:
        os._exit(CRASH_EXIT)


def digest(*states: Any) -> str:
    """sha256 of nested state (dicts, lists, tensors, numbers), tensors by their exact bytes."""
    h = hashlib.sha256()

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, Mapping):
            for key in sorted(obj, key=str):
                walk(obj[key], f"{path}/{key}")
        elif isinstance(obj, (list, tuple)):
            for i, item in enumerate(obj):
                walk(item, f"{path}/{i}")
        elif isinstance(obj, torch.Tensor):
            local = obj.to_local() if hasattr(obj, "to_local") else obj  # a DTensor: this rank's shard
            t = local.detach().cpu().contiguous()
            h.update(f"{path}:{t.dtype}:{tuple(t.shape)}:".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(f"{path}={obj!r};".encode())

    for i, state in enumerate(states):
        walk(state, str(i))
    return h.hexdigest()
