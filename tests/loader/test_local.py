"""The Dataset over a local dataset folder: order, exactly-once, decoders, state, stats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.samples import assert_exactly_once, keys

import farfeed
from farfeed.errors import ConfigError
from farfeed.format.sample_index import SampleIndex
from farfeed.loader import DataLoader, Dataset


def test_raw_epoch_is_every_sample_once_in_the_seeded_order(image_dataset: Path) -> None:
    ds = farfeed.Dataset(str(image_dataset), seed=3)
    got = list(ds)
    assert_exactly_once(keys(got), image_dataset)
    index = SampleIndex.load(image_dataset)
    expected = ds.sampler.epoch_order(0)
    assert [s["__index__"] for s in got] == expected.tolist()
    first = got[0]
    shard, offset, size = index.span(first["__index__"])
    raw = (image_dataset / shard).read_bytes()[offset : offset + size]
    assert first == index.unpack(first["__index__"], raw)
    assert len(ds) == 120
    ds.set_epoch(1)
    assert keys(ds) != keys(got)  # another permutation next epoch


def test_image_decode_yields_normalised_tensors_and_labels(image_dataset: Path) -> None:
    ds = Dataset(
        str(image_dataset), split="val", decode="image", image_size=16, train=False, shuffle=False
    )
    items = list(ds)
    assert len(items) == 24
    image, label = items[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert -3 < float(image.mean()) < 3
    index = SampleIndex.load(image_dataset)
    assert [lab for _, lab in items] == [int(index.label[i]) for i in index.ids("val")]


def epoch_keys(loader: DataLoader) -> list[str]:
    return [k for batch in loader for k in batch["__key__"]]


# (batches delivered before the save, workers before, workers after); 15 batches = the end
MIDPOINTS = [(0, 0, 2), (1, 2, 3), (6, 2, 0), (14, 3, 2), (15, 1, 1)]


def test_resume_from_several_midpoints_equals_the_uninterrupted_run(image_dataset: Path) -> None:
    full = epoch_keys(DataLoader(Dataset(str(image_dataset), seed=1), batch_size=8, num_workers=2))
    assert_exactly_once(full, image_dataset)
    for stop, before, after in MIDPOINTS:
        loader = DataLoader(Dataset(str(image_dataset), seed=1), batch_size=8, num_workers=before)
        it = iter(loader)
        seen = [k for _ in range(stop) for k in next(it)["__key__"]]
        state = loader.state_dict()
        del it
        assert state["consumed"] == stop * 8
        resumed = DataLoader(Dataset(str(image_dataset), seed=1), batch_size=8, num_workers=after)
        resumed.load_state_dict(state)
        assert seen + epoch_keys(resumed) == full, (stop, before, after)


def test_in_process_state_resumes_mid_epoch_and_set_epoch_starts_over(image_dataset: Path) -> None:
    ds = Dataset(str(image_dataset), seed=4, rank=1, world_size=2)
    full = keys(ds)
    assert len(full) == len(ds) == 60
    it = iter(ds)
    head = keys(next(it) for _ in range(25))
    state = ds.state_dict()
    other = Dataset(str(image_dataset), seed=4, rank=1, world_size=2)
    other.load_state_dict(state)
    assert head + keys(other) == full
    other.set_epoch(1)
    assert len(keys(other)) == 60


def test_bad_options_are_refused_up_front(image_dataset: Path) -> None:
    with pytest.raises(ConfigError, match="'jpeg'"):
        Dataset(str(image_dataset), decode="jpeg")
    with pytest.raises(ConfigError, match="seq_len"):
        Dataset(str(image_dataset), decode="tokens")
    with pytest.raises(ConfigError, match="kind 'images'"):
        Dataset(str(image_dataset), decode="tokens", seq_len=8)
    with pytest.raises(ConfigError, match="'nope'"):
        Dataset(str(image_dataset), split="nope")
    with pytest.raises(ConfigError, match="conections"):
        Dataset(str(image_dataset), store_options={"conections": 8})
    ds = Dataset(str(image_dataset))
    with pytest.raises(ConfigError, match="persistent_workers"):
        DataLoader(ds, batch_size=4, num_workers=1, persistent_workers=True)
    with pytest.raises(ConfigError, match="seed=9"):
        state = ds.state_dict()
        Dataset(str(image_dataset), seed=9).load_state_dict(state)


def test_stats_count_what_was_delivered(image_dataset: Path) -> None:
    ds = Dataset(str(image_dataset))
    for _ in ds:
        pass
    stats = ds.stats()
    assert stats["samples"] == 120
    assert stats["bytes"] == stats["wire_bytes"] > 0
    assert stats["retries"] == 0 and stats["samples_per_s"] > 0
    for key in ("rtt_s", "bytes_in_flight", "stall_s", "bytes_per_s"):
        assert key in stats


def test_progress_bar_and_loader_stats(
    image_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = Dataset(str(image_dataset), split="val", progress=True)
    loader = DataLoader(ds, batch_size=6, num_workers=1)
    assert len(epoch_keys(loader)) == 24
    stats = loader.stats()
    assert stats["samples"] == 24 and stats["wait_s"] >= 0
    err = capsys.readouterr().err
    assert "4/4" in err and "samples/s" in err  # batches done of total, and the stats line


def test_a_callable_decoder_receives_the_raw_sample(image_dataset: Path) -> None:
    ds = Dataset(
        str(image_dataset),
        split="val",
        shuffle=False,
        decode=lambda s: (s["__key__"], s["jpg"][:2]),
    )
    got = list(ds)
    index = SampleIndex.load(image_dataset)
    assert [k for k, _ in got] == [index.key_of(int(i)) for i in index.ids("val")]
    assert {magic for _, magic in got} == {b"\xff\xd8"}  # JPEG start-of-image
