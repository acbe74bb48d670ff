"""CLI: one `farfeed bench` subcommand (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this benchmark's command to the `farfeed bench` app."""
