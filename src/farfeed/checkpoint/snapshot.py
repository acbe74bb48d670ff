"""The host-memory snapshot of a training state, and its bytes cut into checked parts.

`take_snapshot` is the only part of a save the training loop waits for: it copies every
tensor to fresh host memory (so training may change its tensors the moment `save`
returns) and lays them out as one safetensors file, without joining them into one
buffer. `Snapshot.parts` then cuts that virtual file into parts, hashing each part and
the whole as it goes, for the background upload.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import xxhash

from farfeed.checkpoint.tree import flatten
from farfeed.errors import ConfigError
from farfeed.format import safetensors as stlayout


@dataclass(slots=True)
class Snapshot:
    """A training state copied to host memory, laid out as a safetensors file."""

    tree: Any
    tensors: dict[str, torch.Tensor]
    #: (file offset, bytes) of the header and of every non-empty tensor, in file order.
    segments: list[tuple[int, memoryview]]
    size: int
    seconds: float
    created: float
    #: Filled by `parts` as it runs: one xxh64 per part, and the whole file's.
    part_hashes: list[str] = field(default_factory=list)
    xxh64: str = ""

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data held (the host memory this snapshot costs)."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def parts(self, part_size: int) -> Iterator[memoryview | bytes]:
        """The file's bytes in parts of ``part_size`` (the last shorter), hashed on the way.

        A part inside one tensor is a view (no copy); one that spans tensors is joined.
        """
        if part_size < 1:
            raise ConfigError(f"part_size must be >= 1, got {part_size!r}")
        self.part_hashes = []
        whole = xxhash.xxh64()
        starts = [s for s, _ in self.segments]
        for begin in range(0, self.size, part_size):
            end = min(begin + part_size, self.size)
            part = self._slice(starts, begin, end)
            self.part_hashes.append(xxhash.xxh64(part).hexdigest())
            whole.update(part)
            yield part
        self.xxh64 = whole.hexdigest()

    def _slice(self, starts: list[int], begin: int, end: int) -> memoryview | bytes:
        k = bisect.bisect_right(starts, begin) - 1
        pieces: list[memoryview] = []
        pos = begin
        while pos < end:
            seg_start, seg = self.segments[k]
            lo = pos - seg_start
            hi = min(len(seg), end - seg_start)
            pieces.append(seg[lo:hi])
            pos = seg_start + hi
            k += 1
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def take_snapshot(state: Mapping[str, Any], *, metadata: Mapping[str, str] | None = None) -> Snapshot:
    """Copy ``state``'s tensors to host memory and lay out the safetensors file (in this thread)."""
    created = time.time()
    t0 = time.perf_counter()
    live, tree = flatten(state)
    copies: dict[str, torch.Tensor] = {}
    for name, t in live.items():
        t = t.detach()
        copies[name] = torch.empty(t.shape, dtype=t.dtype, device="cpu").copy_(t)
    specs = {n: (t.dtype, tuple(t.shape), t.numel() * t.element_size()) for n, t in copies.items()}
    header, offsets = stlayout.build_header(specs, metadata=metadata)
    base = len(header)
    segments: list[tuple[int, memoryview]] = [(0, memoryview(header))]
    for name in sorted(offsets, key=offsets.__getitem__):
        t = copies[name]
        if t.numel():
            raw = t.reshape(-1).view(torch.uint8).numpy()
            segments.append((base + offsets[name], raw.data.cast("B")))
    size = base + sum(spec[2] for spec in specs.values())
    return Snapshot(tree, copies, segments, size, time.perf_counter() - t0, created)
