"""save / load / latest / retention against a local folder (the same code path as remote)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.torch_state import assert_same, tiny_state

import farfeed.checkpoint as ckpt
from farfeed.errors import CheckpointError, ConfigError, StoreError

SMALL_PARTS = ckpt.Transfer(min_part=64 * 1024)


def _data(run: Path, step: int) -> Path:
    return run / f"step-{step:012d}" / "tensors.safetensors"


def test_save_load_round_trip_with_config(tmp_path: Path) -> None:
    state = tiny_state(big=100_000)
    handle = ckpt.save(state, str(tmp_path), step=7, config={"lr": 0.001, "model": "mlp"}, transfer=SMALL_PARTS)
    info = handle.wait(timeout=60)
    assert handle.done() and handle.snapshot_seconds > 0 and handle.upload_seconds is not None
    assert info.step == 7 and info.config == {"lr": 0.001, "model": "mlp"}
    manifest = json.loads((tmp_path / "step-000000000007" / "manifest.json").read_text())
    assert len(manifest["data"]["parts"]) > 4  # really cut into parts
    assert_same(state, ckpt.load(str(tmp_path), transfer=SMALL_PARTS))
    assert ckpt.latest(str(tmp_path)) == ckpt.list_checkpoints(str(tmp_path))[0]


def test_training_may_change_tensors_right_after_save(tmp_path: Path) -> None:
    w = torch.zeros(200_000)
    handle = ckpt.save({"w": w}, str(tmp_path), step=1)
    w += 1  # the next optimizer step, while the upload runs
    handle.wait(timeout=60)
    assert torch.equal(ckpt.load(str(tmp_path))["w"], torch.zeros(200_000))


def test_retention_keeps_the_newest_k(tmp_path: Path) -> None:
    for step in (10, 20, 30, 40):
        ckpt.save({"x": torch.tensor([step])}, str(tmp_path), step=step, keep=2).wait(timeout=60)
    assert [i.step for i in ckpt.list_checkpoints(str(tmp_path))] == [30, 40]
    folders = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert [int(name.removeprefix("step-")) for name in folders] == [30, 40]  # no empty ones left
    assert ckpt.load(str(tmp_path), step=30)["x"].item() == 30
    with pytest.raises(CheckpointError, match="step 10"):
        ckpt.load(str(tmp_path), step=10)


def test_resaving_a_step_replaces_it(tmp_path: Path) -> None:
    ckpt.save({"x": torch.tensor([1])}, str(tmp_path), step=5).wait(timeout=60)
    ckpt.save({"x": torch.tensor([2])}, str(tmp_path), step=5).wait(timeout=60)
    assert ckpt.load(str(tmp_path))["x"].item() == 2


def test_corrupt_part_is_detected_and_load_falls_back(tmp_path: Path) -> None:
    run = str(tmp_path)
    ckpt.save(tiny_state(1, big=50_000), run, step=1, transfer=SMALL_PARTS).wait(timeout=60)
    ckpt.save(tiny_state(2, big=50_000), run, step=2, transfer=SMALL_PARTS).wait(timeout=60)
    data = _data(tmp_path, 2)
    raw = bytearray(data.read_bytes())
    raw[150_000] ^= 0x01  # one flipped bit, inside part 2 of 64 KiB parts
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"step-000000000002: part 2 .* corrupt"):
        ckpt.load(run, step=2)
    assert ckpt.latest(run).step == 2  # type: ignore[union-attr]  # sizes still check out
    with pytest.warns(ckpt.CheckpointFallbackWarning, match="step-000000000002"):
        assert ckpt.latest(run, verify="full").step == 1  # type: ignore[union-attr]
    with pytest.warns(ckpt.CheckpointFallbackWarning, match="part 2"):
        state = ckpt.load(run)
    assert_same(tiny_state(1, big=50_000), state)


@pytest.mark.parametrize("damage", ["truncate", "delete", "garble-manifest"])
def test_damaged_newest_falls_back_to_previous(tmp_path: Path, damage: str) -> None:
    run = str(tmp_path)
    for step in (1, 2):
        ckpt.save({"x": torch.full((30_000,), float(step))}, run, step=step).wait(timeout=60)
    data = _data(tmp_path, 2)
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:-100])
    elif damage == "delete":
        data.unlink()
    else:
        (data.parent / "manifest.json").write_text('{"farfeed_checkpoint": 1, "step": ')
    with pytest.warns(ckpt.CheckpointFallbackWarning, match="step-000000000002") as rec:
        info = ckpt.latest(run)
    assert info is not None and info.step == 1
    assert {"truncate": "truncated", "delete": "missing", "garble-manifest": "malformed"}[damage] in str(rec[0].message)
    with pytest.warns(ckpt.CheckpointFallbackWarning):
        assert ckpt.load(run)["x"][0].item() == 1.0


def test_uncommitted_step_is_invisible(tmp_path: Path) -> None:
    ckpt.save({"x": torch.ones(3)}, str(tmp_path), step=1).wait(timeout=60)
    partial = tmp_path / "step-000000000002"
    partial.mkdir()
    (partial / "tensors.safetensors").write_bytes(b"\x00" * 100)  # data but no manifest
    info = ckpt.latest(str(tmp_path))
    assert info is not None and info.step == 1
    ckpt.save({"x": torch.ones(3)}, str(tmp_path), step=3, keep=1).wait(timeout=60)
    assert not (partial / "tensors.safetensors").exists()  # retention clears leftovers too


def test_empty_run_has_no_latest(tmp_path: Path) -> None:
    assert ckpt.latest(str(tmp_path)) is None
    assert ckpt.list_checkpoints(str(tmp_path)) == []
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        ckpt.load(str(tmp_path))


def test_upload_error_is_raised_by_wait(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    handle = ckpt.save({"x": torch.ones(3)}, str(blocker / "run"), step=1)
    with pytest.raises(StoreError):
        handle.wait(timeout=60)
    assert handle.done()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"step": -1}, "-1"),
        ({"step": 1, "keep": 0}, "keep"),
        ({"step": 1, "config": {"path": Path("/x")}}, "JSON"),
        ({"step": 1, "store_options": {"tokn": "x"}}, "tokn"),
    ],
)
def test_bad_arguments_fail_before_anything_starts(tmp_path: Path, kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        ckpt.save({"x": torch.ones(1)}, str(tmp_path), **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_load_to_bad_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere"):
        ckpt.load(str(tmp_path), map_location="nowhere")
