"""farfeed.loader: the GPU-site data path, sampler -> planner -> fetch -> reorder -> verify -> decode.

    import farfeed
    from farfeed.loader import DataLoader

    ds = farfeed.Dataset("http://storage:8470/imagenet", decode="image", batch_size=256)
    loader = DataLoader(ds, batch_size=256, num_workers=8)
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for images, labels in loader:
            ...
        state = loader.state_dict()        # exact mid-epoch position, any time

See README.md beside this file for the stages, the split rule, the state_dict
contract and the memory budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from farfeed.loader.batch import Batch
    from farfeed.loader.dataloader import DataLoader
    from farfeed.loader.dataset import Dataset
    from farfeed.loader.decode import image_pipeline
    from farfeed.loader.images import decode_images

__all__ = ["Batch", "DataLoader", "Dataset", "decode_images", "image_pipeline"]

#: Public name -> the module defining it (imported on first use: torch is heavy).
_LAZY = {
    "Batch": "farfeed.loader.batch",
    "DataLoader": "farfeed.loader.dataloader",
    "Dataset": "farfeed.loader.dataset",
    "decode_images": "farfeed.loader.images",
    "image_pipeline": "farfeed.loader.decode",
}


def __getattr__(name: str) -> Any:
    """Import torch only with the torch parts: `farfeed.loader.index` works without it."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'farfeed.loader' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once; later lookups skip this function
    return value
