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

__all__ = ["Batch", "DataLoader", "Dataset"]


def __getattr__(name: str) -> Any:
    """Import torch only with the torch parts: `farfeed.loader.index` works without it."""
    if name == "Dataset":
        from farfeed.loader.dataset import Dataset

        return Dataset
    if name == "Batch":
        from farfeed.loader.batch import Batch

        return Batch
    if name == "DataLoader":
        from farfeed.loader.dataloader import DataLoader

        return DataLoader
    raise AttributeError(f"module 'farfeed.loader' has no attribute {name!r}")
