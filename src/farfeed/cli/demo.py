"""CLI: `farfeed demo`: what the distance costs, measured on this machine (what `make demo` runs).

farfeed demo --out demo-out
farfeed demo --quick --link transpacific
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from farfeed.cli.lists import list_option, names, numbers


def _presets() -> str:
    from farfeed.wan import PRESET_DISTANCE_KM, PRESETS

    return "; ".join(
        f"{name} ({PRESET_DISTANCE_KM[name]:,} km, {link.rtt * 1000:g} ms)"
        for name, link in PRESETS.items()
    )


def demo(
    out: Path = typer.Option(
        Path("demo-out"), "--out", help="Folder for the sample data, report.md, plots and logs."
    ),
    link: str = typer.Option(
        "tokyo-fukuoka",
        "--link",
        help="Emulated link preset for the training jobs' 'remote' placement; its RTT joins the "
        f"data-bound job's. Presets: {_presets()}.",
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="The same jobs, smaller: 1 round of 16 ResNet / 24 Llama steps without "
        "checkpoints, 4 s per data-bound trial. Options given explicitly still apply.",
    ),
    only: list[str] = list_option(
        ["resnet", "llm", "data-bound"],
        "--only",
        help="The jobs to run, of resnet, llm, data-bound.",
    ),
    rounds: int | None = typer.Option(
        None,
        "--rounds",
        min=1,
        help="Rounds of local/near/remote per training job (see --schedule); medians over "
        "rounds are reported. Default 2 (--quick: 1).",
    ),
    images: int = typer.Option(
        800,
        "--images",
        min=40,
        help="Sample training images to make (+10 % val), ~110 KB each. The default keeps a "
        "ResNet run inside one epoch, as in the PoC's job (an epoch there is ~600 steps).",
    ),
    resnet_steps: int | None = typer.Option(
        None,
        "--resnet-steps",
        min=4,
        help="ResNet-18 optimizer steps per run (batch 16, 64 px). Default 24 (--quick: 16).",
    ),
    llm_steps: int | None = typer.Option(
        None,
        "--llm-steps",
        min=4,
        help="Llama optimizer steps per run (batch 16 x 128 tokens). Default 48 (--quick: 24).",
    ),
    image_size: int = typer.Option(
        64,
        "--image-size",
        min=16,
        help="ResNet-18 training crop in pixels, and the data-bound job's (JPEGs are 320x320).",
    ),
    schedule: str = typer.Option(
        "auto",
        "--schedule",
        help="lockstep (auto here): a round's local/near/remote train in one process, a step of "
        "each in turn, so a neighbour's load hits all alike; sequential: one after another.",
    ),
    bound_rtt_ms: list[str] = list_option(
        ["0", "15", "100"],
        "--bound-rtt-ms",
        help="The data-bound job's RTTs, milliseconds (0, the reference, is always added; so "
        "is the --link's RTT).",
    ),
    bound_seconds: float | None = typer.Option(
        None,
        "--bound-seconds",
        min=0.5,
        help="Seconds measured per data-bound trial (one loader at one RTT). Default 10 "
        "(--quick: 4).",
    ),
    bound_workers: int | None = typer.Option(
        None,
        "--bound-workers",
        min=1,
        help="DataLoader workers of each data-bound loader. Default 2.",
    ),
    checkpoints: bool | None = typer.Option(
        None,
        "--checkpoints/--no-checkpoints",
        help="Save each training run's final checkpoint to the storage site. Default: yes "
        "(--quick: no).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Make sample data, pack it, serve it (`farfeed serve`), put the --link's distance in
    between (`farfeed wan`), and run three jobs, a progress line each: a small ResNet and a
    small Llama trained local, near (0 ms) and remote, and a data-bound job (the PoC's
    ResNet-50 data demand, scaled to this machine) fed by one GET per file and by farfeed
    at 0, 15 and 100 ms. Prints the headline (cost from stalls, then wall time with its
    noise band) and the data-bound AU table; writes OUT/report.md, OUT/results.json and
    PNG plots, with the machine's load during the run. <= 10 min on 2 quiet CPU cores.
    """
    from rich.console import Console

    from farfeed.bench.demo import DemoSpec, run_demo
    from farfeed.wan import Link

    Link.from_preset(link)  # an unknown preset fails here, naming the known ones
    spec = DemoSpec.quick() if quick else DemoSpec()
    changes: dict[str, Any] = {
        "out": out,
        "link": link,
        "jobs": names(only, "--only"),
        "images": images,
        "image_size": image_size,
        "schedule": schedule,
    }
    if rounds is not None:
        changes["rounds"] = rounds
    if checkpoints is not None:
        changes["checkpoints"] = checkpoints
    steps = dict(spec.steps)
    steps.update({k: v for k, v in (("resnet", resnet_steps), ("llm", llm_steps)) if v})
    changes["steps"] = steps
    bound: dict[str, Any] = {
        "rtts_ms": tuple(sorted({0.0, *numbers(bound_rtt_ms, "--bound-rtt-ms")})),
        "image_size": image_size,
    }
    if bound_seconds is not None:
        bound["seconds"] = bound_seconds
    if bound_workers is not None:
        bound["workers"] = bound_workers
    changes["bound"] = dataclasses.replace(spec.bound, **bound)
    command = "farfeed " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run_demo(spec.replace(**changes), console=Console(), progress=progress, command=command)


def register(app: typer.Typer) -> None:
    """Add `farfeed demo` to the `farfeed` app."""
    app.command("demo")(demo)
