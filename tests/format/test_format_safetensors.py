"""The safetensors layout: bad headers are refused with the file named."""

from __future__ import annotations

import struct

import pytest
from helpers.torch_state import raw_safetensors

from farfeed.errors import FormatError
from farfeed.format import safetensors as stlayout


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 1 << 40), "not a safetensors"),
        (struct.pack("<Q", 10) + b"{}", "truncated"),
        (raw_safetensors({"x": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}), "starts at 4"),
        (raw_safetensors({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}), "needs 12 bytes"),
        (raw_safetensors({"x": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}), "unknown dtype"),
        (struct.pack("<Q", 3) + b"abc", "not JSON"),
    ],
)
def test_bad_headers_are_named(raw: bytes, needle: str) -> None:
    with pytest.raises(FormatError, match=needle) as info:
        stlayout.parse_header(raw, where="shard-7")
    assert "shard-7" in str(info.value)
