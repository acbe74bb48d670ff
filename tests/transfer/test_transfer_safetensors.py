"""`read_safetensors_header` through a real store: one read for a usual header, two for a huge
one, none with a probe; a size that does not fit is a FormatError."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch
from helpers.stores import CountingStore

from farfeed.errors import FormatError
from farfeed.format.safetensors import HEADER_PROBE, Header
from farfeed.transfer.safetensors import read_safetensors_header

NAME = "model.safetensors"


def _write(folder: Path, metadata: dict[str, str]) -> tuple[dict[str, torch.Tensor], bytes]:
    """A safetensors file written by the safetensors library, larger than one probe."""
    tensors = {
        "embed": torch.randn(300, 256),  # 300 KiB: the file is longer than HEADER_PROBE
        "norm": torch.arange(7, dtype=torch.bfloat16),
        "steps": torch.tensor([3, 1, 4], dtype=torch.int64),
    }
    safetensors.torch.save_file(tensors, folder / NAME, metadata=metadata)
    return tensors, (folder / NAME).read_bytes()


def _check(raw: bytes, header: Header, tensors: dict[str, torch.Tensor], data: bytes) -> None:
    """``raw`` is the file's prefix up to the data; every entry points at its tensor's bytes."""
    assert raw == data[: header.data_start] and header.file_size == len(data)
    assert {e.name for e in header.entries} == set(tensors)
    for e in header.entries:
        t = tensors[e.name]
        assert (e.dtype, e.shape) == (t.dtype, tuple(t.shape)), e.name
        got = data[header.data_start + e.begin : header.data_start + e.end]
        assert got == t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes(), e.name


async def test_a_usual_header_takes_one_probe_read(tmp_path: Path) -> None:
    tensors, data = _write(tmp_path, {"format": "pt"})
    assert len(data) > HEADER_PROBE
    store = CountingStore(tmp_path)
    async with store:
        raw, header = await read_safetensors_header(store, NAME, size=len(data), where="w1")
    assert store.reads == [(NAME, 0, HEADER_PROBE)]
    assert header.metadata == {"format": "pt"}
    _check(raw, header, tensors, data)


async def test_a_header_larger_than_the_probe_takes_a_second_read(tmp_path: Path) -> None:
    tensors, data = _write(tmp_path, {"notes": "x" * 300_000})
    store = CountingStore(tmp_path)
    async with store:
        raw, header = await read_safetensors_header(store, NAME, size=len(data), where="w2")
    assert header.data_start > HEADER_PROBE
    assert store.reads == [(NAME, 0, HEADER_PROBE), (NAME, HEADER_PROBE, header.data_start - HEADER_PROBE)]
    assert header.metadata["notes"] == "x" * 300_000
    _check(raw, header, tensors, data)


async def test_a_probe_saves_the_first_read(tmp_path: Path) -> None:
    tensors, data = _write(tmp_path, {"notes": "y" * 300_000})
    store = CountingStore(tmp_path)
    async with store:
        head = data[:HEADER_PROBE]
        raw, header = await read_safetensors_header(store, NAME, size=len(data), where="w3", probe=head)
        assert store.reads == [(NAME, HEADER_PROBE, header.data_start - HEADER_PROBE)]
        _check(raw, header, tensors, data)
        store.reads.clear()
        whole = data[: header.data_start + 10]
        raw, header = await read_safetensors_header(store, NAME, size=len(data), where="w3", probe=whole)
        assert store.reads == []
        _check(raw, header, tensors, data)


async def test_a_transient_read_error_is_retried(tmp_path: Path) -> None:
    tensors, data = _write(tmp_path, {})
    store = CountingStore(tmp_path, fail=1)
    async with store:
        raw, header = await read_safetensors_header(store, NAME, size=len(data), where="w4")
    assert store.reads == [(NAME, 0, HEADER_PROBE)] * 2
    _check(raw, header, tensors, data)


@pytest.mark.parametrize(
    ("metadata", "size_change", "needle"),
    [
        ({}, +1, r"w5: header describes \d+ bytes but the file has \d+"),
        ({}, -1, r"w5: header describes \d+ bytes but the file has \d+"),
        ({"notes": "z" * 300_000}, None, r"w5: header of \d+ bytes in a 4096-byte file"),
    ],
    ids=["one-byte-more", "one-byte-less", "header-past-the-end"],
)
async def test_a_size_that_does_not_match_is_a_format_error(
    tmp_path: Path, metadata: dict[str, str], size_change: int | None, needle: str
) -> None:
    _, data = _write(tmp_path, metadata)
    size = 4096 if size_change is None else len(data) + size_change
    store = CountingStore(tmp_path)
    async with store:
        with pytest.raises(FormatError, match=needle):
            await read_safetensors_header(store, NAME, size=size, where="w5")
