"""CLI: `farfeed bench train`: the same training job local, near (0 ms) and remote.

farfeed bench train --workload resnet --link tokyo-fukuoka --steps 40 --json bench-out/resnet.json
"""

from __future__ import annotations

import shlex
import sys
from enum import Enum
from pathlib import Path

import typer

from farfeed.cli.lists import list_option, numbers


class WorkloadName(str, Enum):
    resnet = "resnet"
    llm = "llm"


class Schedule(str, Enum):
    auto = "auto"
    sequential = "sequential"
    lockstep = "lockstep"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


def bench_train(
    workload: WorkloadName = typer.Option(
        ...,
        "--workload",
        "-w",
        help="resnet: torchvision ResNet on images; llm: a Llama (transformers) on tokens.",
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="A packed dataset folder (its parent is served as the storage root). "
        "Default: sample data made under OUT/storage.",
    ),
    link: str = typer.Option(
        "tokyo-fukuoka",
        "--link",
        help="Emulated link preset for 'remote' (tokyo-fukuoka: 1,000 km, 15 ms, 100 Gb/s).",
    ),
    remote_url: str | None = typer.Option(
        None,
        "--remote-url",
        help="A real storage site's dataset URL (https://storage:8470/imagenet) as 'remote' instead "
        "of the emulated link; --data is then its local copy. Token: $FARFEED_TOKEN.",
    ),
    rtt_ms: list[str] = list_option(
        [],
        "--rtt-ms",
        help="Remote RTT in ms instead of the preset's; several for a sweep (first = 'remote').",
    ),
    steps: int = typer.Option(
        40, "--steps", min=2, help="Optimizer steps per run (same for every placement)."
    ),
    warmup_steps: int = typer.Option(
        3, "--warmup-steps", min=0, help="First steps left out of the timing."
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Samples per step per rank (default: 16 on cpu; resnet 256 / llm 8 on cuda).",
    ),
    schedule: Schedule = typer.Option(
        Schedule.auto,
        "--schedule",
        help="lockstep: a round's placements train in one process, a step of each in turn, so a "
        "neighbour's load hits all alike; sequential: one after another; auto: lockstep for one "
        "CPU rank, else sequential.",
    ),
    rounds: int = typer.Option(
        3,
        "--rounds",
        min=1,
        help="Rounds of local/near/remote (see --schedule); medians over rounds are reported.",
    ),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Ranks: >1 launches torchrun --nproc-per-node N (DDP)."
    ),
    device: Device = typer.Option(
        Device.cpu, "--device", help="cpu, or cuda (bf16 autocast, channels_last)."
    ),
    arch: str = typer.Option(
        "resnet18", "--arch", help="resnet: torchvision architecture (resnet18/34/50/101)."
    ),
    image_size: int = typer.Option(
        64, "--image-size", min=16, help="resnet: training crop in pixels."
    ),
    model_size: str = typer.Option(
        "tiny", "--model-size", help="llm: tiny (~1 M params), small (~5 M) or 1b."
    ),
    seq_len: int = typer.Option(128, "--seq-len", min=2, help="llm: tokens per sample."),
    lora: bool = typer.Option(
        False,
        "--lora",
        help="llm: freeze a base Llama loaded from the storage site, train LoRA adapters (peft).",
    ),
    lr: float | None = typer.Option(
        None, "--lr", help="Peak learning rate (default: resnet 0.05 SGD, llm 3e-3 AdamW)."
    ),
    threads: int = typer.Option(
        1, "--threads", min=1, help="torch threads per rank (same in every placement)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=0, help="DataLoader worker processes per rank (default 1)."
    ),
    checkpoint_every: int = typer.Option(
        0,
        "--checkpoint-every",
        min=0,
        help="Save a checkpoint to the storage site every N steps (0: only at the end).",
    ),
    checkpoints: bool = typer.Option(
        True, "--checkpoints/--no-checkpoints", help="Save checkpoints at all."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the model, the shuffle and the augmentations."
    ),
    out: Path = typer.Option(
        Path("bench-out"), "--out", help="Folder for report.md, plots and the run logs."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result JSON here too."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train the same job with its data local, near (gateway + emulator at 0 ms) and remote (the
    link), and report time-to-train, samples/s, data stall and the final metric per placement,
    the cost of distance (remote/near - 1) and remote/local - 1, beside the PoC's numbers.
    """
    from rich.console import Console

    from farfeed.bench.train.config import TrainConfig
    from farfeed.bench.train.session import bench_workload

    config = TrainConfig(
        workload=workload.value, steps=steps, warmup_steps=min(warmup_steps, steps - 1),
        batch_size=batch_size, seed=seed, device=device.value, threads=threads,
        num_workers=workers, lr=lr, arch=arch, image_size=image_size, model_size=model_size,
        seq_len=seq_len, checkpoint_every=checkpoint_every,
    )  # fmt: skip
    bench_workload(
        config, out=out, console=Console(), data=data, link=link,
        rtt_ms=list(numbers(rtt_ms, "--rtt-ms")) if rtt_ms else [],
        remote_url=remote_url, lora=lora, rounds=rounds, nproc=nproc, checkpoints=checkpoints,
        schedule=schedule.value, json_out=json_out, progress=progress,
        command="farfeed " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add `farfeed bench train` to the `farfeed bench` app."""
    app.command("train")(bench_train)
