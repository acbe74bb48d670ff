"""`Batch`: a whole batch of raw samples in one uint8 tensor (what ``decode="batch"`` yields).

The bytes are never copied: the socket writes them where the batch's tensor lies, an
arena of memory reused from batch to batch (`farfeed.loader.arena`). In
`farfeed.loader.DataLoader` workers the arena is shared memory mapped once, so only
``(offset, length)`` and small tables cross to the training process. Each sample's
members (``jpg``, ``cls``...) are (start, length) pairs into the same tensor, so e.g. the
JPEG bytes go straight to ``torchvision.io.decode_jpeg``.

A batch is valid until the loop has taken ``keep_batches`` (default 2) newer batches,
and at most until the next epoch starts (the arena is kept for it, pages warm); then its
bytes are reused. `member` and `sample` refuse a reused batch; `clone` keeps one for
longer (``farfeed.loader.DataLoader(..., keep_batches=N)`` keeps more).

    for batch in DataLoader(Dataset(url, decode="batch", batch_size=256), batch_size=256,
                            num_workers=8):
        jpegs = [batch.member(k, "jpg") for k in range(len(batch))]   # uint8 views
        labels = batch.labels                                         # int64 [n]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from farfeed.loader.arena import ArenaError, Lease


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
    lease: Lease | None = field(default=None, repr=False)
    """Where ``data`` lies in a worker's batch arena (None: ``data`` is the batch's own)."""

    def __len__(self) -> int:
        return len(self.keys)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Crossing processes: from an arena, only the lease (arena, offset, length); else
        ``data`` as a tensor (a file descriptor to its shared memory). The small tables go
        by value as numpy arrays, since every tensor storage sent costs torch its own
        descriptor round trip (~0.5 ms each)."""
        tables = {ext: t.numpy() for ext, t in self.members.items()}
        small = (self.offsets.numpy(), self.ids.numpy(), self.labels.numpy(), self.keys, tables)
        if self.lease is not None and self.lease.arenas.token[0] != os.getpid():
            return (_rebuild_leased, (self.lease, *small))  # a worker -> its training process
        return (_rebuild, (self.data, *small))

    @property
    def valid(self) -> bool:
        """False once the loader reused this batch's arena region (see the module docs)."""
        return self.lease is None or self.lease.valid

    def _check(self) -> None:
        if not self.valid:
            raise ArenaError(
                "this Batch's bytes were reused: a batch from DataLoader workers is kept "
                "until the training loop has taken keep_batches newer ones; call "
                "batch.clone() to keep it longer, or raise keep_batches"
            )

    def clone(self) -> Batch:
        """A copy that owns its bytes (not tied to a worker's arena)."""
        self._check()
        return Batch(
            data=self.data.clone(),
            offsets=self.offsets.clone(),
            ids=self.ids.clone(),
            labels=self.labels.clone(),
            keys=list(self.keys),
            members={ext: t.clone() for ext, t in self.members.items()},
        )

    @property
    def nbytes(self) -> int:
        """Bytes of all samples of the batch (the length of ``data``)."""
        return int(self.data.numel())

    def sample(self, k: int) -> torch.Tensor:
        """Sample ``k``'s whole span: a uint8 view into ``data`` (no copy)."""
        self._check()
        return self.data[int(self.offsets[k]) : int(self.offsets[k + 1])]

    def member(self, k: int, ext: str) -> torch.Tensor:
        """Sample ``k``'s member ``ext`` (e.g. ``"jpg"``): a uint8 view into ``data``."""
        self._check()
        table = self.members.get(ext)
        if table is None:
            raise KeyError(f"no member {ext!r} in this batch; it has {sorted(self.members)}")
        start, length = (int(v) for v in table[k])
        if length < 0:
            raise KeyError(f"sample {self.keys[k]!r} has no member {ext!r}")
        return self.data[start : start + length]


