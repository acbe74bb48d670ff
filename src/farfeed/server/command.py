"""The ``serve`` command's options (typer), shared by ``farfeed serve`` and ``python -m farfeed.server``.

It lives here, not in farfeed.cli, so the gateway process starts without importing the
whole CLI (the dataset tools pull in numpy and more).
"""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    root: str = typer.Argument(
        ..., metavar="ROOT", help="Folder to serve: each subfolder holding a dataset.json is a dataset; "
        "ROOT/checkpoints (created if missing) is the only writable area. Or s3://BUCKET/PREFIX: "
        "the datasets under that prefix of an S3-compatible store, served read-only through a "
        "block cache (keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)."
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
        False, "--access-log", help="Log one line per request to stderr (off by default: too chatty for "
        "benchmarks). Query strings are logged with their values hidden; tokens go only in the "
        "Authorization header, which is never logged."
    ),
    keepalive_timeout: float = typer.Option(
        75.0, "--keepalive-timeout", metavar="SECONDS", help="Close a connection that carries no request "
        "for this long. Reconnecting costs 1-2 round trips (0.2-0.4 s at 200 ms, more with TLS), so keep "
        "it above the pauses of a working client (a loader between batches, a save between parts)."
    ),
    header_timeout: float = typer.Option(
        30.0, "--header-timeout", metavar="SECONDS", help="Close a connection whose request header is not "
        "complete this long after its first byte. A live client needs a few round trips at most; a stuck "
        "or hostile one holds a connection until then."
    ),
    body_timeout: float = typer.Option(
        60.0, "--body-timeout", metavar="SECONDS", help="Close a connection that sends no byte of a request "
        "body it still owes for this long (a client that died mid-upload). The staged bytes are dropped; "
        "a chunked upload keeps the parts that arrived whole."
    ),
    s3_endpoint_url: str | None = typer.Option(
        None, "--s3-endpoint-url", help="S3 endpoint for an s3:// ROOT (MinIO, Ceph...) (default: "
        "$AWS_ENDPOINT_URL, else AWS)."
    ),
    s3_region: str | None = typer.Option(
        None, "--s3-region", help="S3 region for an s3:// ROOT (default: $AWS_REGION, else us-east-1)."
    ),
    ca_file: Path | None = typer.Option(
        None, "--ca-file", exists=True, dir_okay=False, readable=True, help="PEM bundle of the CAs "
        "that sign an https S3 endpoint's certificate (s3:// ROOT). Default: the system's."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Skip the S3 endpoint's https certificate check (self-signed "
        "test stores only)."
    ),
    cache_mib: int = typer.Option(
        1024, "--cache-mib", min=1, help="s3:// ROOT: block cache per gateway process, MiB, shared "
        "by all its clients. Size it to the data set (or the part being trained on) for "
        "store requests per sample far below 1; each --workers process has its own."
    ),
    block_mib: float = typer.Option(
        8.0, "--block-mib", min=0.0625, help="s3:// ROOT: bytes per store read, MiB, aligned "
        "(objects smaller than this are read whole)."
    ),
    store_connections: int = typer.Option(
        32, "--store-connections", min=1, help="s3:// ROOT: most store reads in flight per process."
    ),
    max_connections: int | None = typer.Option(
        None, "--max-connections", metavar="N", help="Open connections per process. Over it the oldest idle "
        "connection is closed to make room (first those that never had a successful request); if all are "
        "busy the newcomer gets 503 with Retry-After. Default: 3/4 of the open-file limit (raised to its "
        "hard limit at start), at most 65536, so descriptors never run out before the cap."
    ),
) -> None:
    """Serve datasets and a checkpoint area over HTTP(S) (docs/HTTP_API.md).

    Prints one line when ready: 'farfeed gateway listening on http://HOST:PORT (ROOT)'.
    Stops on SIGTERM or Ctrl-C.
    """
    from farfeed.errors import ConfigError
    from farfeed.server import run
    from farfeed.server.bucket import BucketSettings, is_bucket_url
    from farfeed.server.limits import ConnectionLimits

    try:
        connection_limits = ConnectionLimits(
            keepalive_timeout=keepalive_timeout, header_timeout=header_timeout, body_timeout=body_timeout,
            max_connections=max_connections,
        )
    except ConfigError as exc:  # name the flag, not the field
        text = str(exc)
        for name in ("keepalive_timeout", "header_timeout", "body_timeout", "max_connections"):
            text = text.replace(f"ConnectionLimits.{name}", "--" + name.replace("_", "-"))
        raise ConfigError(text) from None
    bucket = None
    if is_bucket_url(root):
        if ca_file and insecure:
            raise ConfigError("give --ca-file or --insecure, not both")
        bucket = BucketSettings(
            endpoint_url=s3_endpoint_url, region=s3_region,
            ca_file=False if insecure else (str(ca_file) if ca_file else None),
            cache_bytes=cache_mib * 2**20, block_bytes=int(block_mib * 2**20),
            store_connections=store_connections,
        )  # fmt: skip
    elif s3_endpoint_url or s3_region or ca_file or insecure:
        raise ConfigError("--s3-endpoint-url, --s3-region, --ca-file and --insecure apply to an s3:// ROOT only")
    run(
        root, host=host, port=port, tokens_file=tokens, cert=cert, key=key,
        allow_anonymous=allow_anonymous, workers=workers, access_log=access_log,
        connection_limits=connection_limits, bucket=bucket,
    )
