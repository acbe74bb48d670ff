"""CLI: `farfeed stream URL`: read a whole dataset through a store, verify it, report speed.

farfeed stream http://storage:8470/imagenet --batch 256 --token $FARFEED_TOKEN
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def stream(
    url: str = typer.Argument(
        ...,
        help=(
            "Dataset URL: http(s)://HOST:PORT/NAME (farfeed gateway or static HTTP, detected), "
            "s3://BUCKET/PREFIX, file:///path or a local path."
        ),
    ),
    split: str = typer.Option(
        "train", "--split", help="Split to read (e.g. train, val); 'all' reads every sample."
    ),
    batch: int = typer.Option(
        256, "--batch", min=1, help="Samples per request (one batch-get on the gateway)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=0, help="Stop after this many samples (default: all)."
    ),
    inflight: int = typer.Option(4, "--inflight", min=1, help="Batches in flight at once."),
    token: str | None = typer.Option(
        None,
        "--token",
        help="Bearer token for the gateway (needs the read scope). Default: the token in the "
        "URL (https://:TOKEN@host/...), else $FARFEED_TOKEN.",
    ),
    ca_file: Path | None = typer.Option(
        None,
        "--ca-file",
        exists=True,
        dir_okay=False,
        readable=True,
        help="PEM bundle of the CAs that sign an https server's certificate. Default: "
        "$SSL_CERT_FILE, else the system's.",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Skip https certificate checks (self-signed test servers only)."
    ),
    connections: int = typer.Option(
        64, "--connections", min=1, help="Most keep-alive connections to the server."
    ),
    timeout: float = typer.Option(
        60.0, "--timeout", min=0.001, help="Seconds to connect, and most seconds between reads."
    ),
    s3_endpoint_url: str | None = typer.Option(
        None,
        "--s3-endpoint-url",
        help="S3 endpoint for s3:// URLs (MinIO, Ceph...) (default: $AWS_ENDPOINT_URL, else AWS).",
    ),
    s3_region: str | None = typer.Option(
        None, "--s3-region", help="S3 region (default: $AWS_REGION, else us-east-1)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Read every sample of a dataset through its URL, verify each checksum, and print samples,
    MB, MB/s, batches, checksum failures and first-batch latency. Exits 1 if any sample is bad.

    S3 keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    """
    from rich.console import Console
    from rich.table import Table

    from farfeed.bench.stream import stream_dataset
    from farfeed.errors import ConfigError, IntegrityError
    from farfeed.store.access import access_options

    if ca_file and insecure:
        raise ConfigError("give --ca-file or --insecure, not both")
    given: dict[str, Any] = {"ssl": False} if insecure else {}
    options = access_options(url, token=token, ca_file=ca_file, store_options=given)
    options.update(connections=connections, timeout=timeout)
    if s3_endpoint_url:
        options["s3_endpoint_url"] = s3_endpoint_url
    if s3_region:
        options["s3_region"] = s3_region
    report = stream_dataset(
        url,
        split=None if split == "all" else split,
        batch=batch,
        limit=limit,
        inflight=inflight,
        progress=progress,
        **options,
    )
    table = Table(title="farfeed stream", show_header=False)
    for label, value in report.summary():
        table.add_row(label, value)
    Console().print(table)
    if report.checksum_failures:
        raise IntegrityError(
            f"{report.checksum_failures} of {report.samples} samples failed their checksum"
        )


def register(app: typer.Typer) -> None:
    """Add `farfeed stream` to the `farfeed` app."""
    app.command("stream")(stream)
