"""CLI: ``farfeed serve ROOT``, the storage-site gateway (options in `farfeed.server.command`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `farfeed` app."""
    from farfeed.server.command import serve

    app.command("serve")(serve)
