"""The safetensors layout farfeed writes and parses, and the transfer plan."""

from __future__ import annotations

import json
import struct

import pytest
import safetensors.torch
import torch

from farfeed.checkpoint.snapshot import take_snapshot
from farfeed.errors import ConfigError, FormatError
from farfeed.format import safetensors as stlayout
from farfeed.transfer.plan import Transfer


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


def _raw(header: dict[str, object], data: bytes = b"") -> bytes:
    body = json.dumps(header).encode()
    return struct.pack("<Q", len(body)) + body + data


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 1 << 40), "not a safetensors"),
        (struct.pack("<Q", 10) + b"{}", "truncated"),
        (_raw({"x": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}), "starts at 4"),
        (_raw({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}), "needs 12 bytes"),
        (_raw({"x": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}), "unknown dtype"),
        (struct.pack("<Q", 3) + b"abc", "not JSON"),
    ],
)
def test_bad_headers_are_named(raw: bytes, needle: str) -> None:
    with pytest.raises(FormatError, match=needle) as info:
        stlayout.parse_header(raw, where="shard-7")
    assert "shard-7" in str(info.value)


def test_unsupported_dtype_is_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="complex128"):
        take_snapshot({"z": torch.zeros(2, dtype=torch.complex128)})


def test_plan_follows_bandwidth_delay_product() -> None:
    lan = Transfer(rtt=0.0005, bandwidth=1.25e9)
    wan = Transfer(rtt=0.015, bandwidth=12.5e9)
    far = Transfer(rtt=0.1, bandwidth=12.5e9)
    # 100 Gb/s x 15 ms = 187.5 MB in flight, 4 MiB per stream -> 45 streams, doubled
    assert wan.connections == 90
    assert lan.connections == lan.min_connections
    assert far.connections == far.max_connections
    big = 140 * 10**9
    assert lan.part_size(big) == lan.min_part < wan.part_size(big) <= wan.max_part
    assert wan.part_size(big) % (64 * 1024) == 0
    # small objects are still spread over the connections, never below 64 KiB
    assert Transfer(min_part=64 * 1024).part_size(1000) == 64 * 1024


@pytest.mark.parametrize("kwargs", [{"rtt": -1}, {"bandwidth": 0}, {"overhead": 1.5}, {"min_part": 10}])
def test_plan_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=repr(next(iter(kwargs.values())))):
        Transfer(**kwargs)  # type: ignore[arg-type]


def test_scatter_fills_tensors_from_parts_in_any_order() -> None:
    from farfeed.transfer.scatter import Scatter

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
    from farfeed.transfer.scatter import Scatter

    data = struct.pack("<3f", 1.0, 2.0, 3.0)
    header = {  # JSON order as another writer may choose: the empty "y" after "z", same start
        "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "z": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
        "y": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},
    }
    raw = _raw(header, data)
    parsed = stlayout.parse_header(raw, where="foreign")
    scatter = Scatter(parsed.entries, base=parsed.data_start)
    scatter.put(parsed.data_start + 8, raw[parsed.data_start + 8 :])
    scatter.put(parsed.data_start, raw[parsed.data_start : parsed.data_start + 8])
    assert scatter.tensors["z"].tolist() == [3.0] and scatter.tensors["x"].tolist() == [1.0, 2.0]
    assert scatter.tensors["y"].shape == (0,)
