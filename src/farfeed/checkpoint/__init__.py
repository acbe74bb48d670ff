"""Checkpoints across the link: background, parallel, verified, atomic, with retention.

>>> import farfeed.checkpoint as ckpt
>>> h = ckpt.save({"model": model.state_dict(), "loader": ds.state_dict()},
...               "http://storage:8470/checkpoints/run1", step=100, config=cfg)
>>> info = h.wait()                       # or h.done(); training continues meanwhile
>>> state = ckpt.load("http://storage:8470/checkpoints/run1")   # newest good one

The on-store layout, the verification and the torch.distributed.checkpoint recipe are
in README.md beside this file.
"""

from __future__ import annotations

from farfeed.checkpoint.api import CheckpointFallbackWarning, latest, list_checkpoints, load, save
from farfeed.checkpoint.handle import SaveHandle
from farfeed.checkpoint.manifest import CheckpointInfo
from farfeed.transfer.plan import Transfer

__all__ = [
    "CheckpointFallbackWarning",
    "CheckpointInfo",
    "SaveHandle",
    "Transfer",
    "latest",
    "list_checkpoints",
    "load",
    "save",
]
