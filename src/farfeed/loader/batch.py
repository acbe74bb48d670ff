"""`Batch`: a whole batch of raw samples in one uint8 tensor (what ``decode="batch"`` yields).

In a DataLoader worker the tensor is made in shared memory, so it reaches the training
process as a file descriptor: the samples' bytes are not pickled through the worker's
pipe. Each sample's members (``jpg``, ``cls``...) are (start, length) pairs into the same
tensor, so e.g. the JPEG bytes go straight to ``torchvision.io.decode_jpeg``.

    for batch in DataLoader(Dataset(url, decode="batch", batch_size=256), batch_size=256,
                            num_workers=8):
        jpegs = [batch.member(k, "jpg") for k in range(len(batch))]   # uint8 views
        labels = batch.labels                                         # int64 [n]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Batch:
    """Samples ``ids`` back to back in ``data``; sample ``k`` is ``data[offsets[k]:offsets[k+1]]``
    (its whole span in the shard: tar headers and every member).

    - ``data``: uint8 tensor of all the samples' bytes.
    - ``offsets``: int64 tensor of ``len + 1`` positions in ``data``.
    - ``ids``: int64 sample ids (positions in the dataset's index).
    - ``labels``: int64 class labels from the index (-1 where a sample has none).
    - ``keys``: the samples' WebDataset keys.
    - ``members``: extension -> int64 tensor ``[len, 2]`` of (start in ``data``, length);
      length -1 where a sample lacks that member.
    """

    data: torch.Tensor
    offsets: torch.Tensor
    ids: torch.Tensor
    labels: torch.Tensor
    keys: list[str]
    members: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.data.numel())

    def sample(self, k: int) -> torch.Tensor:
        """Sample ``k``'s whole span: a uint8 view into ``data`` (no copy)."""
        return self.data[int(self.offsets[k]) : int(self.offsets[k + 1])]

    def member(self, k: int, ext: str) -> torch.Tensor:
        """Sample ``k``'s member ``ext`` (e.g. ``"jpg"``): a uint8 view into ``data``."""
        table = self.members.get(ext)
        if table is None:
            raise KeyError(f"no member {ext!r} in this batch; it has {sorted(self.members)}")
        start, length = (int(v) for v in table[k])
        if length < 0:
            raise KeyError(f"sample {self.keys[k]!r} has no member {ext!r}")
        return self.data[start : start + length]


def new_buffer(nbytes: int, *, shared: bool) -> torch.Tensor:
    """An uninitialised uint8 tensor; in shared memory when it will cross to another process."""
    if not shared:
        return torch.empty(nbytes, dtype=torch.uint8)
    # torch's own collate makes batches this way in workers: the storage is born shared,
    # so sending it is a file descriptor and no copy.
    storage = torch.UntypedStorage._new_shared(max(1, nbytes))  # type: ignore[attr-defined]
    return torch.empty(0, dtype=torch.uint8).set_(storage)[:nbytes]


def make_batch(index: Any, ids: Sequence[int], views: Sequence[memoryview], *, shared: bool) -> Batch:
    """One `Batch` from samples ``ids`` of a `SampleIndex` and their verified spans."""
    sizes = np.fromiter((len(v) for v in views), dtype=np.int64, count=len(views))
    offsets = np.zeros(len(views) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = new_buffer(int(offsets[-1]), shared=shared)
    flat = data.numpy()
    for k, view in enumerate(views):
        flat[offsets[k] : offsets[k + 1]] = np.frombuffer(view, dtype=np.uint8)
    id_array = np.asarray(ids, dtype=np.int64)
    members: dict[str, np.ndarray] = {}
    starts, ends = index.member_start[id_array], index.member_start[id_array + 1]
    for k, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        for m in range(lo, hi):
            ext = index.extensions[int(index.member_ext[m])]
            table = members.get(ext)
            if table is None:
                table = members[ext] = np.full((len(views), 2), -1, dtype=np.int64)
            table[k] = (offsets[k] + int(index.member_offset[m]), int(index.member_size[m]))
    return Batch(
        data=data,
        offsets=torch.from_numpy(offsets),
        ids=torch.from_numpy(id_array.copy()),
        labels=torch.from_numpy(index.label[id_array].astype(np.int64)),
        keys=[index.key_of(int(i)) for i in id_array.tolist()],
        members={ext: torch.from_numpy(t) for ext, t in members.items()},
    )
