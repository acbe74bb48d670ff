"""Checkpoints of a training run, sent to the storage site with `farfeed.checkpoint`.

Saves run in the background (training continues while the upload crosses the link);
a new save first waits for the previous one. Only rank 0 writes; every rank reads the
latest checkpoint on resume and takes its own loader position from it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from farfeed.bench.train.config import TrainConfig


class CheckpointWriter:
    """Background checkpoint saves to ``url`` (rank 0 only), keeping the newest ``keep``."""

    def __init__(
        self,
        url: str,
        *,
        config: TrainConfig,
        keep: int,
        enabled: bool = True,
        store_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.store_options = dict(store_options or {})
        self.config = config
        self.keep = keep
        self.enabled = enabled
        self._handle: Any = None
        #: Seconds the training loop was blocked by saves (snapshot + waiting for the previous).
        self.blocked_seconds = 0.0

    def save(self, state: Mapping[str, Any], *, step: int) -> None:
        """Snapshot ``state`` now and upload it as checkpoint ``step`` in the background."""
        if not self.enabled:
            return
        import farfeed.checkpoint

        started = time.perf_counter()
        self._handle = farfeed.checkpoint.save(
            state,
            self.url,
            step=step,
            background=True,
            keep=self.keep,
            config={"train": self.config.to_dict(), "step": step},
            store_options=self.store_options,
        )
        self.blocked_seconds += time.perf_counter() - started

    def wait(self) -> None:
        """Block until the last save is committed (re-raising its error)."""
        if self._handle is not None:
            self._handle.wait()
            self._handle = None


def load_latest(
    url: str, *, store_options: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The newest usable checkpoint's state at ``url``, or None when the run has none yet."""
    import farfeed.checkpoint

    options = dict(store_options or {})
    if farfeed.checkpoint.latest(url, store_options=options) is None:
        return None
    return farfeed.checkpoint.load(url, store_options=options)
