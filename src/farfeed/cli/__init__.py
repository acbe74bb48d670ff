"""The ``farfeed`` command: a thin layer over the library.

Each subcommand lives in its own module here and registers itself on the app; the
work is done by library calls, and errors exit non-zero with one clear line.
"""

from __future__ import annotations

import sys

import typer

from farfeed.errors import CertificateError, FarfeedError

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
    except CertificateError as exc:  # the library's hint names Python arguments: say the flags
        where = f" ({exc.url})" if exc.url else ""
        typer.secho(
            f"farfeed: error: TLS certificate check failed{where}: {exc.reason}; {tls_hint(sys.argv[1:])}",
            err=True,
            fg=typer.colors.RED,
        )
        sys.exit(1)
    except FarfeedError as exc:
        typer.secho(f"farfeed: error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho("farfeed: interrupted", err=True)
        sys.exit(130)


#: Commands that take --ca-file and --insecure.
TLS_FLAG_COMMANDS = ("stream",)


def tls_hint(argv: list[str]) -> str:
    """How to trust a server's certificate, in the words of the command that was run."""
    if argv[:1] and argv[0] in TLS_FLAG_COMMANDS:
        return (
            "give --ca-file PATH (the PEM bundle of the CA that signed the server's certificate) "
            "or set SSL_CERT_FILE=PATH; --insecure skips the check (self-signed test servers only)"
        )
    return "set SSL_CERT_FILE=PATH (the PEM bundle of the CA that signed the server's certificate)"
