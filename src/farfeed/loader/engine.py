"""The fetch engine: an asyncio loop in a background thread of each worker process.

It takes requests from the planner while the bytes in flight and held stay under the
flow-control targets, reads them through a `RangeReader` (a gateway batch-get, or
concurrent range GETs; retries, failover, re-fetch of bad samples), verifies every
sample's checksum and puts the result in a bounded reorder buffer; the consumer takes
requests out in plan order. A background exception is re-raised in the consumer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np

from farfeed.errors import FarfeedError
from farfeed.loader.config import FetchConfig
from farfeed.loader.flow import Window
from farfeed.loader.planner import Planner, Request
from farfeed.loader.reader import RangeReader
from farfeed.loader.replicas import Replicas
from farfeed.loader.stats import WorkerStats
from farfeed.store.threads import tls_thread

__all__ = ["FetchConfig", "FetchEngine"]

MAX_TASKS = 32
#: How often a fetch engine waiting for room (a batch arena) or its window looks again, s.
ROOM_POLL_S = 0.002

#: Positions of the samples that are not what the index says, given the samples' ids, their
#: bytes, and the xxh64 of each already computed where it arrived (0: not computed).
CheckMany = Callable[[np.ndarray, list[memoryview], np.ndarray | None], list[int]]

#: Where a request's bytes land: a writable buffer of ``req.wire_bytes``, or None when
#: there is no room now (the engine asks again shortly).
Allocator = Callable[[Request], memoryview | None]


def heap_buffer(req: Request) -> memoryview:
    """A fresh, unzeroed buffer for one request (every byte of it is read)."""
    return np.empty(req.wire_bytes, dtype=np.uint8).data


class FetchEngine:
    """Fetches a planner's requests ahead of the consumer; `get` returns them in order.

    ``hold_until``: while it returns False, the first request waits (polled every
    `ROOM_POLL_S`); everything else (the loop, the store, its first connection) is made
    meanwhile, so the request leaves the moment it may.
    """

    def __init__(
        self,
        planner: Planner,
        *,
        config: FetchConfig,
        window: Window,
        check: Callable[[int, memoryview], bool],
        describe: Callable[[int], str],
        stats: WorkerStats,
        check_many: CheckMany | None = None,
        allocate: Allocator = heap_buffer,
        max_request: int | None = None,
        hold_until: Callable[[], bool] | None = None,
        checksum: str = "xxh64",
    ) -> None:
        self._planner = planner
        self._checksum = checksum
        self._hold_until = hold_until
        self._allocate = allocate
        self._max_request = max_request
        self._config = config
        self._window = window
        self._check = check
        self._check_many = check_many
        self._describe = describe
        self._stats = stats
        self._cond = threading.Condition()
        self._ready: dict[int, tuple[Request, memoryview, list[memoryview]]] = {}
        self._error: BaseException | None = None
        self._finished = False
        self._next = 0
        self._buffered = 0
        self._inflight = 0
        self._peak_held = 0
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread = tls_thread(self._thread_main, name="farfeed-fetch")
        self._t0 = time.monotonic()

    # -- consumer side -------------------------------------------------------------------

    def start(self) -> FetchEngine:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def get(self) -> tuple[Request, memoryview, list[memoryview]] | None:
        """The next request, its buffer and its verified samples (views into the buffer), in
        plan order; None when all were delivered."""
        with self._cond:
            if self._next not in self._ready and self._error is None and not self._finished:
                t0 = time.monotonic()
                while self._next not in self._ready and self._error is None and not self._finished:
                    self._cond.wait(0.5)
                    if not self._thread.is_alive() and self._error is None and not self._finished:
                        self._error = FarfeedError(
                            "the loader's fetch thread ended without finishing or saying why; "
                            "this is a bug in farfeed: please report it with the log"
                        )
                self._stats.add("stall_s", time.monotonic() - t0)
            if self._error is not None:
                raise self._error
            item = self._ready.pop(self._next, None)
            if item is None:
                return None
            self._next += 1
            self._buffered -= item[0].nbytes
        self._window.on_consumed(item[0].nbytes)
        self._call_soon(None)
        return item

    def close(self) -> None:
        """Stop background work and wait for the thread (connections are closed there)."""
        self._stop.set()
        self._call_soon(None)
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    @property
    def stopped(self) -> bool:
        """The engine's thread has ended (after `close`): no receive writes a buffer any more."""
        return not self._thread.is_alive()

    def _call_soon(self, fn: Callable[[], None] | None) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return

        def run() -> None:
            if fn is not None:
                fn()
            wake.set()

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # loop already closed
            pass

    # -- background side -----------------------------------------------------------------

    def _thread_main(self) -> None:
        loop: asyncio.AbstractEventLoop | None = None
        try:
            loop = _new_event_loop()
            loop.run_until_complete(self._main(loop))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            self._fail(exc)
        finally:
            if loop is not None:
                loop.close()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = exc
            self._cond.notify_all()
        self._stop.set()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wake = wake = asyncio.Event()
        self._loop = loop
        cfg = self._config
        replicas = Replicas(cfg)
        reader = RangeReader(
            replicas,
            config=cfg,
            window=self._window,
            stats=self._stats,
            check=self._check,
            describe=self._describe,
        )
        tasks: set[asyncio.Task[None]] = set()
        ahead = loop.create_task(replicas.connect_ahead())  # the handshake, while we plan

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self._fail(task.exception())  # type: ignore[arg-type]
            wake.set()

        pending: Request | None = None  # taken, waiting for a buffer
        hold = self._hold_until
        try:
            while hold is not None and not self._stop.is_set():
                if hold():
                    hold = None
                else:
                    await asyncio.sleep(ROOM_POLL_S)
            while not self._stop.is_set():
                target = self._window.update()
                while (
                    len(tasks) < MAX_TASKS
                    and (pending is not None or not self._planner.done)
                    and self._inflight < self._window.inflight
                    and self._inflight + self._buffered < target
                ):
                    if pending is None:
                        held = self._inflight + self._buffered
                        room = self._window.budget - held  # the hard cap: never past the budget
                        if held and room < self._planner.next_bytes():
                            break
                        size = max(1, min(self._window.request_bytes(), room))
                        if self._max_request is not None:
                            size = min(size, self._max_request)
                        pending = self._planner.take(size)
                        assert pending is not None
                    buffer = self._allocate(pending)
                    if buffer is None:
                        break
                    req, pending = pending, None
                    self._inflight += req.nbytes
                    task = loop.create_task(self._fetch(req, buffer, reader))
                    tasks.add(task)
                    task.add_done_callback(done)
                self._publish(target)
                if self._planner.done and pending is None and not tasks:
                    with self._cond:
                        self._finished = True
                        self._cond.notify_all()
                    break
                try:
                    await asyncio.wait_for(wake.wait(), 0.25 if pending is None else ROOM_POLL_S)
                except asyncio.TimeoutError:
                    pass
                wake.clear()
        finally:
            for task in [*tasks, ahead]:
                task.cancel()
            await asyncio.gather(*tasks, ahead, return_exceptions=True)
            await replicas.close()

    def _publish(self, target: int) -> None:
        s = self._stats
        self._peak_held = max(self._peak_held, self._inflight + self._buffered)
        s.set("peak_bytes_held", self._peak_held)
        s.set("bytes_in_flight", self._inflight)
        s.set("bytes_buffered", self._buffered)
        s.set("window_bytes", target)
        s.set("rtt_s", self._window.rtt)

    async def _fetch(self, req: Request, buffer: memoryview, reader: RangeReader) -> None:
        ranges = req.buffers(buffer)
        verify = self._config.verify
        digests = np.zeros(len(ranges), dtype=np.uint64) if verify and self._check_many else None
        await reader.read_into(
            req.ranges, ranges, lambda: self._describe_request(req), digests=digests,
            checksum=self._checksum,
        )
        samples = req.cut(ranges)
        if verify:
            if self._check_many is not None:
                bad = self._check_many(req.ids, samples, req.sample_digests(digests))
            else:
                bad = [k for k, i in enumerate(req.ids.tolist()) if not self._check(i, samples[k])]
            for k in bad:
                # good bytes go back in place: the request's buffer stays whole
                samples[k][:] = await reader.refetch(int(req.ids[k]), req.spans[k])
        with self._cond:
            self._ready[req.seq] = (req, buffer, samples)
            self._inflight -= req.nbytes
            self._buffered += req.nbytes
            self._cond.notify_all()
        self._window.on_arrival()
        self._stats.add("requests")
        if req.seq == 0:
            self._stats.set("first_batch_s", time.monotonic() - self._t0)

    def _describe_request(self, req: Request) -> str:
        head = ", ".join(self._describe(int(i)) for i in req.ids[:3])
        more = f" and {len(req.ids) - 3} more" if len(req.ids) > 3 else ""
        return f"reading {head}{more}"


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (``farfeed[fast]``), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
