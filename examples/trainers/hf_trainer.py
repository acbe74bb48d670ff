"""The Hugging Face Trainer on a farfeed dataset under torchrun: farfeed's DataLoader goes to the
Trainer as it is, its position rides in each checkpoint, and a crash mid-epoch resumes with
every sample still trained exactly once.

    torchrun --nproc-per-node 2 examples/trainers/hf_trainer.py \\
        http://storage:8470/imagenet-tiny --out runs/hf

Run the same command again after a crash: it resumes from the last checkpoint in ``--out``.
Two CPU ranks with gloo here (``use_cpu``, ``ddp_backend="gloo"``); drop both on GPUs. The
farfeed parts:

1. `FarfeedTrainer.get_train_dataloader` returns farfeed's DataLoader instead of letting
   the Trainer build one from ``train_dataset`` and pass it through accelerate's
   ``prepare``, which would split farfeed's per-rank stream again or have rank 0 read and
   dispatch every batch (farfeed refuses both, with an error that points here). The
   Trainer moves each batch to the device itself, and calls the loader's ``set_epoch``.
2. `LoaderState` puts ``loader.state_dict()`` into every checkpoint's
   ``trainer_state.json``; before ``train(resume_from_checkpoint=...)`` the recipe gives it
   back to the loader. ``ignore_data_skip=True`` stops the Trainer from re-reading the
   epoch's first batches to skip them: the loader already starts at the next one.

A Transformers model (e.g. a ``LlamaForCausalLM`` on ``decode="tokens", as_dict=True``
batches) fits the same way; a tiny classifier keeps this recipe fast. Full guide:
docs/trainers/huggingface.md. ``--record`` and ``--crash-after-step`` are for the test
(tests/trainers/test_huggingface.py); see record.py beside this file.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch
import torch.distributed as dist
from record import Recorder, crash_if
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState, TrainerState
from transformers.trainer_utils import get_last_checkpoint

import farfeed
from farfeed.loader import DataLoader


class FarfeedTrainer(Trainer):
    """A Trainer that trains on farfeed's DataLoader as it is (never re-wrapped)."""

    def __init__(self, *args: Any, loader: DataLoader, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loader = loader

    def get_train_dataloader(self) -> DataLoader:
        return self.loader


class LoaderState(TrainerCallback, ExportableState):
    """Saves the loader's exact position in each checkpoint's trainer_state.json."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"loader": self.loader.state_dict()}}

    @staticmethod
    def restore(checkpoint: str, loader: DataLoader) -> None:
        """Give ``loader`` the position saved in ``checkpoint`` (a checkpoint-STEP folder)."""
        saved = TrainerState.load_from_json(os.path.join(checkpoint, "trainer_state.json"))
        loader.load_state_dict(saved.stateful_callbacks["LoaderState"]["attributes"]["loader"])


class Classifier(torch.nn.Module):
    """A tiny linear classifier that returns its loss, as Trainer expects."""

    def __init__(self, image_size: int, classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * image_size**2, classes))

    def forward(self, image: torch.Tensor, label: torch.Tensor, **_: Any) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.cross_entropy(self.net(image), label)}


class Record(TrainerCallback):
    """For the test only (--record, --crash-after-step): keys per step, state digests."""

    def __init__(self, record: Recorder, loader: DataLoader, crash_after_step: int | None) -> None:
        self.record, self.loader, self.crash_after_step = record, loader, crash_after_step

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any, optimizer: Any, **kw: Any) -> None:
        if state.global_step > 0:
            self.record.resumed(state.global_step, model.state_dict(), optimizer.state_dict())

    def on_save(self, args: Any, state: Any, control: Any, model: Any, optimizer: Any, **kw: Any) -> None:
        self.record.saved(state.global_step, model.state_dict(), optimizer.state_dict())

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        crash_if(state.global_step, self.crash_after_step)  # checkpoints of this step come after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the dataset: gateway URL, s3://..., or a local path")
    parser.add_argument("--out", required=True, help="the Trainer's output_dir (its checkpoints)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--checkpoint-every", type=int, default=4, help="optimizer steps")
    parser.add_argument("--record", help="for the test: record keys and state digests here")
    parser.add_argument("--crash-after-step", type=int, help="for the test: die after this step")
    args = parser.parse_args()

    training = TrainingArguments(
        output_dir=args.out, per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs,
        save_strategy="steps", save_steps=args.checkpoint_every, learning_rate=0.05,
        lr_scheduler_type="constant", ignore_data_skip=True,  # the loader resumes by itself
        use_cpu=True, ddp_backend="gloo", ddp_find_unused_parameters=False,  # CPU ranks
        report_to="none", logging_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    # TrainingArguments started the process group: the Dataset splits by this rank.
    ds = farfeed.Dataset(args.url, decode="image", image_size=args.image_size, as_dict=True,
                         seed=0, batch_size=args.batch_size)  # fmt: skip
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.num_workers)
    record = Recorder(args.record, dist.get_rank() if dist.is_initialized() else 0)
    trainer = FarfeedTrainer(
        model=Classifier(args.image_size, args.classes), args=training, loader=loader,
        callbacks=[LoaderState(loader), Record(record, loader, args.crash_after_step)],
    )  # fmt: skip
    if record.path is not None:  # for the test: the keys of each batch, as trained
        train_step = trainer.training_step

        def recorded_step(model: Any, inputs: dict[str, Any], *rest: Any, **kw: Any) -> torch.Tensor:
            record.batch(ds.epoch, trainer.state.global_step, inputs["__key__"])
            return train_step(model, inputs, *rest, **kw)

        trainer.training_step = recorded_step  # type: ignore[method-assign]
    last = get_last_checkpoint(args.out) if os.path.isdir(args.out) else None
    if last is not None:
        LoaderState.restore(last, loader)
    trainer.train(resume_from_checkpoint=last)
    if dist.is_initialized():  # Trainer leaves the process group up; end it before exit
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
