"""The ``farfeed`` command: a thin layer over the library.

Each subcommand lives in its own module here and registers itself on the app; the
work is done by library calls, and errors exit non-zero with one clear line.
"""

from __future__ import annotations

import sys

import typer

from farfeed.errors import FarfeedError

app = typer.Typer(
    name="farfeed",
    help=(
        "Train where the GPUs are, keep the data where it lives.\n\n"
        "At the storage site: `farfeed sample-data`, `farfeed pack`, `farfeed serve`.\n"
        "Between the sites: `farfeed wan` (emulate the distance).\n"
        "At the GPU site: `farfeed.Dataset` in Python, `farfeed stream` to test a URL.\n"
        "Measure: `farfeed bench`, `farfeed demo`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from farfeed.cli import bench, data, demo, serve, stream, wan

    for module in (data, serve, stream, wan, bench, demo):
        module.register(app)


_register()


def main() -> None:
    """Entry point of the ``farfeed`` console script."""
    try:
        app()
    except FarfeedError as exc:
        typer.secho(f"farfeed: error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho("farfeed: interrupted", err=True)
        sys.exit(130)
