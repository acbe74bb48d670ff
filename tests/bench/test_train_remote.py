"""Training through the gateway and the emulated 1,000 km link: checkpoints there, exact resume, LoRA."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers.data import remote_links, storage_root

import farfeed.checkpoint
from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.loop import train_placement
from farfeed.bench.train.ranks import TrainRanks
from farfeed.bench.train.sample_data import ensure_lora_base
from farfeed.bench.train.sites import Sites, open_sites
from farfeed.bench.train.workloads.lora import load_base, wrap_lora


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    root = storage_root(tmp_path_factory.mktemp("remote") / "root", images=48)
    with open_sites(root, links=remote_links()) as running:
        yield running


def test_resume_from_the_remote_checkpoint_continues_exactly(sites: Sites) -> None:
    config = TrainConfig(
        workload="llm", steps=6, warmup_steps=1, batch_size=4, seq_len=32, eval_batches=1,
        checkpoint_every=3, num_workers=1,
    )  # fmt: skip
    remote = sites.placement("remote", "text", run="resume")
    assert remote.checkpoint_url is not None and sites.wans["remote"].url in remote.checkpoint_url
    full = train_placement(config, remote, world=TrainRanks())
    assert [s.step for s in full.steps] == list(range(6))
    assert [c.step for c in farfeed.checkpoint.list_checkpoints(remote.checkpoint_url)] == [3, 6]
    # Lose the last checkpoint: the run resumes from step 3 and replays steps 3-5 exactly.
    shutil.rmtree(sites.root / "checkpoints" / "resume-remote" / "step-000000000006")
    again = train_placement(config, remote, world=TrainRanks(), resume=True)
    assert again.resumed_from == 3
    assert [s.step for s in again.steps] == [3, 4, 5]
    assert [s.loss for s in again.steps] == [s.loss for s in full.steps[3:]]
    assert again.final_metric == full.final_metric


def test_placements_train_identically_and_the_remote_one_is_timed(sites: Sites) -> None:
    config = TrainConfig(workload="resnet", steps=3, warmup_steps=1, batch_size=4, image_size=32, eval_batches=1)
    local = train_placement(config, sites.placement("local", "images"), world=TrainRanks())
    remote = train_placement(config, sites.placement("remote", "images"), world=TrainRanks())
    assert [s.loss for s in local.steps] == [s.loss for s in remote.steps]
    assert remote.metric_name == "val_accuracy" and 0.0 <= remote.final_metric <= 1.0
    assert remote.seconds > 0 and remote.samples == 2 * 4
    assert 0.0 <= remote.stall_fraction <= 1.0
    # The first batch crossed the link: at least a handshake and a request, 2 x 15 ms.
    assert remote.startup_seconds >= 0.03


def test_lora_base_weights_come_over_the_link(sites: Sites) -> None:
    name = ensure_lora_base(sites.root, size="tiny", vocab_size=257, seq_len=32)
    url = sites.placement("remote", "text").resolve(name)
    assert url.startswith(sites.wans["remote"].url)
    base, seconds = load_base(url, vocab_size=257)
    assert seconds > 0
    on_disk = load_base(str(sites.root / name), vocab_size=257)[0]
    for (k, a), (_, b) in zip(base.state_dict().items(), on_disk.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    model = wrap_lora(base, rank=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    config = TrainConfig(
        workload="llm", steps=3, warmup_steps=1, batch_size=4, seq_len=32, eval_batches=1, lora_base=name
    )
    result = train_placement(config, sites.placement("remote", "text"), world=TrainRanks())
    assert result.extra["base_load_seconds"] > 0
    assert result.extra["workload"]["lora_base"] == url


def test_a_missing_dataset_is_named(sites: Sites, tmp_path: Path) -> None:
    from farfeed.errors import ConfigError

    with pytest.raises(ConfigError, match="'nope'"):
        sites.placement("remote", "nope")
    with pytest.raises(ConfigError, match="'far'"):
        sites.placement("far", "images")
