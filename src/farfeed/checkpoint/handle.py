"""`SaveHandle`: a checkpoint upload running in a background thread with its own event loop.

One upload at a time per process: a new `save` first waits for the previous one, so
host memory holds at most one snapshot in flight plus the one being taken. At
interpreter exit, a still-running upload is waited for (a training script that ends
right after its last `save` still gets its checkpoint).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections.abc import Awaitable, Callable

from farfeed.checkpoint.manifest import CheckpointInfo
from farfeed.store.base import UploadResult
from farfeed.store.threads import tls_thread

log = logging.getLogger("farfeed.checkpoint")

_lock = threading.Lock()
_inflight: SaveHandle | None = None


class SaveHandle:
    """A checkpoint on its way to the store: poll `done`, or `wait` for its `CheckpointInfo`.

    `farfeed.checkpoint.save` makes it: ``url`` and ``step`` are the checkpoint's,
    ``nbytes`` the size of its tensor file; ``snapshot_seconds`` is the time `save` spent
    copying tensors to host memory; ``upload_seconds`` is set when the upload has
    finished (successfully or not).
    """

    def __init__(self, *, url: str, step: int, nbytes: int, snapshot_seconds: float) -> None:
        self.url = url
        self.step = step
        #: Bytes of the tensor file being sent.
        self.nbytes = nbytes
        self.snapshot_seconds = snapshot_seconds
        self.upload_seconds: float | None = None
        #: The store's report on the tensor file (size, xxh64, parts, parts not resent), once sent.
        self.sent: UploadResult | None = None
        self._done = threading.Event()
        self._info: CheckpointInfo | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def resumed_parts(self) -> int:
        """Parts a retried upload did not have to send again (the gateway kept them)."""
        return 0 if self.sent is None else self.sent.parts_skipped

    def done(self) -> bool:
        """True once the upload has committed or failed."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> CheckpointInfo:
        """Block until committed and return its info; re-raise the upload's error here.

        Raises `TimeoutError` if ``timeout`` seconds pass first (the upload goes on).
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"checkpoint step {self.step} to {self.url} still uploading after {timeout} s")
        self._join()
        if self._error is not None:
            raise self._error
        assert self._info is not None
        return self._info

    def _join(self) -> None:
        """Let the finished thread end, so the snapshot it held is freed when this returns."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self, work: Callable[[], Awaitable[CheckpointInfo]]) -> None:
        t0 = time.perf_counter()
        try:
            self._info = asyncio.run(_as_coro(work))
        except BaseException as exc:  # handed to whoever waits: never lost in the thread
            self._error = exc
            log.error("checkpoint step %d to %s failed: %s", self.step, self.url, exc)
        finally:
            self.upload_seconds = time.perf_counter() - t0
            self._done.set()

    def __repr__(self) -> str:
        state = "done" if self.done() else "uploading"
        return f"SaveHandle(step={self.step}, url={self.url!r}, {state})"


async def _as_coro(work: Callable[[], Awaitable[CheckpointInfo]]) -> CheckpointInfo:
    return await work()


def wait_previous() -> None:
    """Wait for the process's in-flight upload, if any (its error stays with its handle)."""
    with _lock:
        prev = _inflight
    if prev is not None:
        prev._done.wait()
        prev._join()


def start(handle: SaveHandle, work: Callable[[], Awaitable[CheckpointInfo]], *, background: bool) -> SaveHandle:
    """Run ``work`` for ``handle``: in a background thread, or here (still on a fresh loop)."""
    global _inflight
    thread = tls_thread(handle._run, args=(work,), name=f"farfeed-ckpt-{handle.step}")
    handle._thread = thread
    with _lock:
        _inflight = handle
    thread.start()
    if not background:
        handle._done.wait()
    return handle


def _finish_at_exit() -> None:
    with _lock:
        prev = _inflight
    if prev is not None and not prev.done():
        log.warning("waiting for checkpoint step %d to finish uploading to %s", prev.step, prev.url)
        prev._done.wait()


# Run before concurrent.futures refuses new work at shutdown (it registers the same way,
# earlier; these hooks run in reverse order), so the upload can still use its executor.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_finish_at_exit)
else:  # pragma: no cover - other Pythons
    atexit.register(_finish_at_exit)
