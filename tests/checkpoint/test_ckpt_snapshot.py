"""Snapshots: a valid safetensors file with aligned tensors, a copy (training may go on), no odd dtypes."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch

from farfeed.checkpoint.snapshot import take_snapshot
from farfeed.errors import ConfigError
from farfeed.format import safetensors as stlayout


def test_snapshot_is_a_valid_safetensors_file_with_aligned_tensors() -> None:
    state = {"a": torch.arange(3, dtype=torch.int8), "b": torch.randn(5, 7), "c": torch.ones(2, dtype=torch.float64)}
    snap = take_snapshot(state)
    blob = b"".join(bytes(p) for p in snap.parts(1000))
    assert len(blob) == snap.size and len(snap.part_hashes) == -(-snap.size // 1000)
    loaded = safetensors.torch.load(blob)
    for k, v in state.items():
        assert torch.equal(loaded[k], v)
    header = stlayout.parse_header(blob, where="snap")
    for e in header.entries:
        assert (header.data_start + e.begin) % e.dtype.itemsize == 0


def test_snapshot_copies_so_training_may_go_on() -> None:
    w = torch.zeros(4)
    snap = take_snapshot({"w": w})
    w += 1
    assert torch.equal(snap.tensors["w"], torch.zeros(4))


def test_unsupported_dtype_is_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="complex128"):
        take_snapshot({"z": torch.zeros(2, dtype=torch.complex128)})
