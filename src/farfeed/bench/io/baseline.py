"""The baselines farfeed is compared with: PyTorch map-style Datasets doing one HTTP GET per sample.

This is what a training script does when it points a plain ``DataLoader`` at a remote
store: ``shuffle=True``, ``num_workers=N``, each ``__getitem__`` one GET on a keep-alive
connection made in its worker. Every sample costs at least one RTT, so at most
``N`` samples are in flight (``prefetch_factor`` queues indices, not requests).

- `PerSampleHTTP`: a range GET of the sample's bytes inside a shard (`farfeed bench io`).
- `ImageFolderHTTP`: a whole-object GET of one JPEG file per sample, decoded and
  transformed in the worker: a torchvision ``ImageFolder`` whose files sit behind HTTP
  (the demo's data-bound job).
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import torch.utils.data

from farfeed.errors import TransientError

#: Attempts per sample (a dropped keep-alive connection is reopened).
ATTEMPTS = 3


class _KeepAliveHTTP(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """One keep-alive ``http.client`` connection per DataLoader worker, made after fork."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"the baseline speaks plain http://HOST:PORT/..., got {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str, *, headers: dict[str, str] | None = None, status: int = 200) -> bytes:
        """GET ``prefix/path``; the body, or `TransientError` after `ATTEMPTS` failures."""
        for attempt in range(ATTEMPTS):
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(
                        self.host, self.port, timeout=self.timeout
                    )
                self._conn.request("GET", f"{self.prefix}/{path}", headers=headers or {})
                resp = self._conn.getresponse()
                body = resp.read()
                if resp.status != status:
                    raise http.client.HTTPException(f"status {resp.status}, wanted {status}")
                return body
            except (OSError, http.client.HTTPException) as exc:
                self._conn = None
                if attempt == ATTEMPTS - 1:
                    raise TransientError(f"baseline GET {path} failed: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this process's connection (a later `get` opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_conn"] = None
        return state


class PerSampleHTTP(_KeepAliveHTTP):
    """Sample ``k`` = one ``GET base/path`` with ``Range: bytes=offset-(offset+size-1)``."""

    def __init__(
        self, base_url: str, spans: list[tuple[str, int, int]], *, timeout: float = 60.0
    ) -> None:
        super().__init__(base_url, timeout=timeout)
        self.spans = spans

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, k: int) -> dict[str, Any]:
        path, offset, size = self.spans[k]
        body = self.get(path, headers={"Range": f"bytes={offset}-{offset + size - 1}"}, status=206)
        if len(body) != size:
            raise TransientError(f"baseline GET {path} @{offset}+{size}: got {len(body)} bytes")
        return {"data": body, "index": k}


def fetch_file_list(url: str) -> list[tuple[str, int]]:
    """The file list at ``url`` (``PATH LABEL`` per line, paths relative to the list's
    folder) as [(path, label)]; one GET, through whatever link ``url`` goes through."""
    folder, _, name = url.rpartition("/")
    client = _KeepAliveHTTP(folder)
    try:
        text = client.get(name).decode()
    finally:
        client.close()
    out = []
    for line in text.splitlines():
        if line.strip():
            path, label = line.rsplit(" ", 1)
            out.append((path, int(label)))
    return out


class ImageFolderHTTP(_KeepAliveHTTP):
    """Sample ``k`` = one ``GET base/files[k]`` of a whole JPEG, opened with PIL as RGB and
    passed through ``transform``: ``(transform(image), label)``, as ``ImageFolder`` returns."""

    def __init__(
        self,
        base_url: str,
        files: list[tuple[str, int]],
        *,
        transform: Callable[[Any], Any],
        timeout: float = 60.0,
    ) -> None:
        super().__init__(base_url, timeout=timeout)
        self.files = files
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, k: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.files[k]
        with Image.open(io.BytesIO(self.get(path))) as opened:
            image = opened.convert("RGB")
        return self.transform(image), label
