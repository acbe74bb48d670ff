"""Checkpoints on S3 (``rclone serve s3``): multipart upload, range-read load, retention."""

from __future__ import annotations

import pytest
from helpers.stores import Remote
from helpers.torch_state import assert_same, tiny_state

import farfeed.checkpoint as ckpt
from farfeed.errors import CheckpointError

MiB = 1024 * 1024


def test_save_and_load_over_s3_multipart(s3_run: Remote) -> None:
    opts = {**s3_run.store_options, "multipart_threshold": 5 * MiB}
    plan = ckpt.Transfer(min_part=5 * MiB, max_part=5 * MiB)
    state = tiny_state(3, big=2 * MiB)  # 8 MiB of float32: two 5 MiB parts, multipart
    ckpt.save({"x": tiny_state(0)["model"]}, s3_run.url, step=1, store_options=opts).wait(timeout=120)
    handle = ckpt.save(state, s3_run.url, step=2, keep=1, store_options=opts, transfer=plan)
    info = handle.wait(timeout=120)
    assert handle.sent is not None and handle.sent.parts >= 2  # a multipart upload, not one PUT
    assert info.bytes > 8 * MiB
    assert (s3_run.folder / "step-000000000002" / "tensors.safetensors").stat().st_size > 8 * MiB
    assert [i.step for i in ckpt.list_checkpoints(s3_run.url, store_options=opts)] == [2]
    assert_same(state, ckpt.load(s3_run.url, store_options=opts, transfer=plan))


def test_corrupt_object_on_s3_is_detected(s3_run: Remote) -> None:
    opts = s3_run.store_options
    ckpt.save({"w": tiny_state(1)["model"]}, s3_run.url, step=1, store_options=opts).wait(timeout=60)
    data = s3_run.folder / "step-000000000001" / "tensors.safetensors"
    raw = bytearray(data.read_bytes())
    raw[-3] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.load(s3_run.url, step=1, store_options=opts)
