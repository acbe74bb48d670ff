"""Two real gloo ranks x two DataLoader workers each: every sample exactly once per epoch."""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.samples import assert_exactly_once


def _rank_main(rank: int, world: int, init_file: str, dataset: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from farfeed.loader import DataLoader, Dataset

        ds = Dataset(dataset, seed=11, uneven="pad")  # rank and world from torch.distributed
        loader = DataLoader(ds, batch_size=5, num_workers=2)
        epochs = []
        for epoch in range(2):
            ds.set_epoch(epoch)
            epochs.append([k for batch in loader for k in batch["__key__"]])
        gathered: list[object] = [None] * world
        dist.all_gather_object(gathered, {"rank": ds.world.rank, "len": len(ds), "epochs": epochs})
        if rank == 0:
            Path(out).write_text(json.dumps(gathered))
    finally:
        dist.destroy_process_group()


def test_two_ranks_two_workers_cover_each_epoch_exactly_once(
    image_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "result.json"
    mp.start_processes(  # fork: real processes, without re-importing torch in each
        _rank_main,
        args=(2, str(tmp_path / "init"), str(image_dataset), str(out)),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    ranks = json.loads(out.read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    assert [r["len"] for r in ranks] == [60, 60]
    for epoch in range(2):
        per_rank = [r["epochs"][epoch] for r in ranks]
        assert all(len(keys) == 60 for keys in per_rank)
        assert_exactly_once(per_rank[0] + per_rank[1], image_dataset)
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]  # a new permutation per epoch
