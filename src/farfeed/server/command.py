"""The ``serve`` command's options (typer), shared by ``farfeed serve`` and ``python -m farfeed.server``.

It lives here, not in farfeed.cli, so the gateway process starts without importing the
whole CLI (the dataset tools pull in numpy and more).
"""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    root: Path = typer.Argument(
        ..., metavar="ROOT", help="Folder to serve: each subfolder holding a dataset.json is a dataset; "
        "ROOT/checkpoints (created if missing) is the only writable area."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on. Without --tokens only loopback is "
        "allowed (see --allow-anonymous)."
    ),
    port: int = typer.Option(8470, "--port", help="TCP port; 0 picks a free one (printed on start)."),
    tokens: Path | None = typer.Option(
        None, "--tokens", help="Tokens file, one 'TOKEN read|write|read,write' per line (# comments). "
        "With it every request but /healthz needs 'Authorization: Bearer TOKEN'. Default: none."
    ),
    cert: Path | None = typer.Option(None, "--cert", help="TLS certificate chain (PEM); serves HTTPS. Needs --key."),
    key: Path | None = typer.Option(None, "--key", help="TLS private key (PEM) for --cert."),
    allow_anonymous: bool = typer.Option(
        False, "--allow-anonymous", help="Allow a non-loopback --host without --tokens: anyone who "
        "reaches the port can read and write. Default off."
    ),
    workers: int = typer.Option(
        1, "--workers", help="Processes sharing the port (SO_REUSEPORT); 2-4 help above ~1 GB/s."
    ),
    access_log: bool = typer.Option(
        False, "--access-log", help="Log one line per request to stderr (off by default: too chatty for benchmarks)."
    ),
) -> None:
    """Serve datasets and a checkpoint area over HTTP(S) (docs/HTTP_API.md).

    Prints one line when ready: 'farfeed gateway listening on http://HOST:PORT (ROOT)'.
    Stops on SIGTERM or Ctrl-C.
    """
    from farfeed.server import run

    run(
        root, host=host, port=port, tokens_file=tokens, cert=cert, key=key,
        allow_anonymous=allow_anonymous, workers=workers, access_log=access_log,
    )
