"""torchrun + FSDP2 (``fully_shard``) on a farfeed dataset, with sharded checkpoints that go back
to the storage site (DCP through farfeed) and a crash-safe, exactly-once resume.

    torchrun --nproc-per-node 2 examples/trainers/fsdp_torchrun.py \\
        http://storage:8470/imagenet-tiny --checkpoints http://storage:8470/checkpoints/fsdp1

Run the same command again after a crash: it resumes from the newest complete checkpoint.
CPU and gloo here (``--backend nccl`` and a ``.cuda()`` model on GPUs). The farfeed parts:

1. `farfeed.Dataset` is created after ``init_process_group``: each rank streams its share
   (FSDP is data parallel: every rank trains on different samples).
2. Each checkpoint is two writes. Every rank saves its model and optimizer shards with
   ``torch.distributed.checkpoint`` through `farfeed.checkpoint.dcp.FarfeedWriter`
   (``RUN/dcp-STEP``); then rank 0 commits a small `farfeed.checkpoint.save` of step
   ``STEP`` that holds the loader's position and names that DCP folder. The marker is
   written last, so `farfeed.checkpoint.latest` only ever finds complete checkpoints.
3. The loader's position is global (the same on every rank), so rank 0's
   ``loader.state_dict()`` serves every rank, with any world size on resume.

Full guide: docs/trainers/fsdp.md. ``--record`` and ``--crash-after-step`` are for the test
(tests/trainers/test_fsdp.py); see record.py beside this file.
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from record import Recorder, crash_if
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.fsdp import fully_shard

import farfeed
import farfeed.checkpoint as ckpt
from farfeed.checkpoint.dcp import FarfeedReader, FarfeedWriter
from farfeed.loader import DataLoader


def make_model(image_size: int, classes: int) -> torch.nn.Module:
    """A tiny MLP, each Linear its own FSDP unit (as one would shard transformer blocks)."""
    torch.manual_seed(0)  # the same initial weights on every rank
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(3 * image_size**2, 32), torch.nn.ReLU(), torch.nn.Linear(32, classes)
    )
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    return model


def save(step: int, run: str, model: torch.nn.Module, opt: torch.optim.Optimizer, loader: DataLoader) -> None:
    """Checkpoint ``step``: every rank's shards (DCP), then rank 0's commit marker."""
    model_state, optim_state = get_state_dict(model, opt)
    shards = f"{run}/dcp-{step:012d}"
    dcp.save({"model": model_state, "optim": optim_state}, storage_writer=FarfeedWriter(shards))
    if dist.get_rank() == 0:  # DCP's save has returned on every rank: its metadata is written
        marker = {"step": step, "loader": loader.state_dict(), "dcp": shards}
        ckpt.save(marker, run, step=step, keep=None).wait()


def resume(run: str, model: torch.nn.Module, opt: torch.optim.Optimizer, loader: DataLoader) -> int:
    """Restore the newest complete checkpoint of ``run`` (every rank); returns its step, or 0."""
    if ckpt.latest(run) is None:
        return 0
    marker = ckpt.load(run)  # the newest committed marker, verified
    model_state, optim_state = get_state_dict(model, opt)  # the shapes and shards to fill
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, storage_reader=FarfeedReader(marker["dcp"]))
    set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    loader.load_state_dict(marker["loader"])  # the exact next batch of this rank
    return int(marker["step"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the dataset: gateway URL, s3://..., or a local path")
    parser.add_argument("--checkpoints", required=True, help="http(s)://HOST/checkpoints/RUN, s3://, a path")
    parser.add_argument("--backend", default="gloo", help="gloo (CPU) or nccl (GPUs)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--checkpoint-every", type=int, default=4, help="optimizer steps")
    parser.add_argument("--record", help="for the test: record keys and state digests here")
    parser.add_argument("--crash-after-step", type=int, help="for the test: die after this step")
    args = parser.parse_args()

    dist.init_process_group(args.backend)
    record = Recorder(args.record, dist.get_rank())
    ds = farfeed.Dataset(args.url, decode="image", image_size=args.image_size, as_dict=True,
                         seed=0, batch_size=args.batch_size)  # fmt: skip
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.num_workers)
    model = make_model(args.image_size, args.classes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

    step = resume(args.checkpoints, model, opt, loader)
    start_epoch = ds.epoch  # the restored epoch (0 on a first start): resume INSIDE it
    if step:
        record.resumed(step, *get_state_dict(model, opt))
    for epoch in range(start_epoch, args.epochs):
        ds.set_epoch(epoch)  # keeps a restored position; a new permutation otherwise
        for batch in loader:
            record.batch(epoch, step, batch["__key__"])
            loss = torch.nn.functional.cross_entropy(model(batch["image"]), batch["label"])
            loss.backward()
            opt.step()
            opt.zero_grad()
            step += 1
            if step % args.checkpoint_every == 0:
                save(step, args.checkpoints, model, opt, loader)
                record.saved(step, *get_state_dict(model, opt))
            crash_if(step, args.crash_after_step)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
