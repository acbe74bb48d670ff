"""Resume from a remote checkpoint: the same next batches and the same losses as a run that
was never interrupted (model, optimizer, loader position, RNG and run config travel together)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers.data import packed_images
from helpers.stores import Remote

import farfeed
import farfeed.checkpoint as ckpt
from farfeed.loader import DataLoader

CONFIG = {"lr": 0.01, "batch_size": 8, "epochs": 2, "data_seed": 5, "image_size": 16}


@pytest.fixture
def dataset_url(gateway: Remote, tmp_path: Path) -> str:
    """A tiny packed image dataset served by the gateway as ``/tiny``."""
    packed_images(
        gateway.folder.parent.parent / "tiny", src=tmp_path / "images", train=40, val=4,
        classes=10, look="sample", shard_size="256MiB",
    )  # fmt: skip
    return gateway.url.split("/checkpoints/")[0] + "/tiny"


class Run:
    """A tiny training run: data from the gateway, an MLP with dropout, AdamW."""

    def __init__(self, url: str, config: dict[str, Any], *, init_seed: int) -> None:
        self.config = config
        self.ds = farfeed.Dataset(url, decode="image", image_size=config["image_size"], train=False, seed=config["data_seed"])
        # its own generator: torch's DataLoader draws a seed from the global RNG at every
        # iter(), which would shift dropout's random stream after a resume
        self.loader = DataLoader(self.ds, batch_size=config["batch_size"], generator=torch.Generator())
        torch.manual_seed(init_seed)
        side = config["image_size"]
        self.model = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(3 * side * side, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 10)
        )
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config["lr"])
        self.step, self.epoch = 0, 0
        self.log: list[tuple[torch.Tensor, torch.Tensor, float]] = []

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optim": self.opt.state_dict(),
            "loader": self.loader.state_dict(),
            "rng": torch.get_rng_state(),
            "step": self.step,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optim"])
        self.loader.load_state_dict(state["loader"])
        torch.set_rng_state(state["rng"])
        self.step, self.epoch = state["step"], state["loader"]["epoch"]

    def train(self, *, stop_at: int | None = None, ckpt_url: str | None = None) -> None:
        resumed = self.step > 0
        for epoch in range(self.epoch, self.config["epochs"]):
            if not resumed:
                self.ds.set_epoch(epoch)
            resumed = False
            for images, labels in self.loader:
                loss = F.cross_entropy(self.model(images), labels)
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                self.step += 1
                self.log.append((images.clone(), labels.clone(), loss.item()))
                if self.step == stop_at:
                    assert ckpt_url is not None
                    ckpt.save(self.state(), ckpt_url, step=self.step, config=self.config).wait(timeout=60)
                    return


@pytest.mark.parametrize("stop_at", [3, 7])  # mid first epoch, mid second epoch
def test_resume_gives_the_same_batches_and_losses(gateway: Remote, dataset_url: str, stop_at: int) -> None:
    whole = Run(dataset_url, CONFIG, init_seed=0)
    whole.train()
    assert len(whole.log) == 10

    first = Run(dataset_url, CONFIG, init_seed=0)
    first.train(stop_at=stop_at, ckpt_url=gateway.url)
    del first  # the job dies; a new one starts from what is on the storage site

    info = ckpt.latest(gateway.url)
    assert info is not None and info.step == stop_at and info.config == CONFIG
    resumed = Run(dataset_url, info.config, init_seed=123)  # different init: the checkpoint must win
    resumed.restore(ckpt.load(gateway.url))
    resumed.train()

    expected = whole.log[stop_at:]
    assert len(resumed.log) == len(expected)
    for (img_a, lab_a, loss_a), (img_b, lab_b, loss_b) in zip(expected, resumed.log, strict=True):
        assert torch.equal(lab_a, lab_b) and torch.equal(img_a, img_b)
        assert loss_a == loss_b
