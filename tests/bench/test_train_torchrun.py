"""`torchrun --nproc-per-node 2` training on the REMOTE dataset: each rank streams its own share."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.data import remote_links, storage_root

from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.launch import launch, worker_command
from farfeed.bench.train.sites import Sites, open_sites
from farfeed.bench.train.worker import Plan
from farfeed.format.load import load_index


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    root = storage_root(tmp_path_factory.mktemp("torchrun") / "root", images=64)
    with open_sites(root, links=remote_links()) as running:
        yield running


def train_keys(root: Path) -> set[str]:
    """Every key of the train split, read from the index on disk."""
    folder = root / "images"
    index = load_index((folder / "dataset.json").read_bytes(), (folder / "index.npz").read_bytes())
    return {index.key_of(int(i)) for i in index.ids("train")}  # type: ignore[union-attr]


def test_torchrun_two_ranks_see_disjoint_remote_data(sites: Sites, tmp_path: Path) -> None:
    config = TrainConfig(
        workload="resnet", steps=4, warmup_steps=1, batch_size=4, image_size=32,
        eval_batches=1, record_keys=True, checkpoint_every=2,
    )  # fmt: skip
    remote = sites.placement("remote", "images", run="torchrun")
    assert "/images" in remote.data_url and sites.wans["remote"].url in remote.data_url
    plan = Plan(config=config, runs=(remote,), out=tmp_path / "runs.json")
    assert "torch.distributed.run" in worker_command(tmp_path / "plan.json", nproc=2)[2]
    (result,) = launch(plan, workdir=tmp_path, nproc=2)
    keys = result.extra["keys"]
    assert len(keys) == 2
    rank0, rank1 = set(keys[0]), set(keys[1])
    assert len(keys[0]) == len(rank0) == 16 and len(keys[1]) == len(rank1) == 16
    assert not rank0 & rank1, f"ranks saw the same samples: {sorted(rank0 & rank1)}"
    assert rank0 | rank1 <= train_keys(sites.root)
    assert result.world_size == 2 and result.samples == 3 * 4 * 2  # 3 timed steps x 4 x 2 ranks
    import farfeed.checkpoint

    info = farfeed.checkpoint.latest(remote.checkpoint_url or "")
    assert info is not None and info.step == 4
    state = farfeed.checkpoint.load(remote.checkpoint_url or "")
    assert len(state["loaders"]) == 2 and state["step"] == 4


def test_a_failing_rank_is_reported_with_its_log(sites: Sites, tmp_path: Path) -> None:
    from farfeed.bench.train.loop import Placement
    from farfeed.errors import FarfeedError

    config = TrainConfig(workload="llm", steps=2, warmup_steps=1)
    bad = Placement("remote", sites.placement("remote", "images").data_url)  # images, not tokens
    with pytest.raises(FarfeedError, match="exited with status"):
        launch(Plan(config=config, runs=(bad,), out=tmp_path / "r.json"), workdir=tmp_path)
    assert "needs a dataset of kind 'tokens'" in (tmp_path / "worker.log").read_text()
    assert sys.executable in (tmp_path / "worker.log").read_text()
