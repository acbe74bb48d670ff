"""The planner: walks the known sample order and groups the next samples into requests.

A `Request` is a run of consecutive positions of one worker's stream. Its byte ranges
are coalesced (same object, gap <= ``gap`` bytes) so that neighbours in one shard
travel as one range: one frame of a gateway batch-get, or one range GET elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from farfeed.errors import ConfigError
from farfeed.store.base import ByteRange


@dataclass(frozen=True, slots=True)
class Piece:
    """Where one sample lies inside the coalesced ranges: range ``index``, ``start``, ``length``."""

    index: int
    start: int
    length: int


@dataclass(slots=True)
class Request:
    """Samples ``ids`` (stream positions ``first`` ...), their spans and the ranges to read."""

    seq: int
    first: int
    ids: npt.NDArray[np.int64]
    spans: list[ByteRange]
    ranges: list[ByteRange] = field(default_factory=list)
    #: Where each sample lies in ``ranges``; None: each sample is its own range, in order
    #: (whole batches: no object per sample to make, hold and collect).
    pieces: list[Piece] | None = None
    #: Bytes the samples occupy (what the consumer will hold).
    nbytes: int = field(init=False)
    #: Bytes the coalesced ranges carry over the link.
    wire_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = sum(s.length for s in self.spans)
        self.wire_bytes = (
            self.nbytes if self.ranges is self.spans else sum(r.length for r in self.ranges)
        )

    def buffers(self, buffer: memoryview) -> list[memoryview]:
        """``buffer`` (``wire_bytes`` long) cut into one writable view per range, in order."""
        out, pos = [], 0
        for r in self.ranges:
            out.append(buffer[pos : pos + r.length])
            pos += r.length
        return out

    def sample_digests(self, digests: np.ndarray | None) -> np.ndarray | None:
        """Each sample's entry of the ranges' ``digests`` where the sample is its whole
        range (else 0: not known)."""
        if digests is None or self.pieces is None:
            return digests
        ranges = self.ranges
        if len(ranges) == len(self.pieces) and all(
            p.index == k and p.start == 0 and p.length == ranges[k].length
            for k, p in enumerate(self.pieces)
        ):
            return digests  # one range per sample, in order (batches)
        whole = [p.start == 0 and p.length == ranges[p.index].length for p in self.pieces]
        picked = digests[[p.index for p in self.pieces]] if self.pieces else digests[:0]
        return np.where(np.asarray(whole, dtype=bool), picked, np.uint64(0))

    def cut(self, ranges: list[memoryview]) -> list[memoryview]:
        """Each sample's bytes, in request order: views into the ranges' buffers (no copies)."""
        if self.pieces is None:
            return ranges
        return [ranges[p.index][p.start : p.start + p.length] for p in self.pieces]


def merge_neighbours(spans: list[ByteRange], *, gap: int) -> tuple[list[ByteRange], list[Piece]]:
    """Merge spans of one object that are at most ``gap`` bytes apart (overlaps included)."""
    order = sorted(range(len(spans)), key=lambda k: (spans[k].path, spans[k].offset))
    ranges: list[ByteRange] = []
    pieces: list[Piece | None] = [None] * len(spans)
    cur_path, cur_start, cur_end = "", 0, -1
    members: list[int] = []

    def flush() -> None:
        if members:
            ranges.append(ByteRange(cur_path, cur_start, cur_end - cur_start))
            for k in members:
                pieces[k] = Piece(len(ranges) - 1, spans[k].offset - cur_start, spans[k].length)

    for k in order:
        s = spans[k]
        if members and s.path == cur_path and s.offset <= cur_end + gap:
            cur_end = max(cur_end, s.offset + s.length)
            members.append(k)
            continue
        flush()
        cur_path, cur_start, cur_end, members = s.path, s.offset, s.offset + s.length, [k]
    flush()
    return ranges, [p for p in pieces if p is not None]


class Planner:
    """Cuts a worker's stream of sample ids into requests, in order, on demand.

    Stage contract: created at a position (``start``), `take` is next, `position` is
    its state; it holds no resources, so shutdown is a no-op.
    """

    def __init__(
        self,
        ids: npt.NDArray[np.int64],
        span: Callable[[int], ByteRange],
        *,
        spans: Callable[[npt.NDArray[np.int64]], list[ByteRange]] | None = None,
        sizes: npt.NDArray[np.int64] | None = None,
        gap: int = 0,
        max_ranges: int = 4096,
        start: int = 0,
        unit: int = 1,
        merge: bool = True,
    ) -> None:
        if gap < 0 or max_ranges < 1 or unit < 1:
            raise ConfigError(
                f"need gap >= 0, max_ranges >= 1 and unit >= 1, got gap={gap!r} "
                f"max_ranges={max_ranges!r} unit={unit!r}"
            )
        if not 0 <= start <= len(ids):
            raise ConfigError(f"start must be within 0..{len(ids)}, got {start!r}")
        self._ids = ids
        self._span = span
        self._spans = spans
        self._sizes = sizes
        self._gap = gap
        self._max_ranges = max_ranges
        self._pos = start
        self._seq = 0
        self._unit = unit
        self._merge = merge

    @property
    def position(self) -> int:
        """Next stream position not yet planned."""
        return self._pos

    @property
    def done(self) -> bool:
        """True once every position was planned."""
        return self._pos >= len(self._ids)

    def next_bytes(self) -> int:
        """Bytes of the next sample to plan (0 when done)."""
        return 0 if self.done else self._span(int(self._ids[self._pos])).length

    def take(self, max_bytes: int, *, max_items: int | None = None) -> Request | None:
        """The next request: at least one sample, then samples while under ``max_bytes``.

        With ``unit`` > 1 (whole batches), the count is cut down to a multiple of
        ``unit``, and raised to one whole unit (or what is left). With ``merge=False``
        the ranges are the samples' spans in stream order (the request's buffer then
        holds the samples back to back, in order)."""
        if self.done:
            return None
        limit = self._max_ranges if max_items is None else max(1, min(max_items, self._max_ranges))
        unit = self._unit
        if unit > 1:
            limit = max(unit, limit - limit % unit)
        first = self._pos
        if self._spans is not None and self._sizes is not None:
            return self._take_at_once(max_bytes, limit)
        spans: list[ByteRange] = []
        total = 0
        while self._pos < len(self._ids) and len(spans) < limit:
            s = self._span(int(self._ids[self._pos]))
            if spans and total + s.length > max_bytes and len(spans) >= unit:
                break
            spans.append(s)
            total += s.length
            self._pos += 1
        if unit > 1 and self._pos < len(self._ids) and len(spans) % unit:
            cut = len(spans) - len(spans) % unit  # >= unit: the loop runs to one whole unit
            del spans[cut:]
            self._pos = first + cut
        return self._request(first, spans)

    def _take_at_once(self, max_bytes: int, limit: int) -> Request:
        """`take` with the samples' sizes and spans looked up for the whole request at once
        (the same cut as the loop above; ~1 µs per sample instead of ~10)."""
        assert self._spans is not None and self._sizes is not None
        first, unit, left = self._pos, self._unit, len(self._ids) - self._pos
        ahead = self._ids[first : first + min(limit, left)]
        totals = np.cumsum(self._sizes[ahead])
        count = max(1, int(np.searchsorted(totals, max_bytes, side="right")), min(unit, len(ahead)))
        if unit > 1 and count < left and count % unit:
            count -= count % unit  # >= unit: raised to one whole unit above
        self._pos = first + count
        return self._request(first, self._spans(self._ids[first : self._pos]))

    def _request(self, first: int, spans: list[ByteRange]) -> Request:
        if self._merge:
            ranges, pieces = merge_neighbours(spans, gap=self._gap)
        else:
            ranges, pieces = spans, None
        req = Request(self._seq, first, self._ids[first : self._pos], spans, ranges, pieces)
        self._seq += 1
        return req
