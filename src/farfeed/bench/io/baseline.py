"""The baseline farfeed is compared with: a PyTorch map-style Dataset doing one HTTP GET per sample.

This is what a training script does when it points a plain ``DataLoader`` at a remote
object store: ``shuffle=True``, ``num_workers=N``, each ``__getitem__`` a range GET on a
keep-alive connection made in its worker. Every sample costs at least one RTT, so at
most ``N x prefetch_factor`` samples are in flight.
"""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

import torch.utils.data

from farfeed.errors import TransientError


class PerSampleHTTP(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Sample ``k`` = one ``GET base/path`` with ``Range: bytes=offset-(offset+size-1)``."""

    def __init__(
        self, base_url: str, spans: list[tuple[str, int, int]], *, timeout: float = 60.0
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"the baseline speaks plain http://HOST:PORT/..., got {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.spans = spans
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None  # made in the worker, after fork

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, k: int) -> dict[str, Any]:
        path, offset, size = self.spans[k]
        for attempt in range(3):
            try:
                return {"data": self._get(path, offset, size), "index": k}
            except (OSError, http.client.HTTPException) as exc:
                self._conn = None
                if attempt == 2:
                    raise TransientError(
                        f"baseline GET {path} @{offset}+{size} failed: {exc}"
                    ) from exc
        raise AssertionError("unreachable")

    def _get(self, path: str, offset: int, size: int) -> bytes:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._conn.request(
            "GET", f"{self.prefix}/{path}", headers={"Range": f"bytes={offset}-{offset + size - 1}"}
        )
        resp = self._conn.getresponse()
        body = resp.read()
        if resp.status != 206 or len(body) != size:
            raise http.client.HTTPException(f"status {resp.status}, {len(body)} of {size} bytes")
        return body

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_conn"] = None
        return state
