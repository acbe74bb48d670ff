"""transform=, the exposed default image pipeline, and keys with decoded batches (as_dict):
real torch and torchvision at tiny sizes, through DataLoader workers."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.samples import assert_exactly_once
from torch.utils.data import DataLoader as TorchDataLoader
from torchvision.transforms import v2

from farfeed.errors import ConfigError
from farfeed.format import SampleIndex, pack_text
from farfeed.loader import DataLoader, Dataset, image_pipeline

SMALL = v2.Compose([v2.ToImage(), v2.Resize((8, 8), antialias=True), v2.ToDtype(torch.float32, scale=True)])


class MarkProcess:
    """A picklable transform on raw samples: adds the pid of the process that ran it."""

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {"__key__": sample["__key__"], "pid": os.getpid()}


#: Made in the training process before any worker forks (each worker inherits it).
INHERITED = ["made in the training process"]


class SeenByCollector:
    """A picklable transform: whether this process's garbage collector still visits
    `INHERITED` (a full collection would write to it, copying its page of the heap)."""

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        seen = any(o is INHERITED for o in gc.get_objects())
        return {"__key__": sample["__key__"], "seen": seen, "pid": os.getpid()}


def test_workers_leave_what_they_inherit_out_of_their_garbage_collector(
    image_dataset: Path,
) -> None:
    assert any(o is INHERITED for o in gc.get_objects())  # the training process visits it
    ds = Dataset(str(image_dataset), transform=SeenByCollector(), seed=5)
    batches = list(DataLoader(ds, batch_size=25, num_workers=2))
    assert {int(p) for b in batches for p in b["pid"]}.isdisjoint({os.getpid()})
    seen = [bool(s) for b in batches for s in b["seen"]]
    assert seen and not any(seen)
    assert any(o is INHERITED for o in gc.get_objects())  # still, here


def test_transform_and_keys_through_workers(image_dataset: Path) -> None:
    ds = Dataset(str(image_dataset), decode="image", transform=SMALL, as_dict=True, seed=1)
    loader = DataLoader(ds, batch_size=8, num_workers=2)
    index = SampleIndex.load(image_dataset)
    label_of = {index.key_of(i): int(index.label[i]) for i in index.ids("train")}
    keys: list[str] = []
    for batch in loader:
        assert set(batch) == {"image", "label", "__key__", "__index__"}
        assert batch["image"].shape[1:] == (3, 8, 8) and batch["image"].dtype == torch.float32
        assert 0.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0
        assert batch["label"].tolist() == [label_of[k] for k in batch["__key__"]]
        keys += batch["__key__"]
    assert_exactly_once(keys, image_dataset)


def test_transform_runs_in_the_worker_on_each_raw_sample(image_dataset: Path) -> None:
    ds = Dataset(str(image_dataset), transform=MarkProcess(), seed=2)
    batches = list(DataLoader(ds, batch_size=10, num_workers=2))
    pids = {int(p) for b in batches for p in b["pid"]}
    assert len(pids) == 2 and os.getpid() not in pids
    assert_exactly_once([k for b in batches for k in b["__key__"]], image_dataset)


def test_the_default_pipeline_is_image_pipeline_and_composes(image_dataset: Path) -> None:
    url = str(image_dataset)
    default = Dataset(url, decode="image", image_size=16, train=False, shuffle=False)
    same = Dataset(url, decode="image", transform=image_pipeline(16, train=False), shuffle=False)
    a, b = list(default)[:6], list(same)[:6]
    for (x, label), (y, other) in zip(a, b, strict=True):
        assert x.shape == (3, 16, 16) and torch.equal(x, y) and label == other
    # more steps: on the uint8 image (augment=), or after it on the float tensor (Compose)
    grey = image_pipeline(16, train=False, augment=[v2.Grayscale(num_output_channels=3)])
    x, _ = next(iter(Dataset(url, decode="image", transform=grey, shuffle=False)))
    assert torch.allclose(x[0] * 0.229 + 0.485, x[1] * 0.224 + 0.456, atol=1e-5)  # R == G
    erase = v2.Compose([image_pipeline(16), v2.RandomErasing(p=1.0, value=0.0)])
    x, _ = next(iter(Dataset(url, decode="image", transform=erase, seed=3)))
    assert x.shape == (3, 16, 16) and bool((x == 0).any())


def test_token_windows_as_dicts(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("far feed link " * 200)
    pack_text(src, tmp_path / "corpus", tokenizer="byte", chunk_tokens=64, val_fraction=0.0)
    ds = Dataset(str(tmp_path / "corpus"), decode="tokens", seq_len=8, as_dict=True, seed=4)
    batch = next(iter(TorchDataLoader(ds, batch_size=4)))
    assert set(batch) == {"input_ids", "labels", "__index__"}
    assert batch["input_ids"].shape == (4, 8) and batch["input_ids"].dtype == torch.int64
    assert torch.equal(batch["input_ids"][:, 1:], batch["labels"][:, :-1])
    assert len(np.unique(batch["__index__"].numpy())) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decode": "batch", "transform": SMALL}, 'transform does not apply to decode="batch"'),
        ({"decode": "raw", "as_dict": True}, '"raw" samples are dicts already'),
        ({"decode": "image", "transform": SMALL, "image_size": 64}, "give image_size or transform"),
        ({"decode": "image", "transform": "resize"}, "transform must be a callable"),
        ({"decode": "image", "image_size": 0}, "image_size must be an int >= 1"),
    ],
)
def test_options_without_a_meaning_are_refused(
    image_dataset: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Dataset(str(image_dataset), **kwargs)


def test_image_pipeline_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match="image size must be an int >= 1"):
        image_pipeline(0)
    with pytest.raises(ConfigError, match="augment must be a sequence of callables"):
        image_pipeline(16, augment=["jitter"])  # type: ignore[list-item]
