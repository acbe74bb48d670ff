"""``python -m farfeed.server ROOT [options]``: the same as ``farfeed serve`` (used by GatewayProcess)."""

from __future__ import annotations


def main() -> None:
    """Run the ``serve`` command alone, with the CLI's one-line error handling."""
    import sys

    import typer

    from farfeed.errors import FarfeedError
    from farfeed.server.command import serve

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(serve)
    try:
        app(prog_name="python -m farfeed.server")
    except FarfeedError as exc:
        print(f"farfeed: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
