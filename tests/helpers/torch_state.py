"""Tensors for the checkpoint and weights tests: a tiny varied state, deep equality, raw files."""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def tiny_model(seed: int = 0) -> torch.nn.Module:
    """A two-layer MLP, mixed dtypes after `tiny_state` adds buffers."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))


def tiny_state(seed: int = 0, *, big: int = 0) -> dict[str, Any]:
    """Model + optimizer after one step, RNG states, odd values; ``big`` adds that many float32s."""
    model = tiny_model(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 32)).sum().backward()
    opt.step()
    state: dict[str, Any] = {
        "model": model.state_dict(),
        "optim": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "misc": {
            "bf16": torch.arange(10, dtype=torch.bfloat16),
            "mask": torch.tensor([True, False, True]),
            "scalar": torch.tensor(3.5),
            "empty": torch.zeros(0, 4),
            "transposed": torch.arange(12.0).reshape(3, 4).t(),
            "nan": float("nan"),
            "blob": b"\x00\xff",
            "pair": (1, "two"),
            "by_int": {0: "a", 7: "b"},
        },
    }
    if big:
        state["big"] = torch.randn(big, generator=torch.Generator().manual_seed(seed))
    return state


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Deep equality with tensors compared bit for bit (NaN equals NaN)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(_bits(a), _bits(b)), path
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}/{i}")
    elif isinstance(a, float) and a != a:
        assert isinstance(b, float) and b != b, path
    else:
        assert a == b, path


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes, so that NaNs and -0.0 compare bit for bit."""
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def raw_safetensors(header: Mapping[str, object], data: bytes = b"") -> bytes:
    """A safetensors file written by hand: length prefix, ``header`` as JSON, then ``data``."""
    body = json.dumps(header).encode()
    return struct.pack("<Q", len(body)) + body + data
