"""`Scatter`: parts of a safetensors file land in their tensors, in any order and any size."""

from __future__ import annotations

import struct

import torch
from helpers.torch_state import raw_safetensors

from farfeed.checkpoint.snapshot import take_snapshot
from farfeed.format import safetensors as stlayout
from farfeed.transfer.scatter import Scatter


def test_scatter_fills_tensors_from_parts_in_any_order() -> None:
    state = {
        "a": torch.arange(10, dtype=torch.int64),
        "e1": torch.zeros(0, dtype=torch.int64),
        "b": torch.randn(7),
        "e2": torch.zeros(0, 3),
        "c": torch.tensor([True, False]),
        "d": torch.arange(5, dtype=torch.int16),
    }
    snap = take_snapshot(state)
    blob = b"".join(bytes(p) for p in snap.parts(1 << 20))
    header = stlayout.parse_header(blob, where="x")
    scatter = Scatter(header.entries, base=header.data_start)
    cuts = list(range(0, len(blob), 13)) + [len(blob)]
    for lo, hi in reversed(list(zip(cuts[:-1], cuts[1:], strict=True))):  # odd-sized parts, last first
        scatter.put(lo, blob[lo:hi])
    for k, v in state.items():
        assert scatter.tensors[k].dtype == v.dtype and torch.equal(scatter.tensors[k], v), k


def test_scatter_with_an_empty_tensor_listed_after_its_neighbour() -> None:
    data = struct.pack("<3f", 1.0, 2.0, 3.0)
    header = {  # JSON order as another writer may choose: the empty "y" after "z", same start
        "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "z": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
        "y": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},
    }
    raw = raw_safetensors(header, data)
    parsed = stlayout.parse_header(raw, where="foreign")
    scatter = Scatter(parsed.entries, base=parsed.data_start)
    scatter.put(parsed.data_start + 8, raw[parsed.data_start + 8 :])
    scatter.put(parsed.data_start, raw[parsed.data_start : parsed.data_start + 8])
    assert scatter.tensors["z"].tolist() == [3.0] and scatter.tensors["x"].tolist() == [1.0, 2.0]
    assert scatter.tensors["y"].shape == (0,)
