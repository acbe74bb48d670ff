"""The planner: requests in order, sized as asked, neighbours coalesced, pieces cut right."""

from __future__ import annotations

import numpy as np
import pytest

from farfeed.errors import ConfigError
from farfeed.loader.flow import MAX_REQUEST, MIN_REQUEST, Window
from farfeed.loader.planner import Planner, merge_neighbours
from farfeed.store.base import ByteRange

OBJECTS = {"a": bytes(range(256)) * 4, "b": bytes(reversed(range(256))) * 4}
SPANS = {
    0: ByteRange("a", 0, 10),
    1: ByteRange("a", 10, 20),  # adjacent to 0
    2: ByteRange("b", 100, 5),
    3: ByteRange("a", 40, 8),  # 10 bytes after 1
    4: ByteRange("a", 5, 10),  # overlaps 0 and 1
    5: ByteRange("b", 900, 50),
}


def read(r: ByteRange) -> bytes:
    return OBJECTS[r.path][r.offset : r.offset + r.length]


@pytest.mark.parametrize("gap,expected_ranges", [(0, 4), (10, 3), (10_000, 2)])
def test_coalesce_merges_neighbours_and_cuts_each_sample_back(
    gap: int, expected_ranges: int
) -> None:
    spans = list(SPANS.values())
    ranges, pieces = merge_neighbours(spans, gap=gap)
    assert len(ranges) == expected_ranges
    blobs = [read(r) for r in ranges]
    from farfeed.loader.planner import Request

    req = Request(0, 0, np.arange(len(spans)), spans, ranges, pieces)
    assert req.cut(blobs) == [read(s) for s in spans]
    assert req.nbytes == sum(s.length for s in spans)


def test_take_walks_in_order_with_at_least_one_sample_per_request() -> None:
    ids = np.array([5, 0, 3, 1, 2, 4], dtype=np.int64)
    planner = Planner(ids, SPANS.__getitem__, gap=0, start=1)
    first = planner.take(25)
    assert first is not None and first.ids.tolist() == [0, 3] and first.first == 1
    second = planner.take(1)  # smaller than one sample: still one
    assert second is not None and second.ids.tolist() == [1] and second.seq == 1
    rest = planner.take(10**9, max_items=2)
    assert rest is not None and rest.ids.tolist() == [2, 4]
    assert planner.done and planner.take(100) is None and planner.position == 6


def test_planner_refuses_bad_settings() -> None:
    with pytest.raises(ConfigError, match="start"):
        Planner(np.arange(3), SPANS.__getitem__, start=4)
    with pytest.raises(ConfigError, match="gap=-1"):
        Planner(np.arange(3), SPANS.__getitem__, gap=-1)


def test_window_starts_with_the_first_request_then_follows_rate_times_rtt() -> None:
    w = Window(budget=256 * 2**20, first_request=3 * 2**20, margin=2.0, cushion=1.0)
    assert w.update() == 3 * 2**20 and w.request_bytes() == 3 * 2**20
    w.on_first_byte(0.100)
    w.on_first_byte(0.050)  # the estimate is the minimum: queueing is not latency
    w.on_arrival()
    w.rate = 200e6  # 200 MB/s consumed
    held = w.update()
    assert w.rtt == 0.050
    assert 2 * 200e6 * 0.050 <= w.inflight <= 2 * 200e6 * 0.050 + 2 * MAX_REQUEST
    assert held >= w.inflight + 200e6 * 1.0  # plus one second of cushion
    assert held <= 256 * 2**20
    assert MIN_REQUEST <= w.request_bytes() <= MAX_REQUEST
    w.rate = 1e12
    assert w.update() == 256 * 2**20  # never past the budget


def test_the_window_carries_two_whole_batch_requests_on_a_thin_far_link() -> None:
    """decode="batch" asks for whole batches (4.6 MB here) whatever the window would ask
    for (1 MB at 20 MB/s): the in-flight target must count them as they are, or on a
    100 ms line only one is in flight and the consumer stalls (bench io --decode batch)."""
    batch = 4_600_000
    for least, carried in ((1, 1), (batch, 2)):
        w = Window(budget=256 * 2**20, first_request=batch, least_request=least)
        w.on_first_byte(0.100)
        w.on_arrival()
        w.rate = 20e6
        w.update()
        assert w.request_bytes() < batch  # what the window alone would ask for
        assert w.inflight // batch == carried  # whole batch requests the target carries


@pytest.mark.parametrize("unit", [1, 3, 8])
def test_the_whole_request_lookup_cuts_as_the_sample_by_sample_walk(unit: int) -> None:
    """`Planner(spans=..., sizes=...)` (what `SampleSource` gives) plans the same requests."""
    rng = np.random.default_rng(unit)
    sizes = rng.integers(0, 5000, size=500).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    spans = [ByteRange(f"s{i % 3}", int(offsets[i]), int(sizes[i])) for i in range(500)]
    ids = rng.permutation(500).astype(np.int64)[:400]
    one = Planner(ids, spans.__getitem__, unit=unit, merge=False, start=7)
    bulk = Planner(ids, spans.__getitem__, unit=unit, merge=False, start=7, sizes=sizes,
                   spans=lambda chosen: [spans[i] for i in chosen.tolist()])  # fmt: skip
    while not one.done:
        want = int(rng.integers(1, 40_000))
        items = int(rng.integers(1, 30))
        a, b = one.take(want, max_items=items), bulk.take(want, max_items=items)
        assert a is not None and b is not None
        assert (a.first, a.ids.tolist(), a.spans, a.nbytes) == (b.first, b.ids.tolist(), b.spans, b.nbytes)
    assert bulk.done and bulk.position == one.position