def _rebuild(
    data: torch.Tensor,
    offsets: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    keys: list[str],
    members: dict[str, np.ndarray],
    lease: Lease | None = None,
) -> Batch:
    return Batch(
        data=data,
        offsets=torch.from_numpy(offsets),
        ids=torch.from_numpy(ids),
        labels=torch.from_numpy(labels),
        keys=keys,
        members={ext: torch.from_numpy(t) for ext, t in members.items()},
        lease=lease,
    )


def _rebuild_leased(
    lease: Lease,
    offsets: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    keys: list[str],
    members: dict[str, np.ndarray],
) -> Batch:
    return _rebuild(lease.tensor(), offsets, ids, labels, keys, members, lease=lease)


def new_buffer(nbytes: int, *, shared: bool) -> torch.Tensor:
    """An uninitialised uint8 tensor; in shared memory when it will cross to another process.

    Not shared: numpy's allocator (large blocks get transparent huge pages: ~0.14 CPU-s/GB
    to fault in and fill, against ~0.7 for ``torch.empty`` on these VMs).
    """
    if not shared:
        return torch.from_numpy(np.empty(nbytes, dtype=np.uint8))
    # torch's own collate makes batches this way in workers: the storage is born shared,
    # so sending it is a file descriptor and no copy.
    storage = torch.UntypedStorage._new_shared(max(1, nbytes))  # type: ignore[attr-defined]
    return torch.empty(0, dtype=torch.uint8).set_(storage)[:nbytes]


def make_batch(
    index: Any, ids: Sequence[int] | np.ndarray, data: torch.Tensor, sizes: Sequence[int], *,
    lease: Lease | None = None,
) -> Batch:  # fmt: skip
    """One `Batch` of samples ``ids`` of a `SampleIndex`, whose verified spans lie back to
    back in ``data`` (``sizes[k]`` bytes each): no copy."""
    n = len(sizes)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.asarray(sizes, dtype=np.int64), out=offsets[1:])
    if int(offsets[-1]) != int(data.numel()):
        raise ValueError(f"{int(offsets[-1])} bytes of samples in a {int(data.numel())}-byte tensor")
    id_array = np.asarray(ids, dtype=np.int64)
    return Batch(
        data=data,
        offsets=torch.from_numpy(offsets),
        ids=torch.from_numpy(id_array.copy()),
        labels=torch.from_numpy(index.label[id_array].astype(np.int64)),
        keys=[k.decode("utf-8", "surrogateescape") for k in index.key[id_array].tolist()],
        members=_member_tables(index, id_array, offsets),
        lease=lease,
    )


def _member_tables(index: Any, ids: np.ndarray, offsets: np.ndarray) -> dict[str, torch.Tensor]:
    """Extension -> ``[n, 2]`` (start in the batch's data, length), -1 where absent (vectorised)."""
    first, last = index.member_start[ids].astype(np.int64), index.member_start[ids + 1].astype(np.int64)
    counts = last - first
    single = bool(len(ids)) and counts.min() == counts.max() == 1
    if single:  # one member per sample: no fan-out
        owner, member = np.arange(len(ids)), first
    else:
        owner = np.repeat(np.arange(len(ids)), counts)  # the batch position of each member
        member = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        member += np.repeat(first, counts)  # index of each member in the index's member arrays
    exts = index.member_ext[member]
    starts = offsets[owner] + index.member_offset[member].astype(np.int64)
    sizes = index.member_size[member].astype(np.int64)
    if single and exts.min() == exts.max():  # the common case: one table, no gaps
        return {index.extensions[int(exts[0])]: torch.from_numpy(np.stack([starts, sizes], axis=1))}
    tables: dict[str, torch.Tensor] = {}
    for ext in np.unique(exts).tolist():
        pick = exts == ext
        table = np.full((len(ids), 2), -1, dtype=np.int64)
        table[owner[pick], 0] = starts[pick]
        table[owner[pick], 1] = sizes[pick]
        tables[index.extensions[ext]] = torch.from_numpy(table)
    return tables
