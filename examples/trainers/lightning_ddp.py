"""PyTorch Lightning DDP on a farfeed dataset; the loader's position rides in Lightning's
checkpoint, so a crash mid-epoch resumes with every sample still trained exactly once.

    python examples/trainers/lightning_ddp.py http://storage:8470/imagenet-tiny --out runs/pl
    python examples/trainers/lightning_ddp.py http://storage:8470/imagenet-tiny --out runs/pl --resume

Two CPU ranks with gloo (``strategy="ddp", accelerator="cpu", devices=2``): Lightning starts
the second rank itself by running this script again. Where the farfeed parts are:

1. `FarfeedData.setup` creates the `farfeed.Dataset` there, after Lightning started the
   process group: each rank then streams only its share (rank and world size come from
   torch.distributed).
2. `FarfeedData.train_dataloader` returns `farfeed.loader.DataLoader`. It has
   ``state_dict``/``load_state_dict``, so Lightning (>= 2.3) stores its exact position in
   every checkpoint (``loops.fit_loop.state_dict.combined_loader``) and restores it before
   the resumed epoch starts. Lightning never injects a DistributedSampler into an
   iterable dataset; ``use_distributed_sampler=False`` says so explicitly.
3. `SetEpoch` calls ``set_epoch`` at each epoch's start (a new permutation per epoch).

Full guide: docs/trainers/lightning.md. ``--record`` and ``--crash-after-step`` are for the
test (tests/trainers/test_lightning.py); see record.py beside this file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from record import Recorder, crash_if

import farfeed
from farfeed.loader import DataLoader


class FarfeedData(L.LightningDataModule):
    """A farfeed dataset as a LightningDataModule: created per rank, in ``setup``."""

    def __init__(self, url: str, *, batch_size: int, num_workers: int, image_size: int) -> None:
        super().__init__()
        self.url, self.batch_size, self.num_workers = url, batch_size, num_workers
        self.image_size = image_size

    def setup(self, stage: str) -> None:
        # After init_process_group: the Dataset splits each epoch by this rank.
        self.dataset = farfeed.Dataset(
            self.url, decode="image", image_size=self.image_size, as_dict=True, seed=0,
            batch_size=self.batch_size,
        )  # fmt: skip
        self.loader = DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self.loader  # the same object every epoch: Lightning saves its state_dict()


class SetEpoch(L.Callback):
    """A new permutation every epoch (a resumed epoch keeps its restored position)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.datamodule.dataset.set_epoch(trainer.current_epoch)  # type: ignore[attr-defined]


class Classifier(L.LightningModule):
    """A tiny linear classifier: the model does not matter here, the data path does."""

    def __init__(self, image_size: int, classes: int, record: Recorder, crash_after_step: int | None):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * image_size**2, classes))
        self.record, self.crash_after_step = record, crash_after_step

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self.record.batch(self.current_epoch, self.global_step, batch["__key__"])
        return torch.nn.functional.cross_entropy(self.net(batch["image"]), batch["label"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    # -- for the test only (--record, --crash-after-step) -----------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.record.saved(self.global_step, self.state_dict(), self.trainer.optimizers[0].state_dict())

    def on_train_start(self) -> None:
        if self.global_step > 0:
            self.record.resumed(self.global_step, self.state_dict(), self.trainer.optimizers[0].state_dict())

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        crash_if(self.global_step, self.crash_after_step)  # after ModelCheckpoint's save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the dataset: gateway URL, s3://..., or a local path")
    parser.add_argument("--out", type=Path, required=True, help="Lightning's checkpoints go here")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--checkpoint-every", type=int, default=4, help="optimizer steps")
    parser.add_argument("--record", help="for the test: record keys and state digests here")
    parser.add_argument("--crash-after-step", type=int, help="for the test: die after this step")
    args = parser.parse_args()

    data = FarfeedData(args.url, batch_size=args.batch_size, num_workers=args.num_workers,
                       image_size=args.image_size)  # fmt: skip
    checkpoints = ModelCheckpoint(dirpath=args.out / "checkpoints", every_n_train_steps=args.checkpoint_every,
                                  save_top_k=-1, save_last=True)  # fmt: skip
    trainer = L.Trainer(
        strategy="ddp", accelerator="cpu", devices=2, max_epochs=args.epochs,
        use_distributed_sampler=False,  # farfeed splits by rank (Lightning skips iterable datasets anyway)
        callbacks=[checkpoints, SetEpoch()], default_root_dir=args.out,
        logger=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    record = Recorder(args.record, trainer.global_rank)
    model = Classifier(args.image_size, args.classes, record, args.crash_after_step)
    trainer.fit(model, datamodule=data, ckpt_path="last" if args.resume else None)


if __name__ == "__main__":
    main()
