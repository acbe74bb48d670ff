"""CLI: `farfeed demo`: the PoC's table reproduced on this machine (what `make demo` runs).

farfeed demo --out demo-out
"""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(
        Path("demo-out"), "--out", help="Folder for the sample data, report.md, plots and logs."
    ),
    link: str = typer.Option(
        "tokyo-fukuoka",
        "--link",
        help="Emulated link preset for 'remote' (tokyo-fukuoka: 1,000 km, 15 ms, 100 Gb/s).",
    ),
    rounds: int = typer.Option(
        3,
        "--rounds",
        min=1,
        help="Rounds of local/near/remote (see --schedule); medians over rounds are reported.",
    ),
    images: int = typer.Option(
        800,
        "--images",
        min=40,
        help="Sample training images to make (+10 % val), ~110 KB each. The default keeps a "
        "ResNet run inside one epoch, as in the PoC's job (an epoch there is ~600 steps).",
    ),
    resnet_steps: int = typer.Option(
        40, "--resnet-steps", min=4, help="ResNet-18 optimizer steps per run (batch 16, 64 px)."
    ),
    llm_steps: int = typer.Option(
        80, "--llm-steps", min=4, help="Llama optimizer steps per run (batch 16 x 128 tokens)."
    ),
    image_size: int = typer.Option(
        64,
        "--image-size",
        min=16,
        help="ResNet-18 training crop in pixels (the JPEGs are 320x320).",
    ),
    schedule: str = typer.Option(
        "auto",
        "--schedule",
        help="lockstep (auto here): a round's local/near/remote train in one process, a step of "
        "each in turn, so a neighbour's load hits all alike; sequential: one after another.",
    ),
    only: str | None = typer.Option(
        None, "--only", help="Run one workload only: resnet or llm (default: both)."
    ),
    checkpoints: bool = typer.Option(
        True,
        "--checkpoints/--no-checkpoints",
        help="Save each run's final checkpoint to the storage site.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Make sample data, pack it, serve it (`farfeed serve`), put 1,000 km in between
    (`farfeed wan --preset tokyo-fukuoka`), train a small ResNet and a small Llama with the
    data local, near (0 ms) and remote, and print the PoC-shaped table beside the PoC's own
    numbers. Writes OUT/report.md, OUT/results.json and PNG plots. About 5 min on 2 CPU cores.
    """
    from rich.console import Console

    from farfeed.bench.demo import DemoSpec, run_demo
    from farfeed.errors import ConfigError

    if only is not None and only not in ("resnet", "llm"):
        raise ConfigError(f"--only must be 'resnet' or 'llm', got {only!r}")
    spec = DemoSpec(
        out=out,
        link=link,
        rounds=rounds,
        images=images,
        workloads=(only,) if only else ("resnet", "llm"),
        steps={"resnet": resnet_steps, "llm": llm_steps},
        checkpoints=checkpoints,
        image_size=image_size,
        schedule=schedule,
    )
    run_demo(spec, console=Console(), progress=progress)


def register(app: typer.Typer) -> None:
    """Add `farfeed demo` to the `farfeed` app."""
    app.command("demo")(demo)
