"""CLI: `farfeed bench ...`, the benchmark suite (one module per benchmark)."""

from __future__ import annotations

import importlib

import typer

bench_app = typer.Typer(
    name="bench",
    help=(
        "Measure farfeed. Every figure in docs/BENCHMARKS.md comes from one of these.\n\n"
        "Report ratios (remote/local, AU) and medians of repeats: these machines are noisy."
    ),
    no_args_is_help=True,
)

#: Modules under farfeed.cli that each add one `farfeed bench` subcommand.
BENCH_MODULES = ("bench_format", "bench_wan", "bench_io", "bench_cpu", "bench_checkpoint",
                 "bench_train")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add `farfeed bench` and its subcommands to the app."""
    for name in BENCH_MODULES:
        module = importlib.import_module(f"farfeed.cli.{name}")
        module.register(bench_app)
    app.add_typer(bench_app, name="bench")
