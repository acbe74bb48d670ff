"""Land byte ranges of a safetensors file straight in their tensors, in any order.

Each tensor gets its own fresh storage (not a view of one big buffer: a view would keep
the whole file alive, `torch.save` of one tensor would write all of it, and some torch
calls mishandle storage offsets). A part that arrives is copied once, into the tensors it
overlaps; bytes outside the data section (the header) are skipped.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np
import torch

from farfeed.format.safetensors import TensorEntry


class Scatter:
    """Empty tensors for ``entries`` (data section at file offset ``base``) and `put` to fill them."""

    def __init__(self, entries: Sequence[TensorEntry], *, base: int, pin: bool = False) -> None:
        self.base = base
        self.tensors: dict[str, torch.Tensor] = {}
        for e in entries:
            self.tensors[e.name] = torch.empty(e.shape, dtype=e.dtype, pin_memory=pin and e.nbytes > 0)
        # empty tensors need no bytes, and would share a start with their neighbour
        self.entries = sorted((e for e in entries if e.nbytes), key=lambda e: e.begin)
        self._bytes = [self.tensors[e.name].reshape(-1).view(torch.uint8).numpy() for e in self.entries]
        self._starts = [base + e.begin for e in self.entries]

    def put(self, offset: int, blob: bytes | memoryview) -> None:
        """Copy ``blob``, the file's bytes from ``offset``, into the tensors it covers."""
        end = offset + len(blob)
        src = np.frombuffer(blob, dtype=np.uint8)
        k = max(0, bisect.bisect_right(self._starts, offset) - 1)
        while k < len(self.entries) and self._starts[k] < end:
            e = self.entries[k]
            lo = max(offset, self._starts[k])
            hi = min(end, self._starts[k] + e.nbytes)
            if lo < hi:
                t0 = lo - self._starts[k]
                self._bytes[k][t0 : t0 + hi - lo] = src[lo - offset : hi - offset]
            k += 1
