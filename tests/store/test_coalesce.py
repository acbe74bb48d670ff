"""Range coalescing and batch planning: the pure functions behind read_many."""

from __future__ import annotations

import json

import numpy as np

from farfeed.store._batch import FRAME, TRAILER_INDEX, batch_body, frame_headers, plan_batches
from farfeed.store.base import ByteRange
from farfeed.store.coalesce import coalesce


def test_neighbours_merge_and_far_ranges_do_not() -> None:
    ranges = [
        ByteRange("a", 1000, 10),  # 0
        ByteRange("b", 0, 5),  # 1: other object
        ByteRange("a", 0, 100),  # 2
        ByteRange("a", 150, 50),  # 3: gap 50 <= 64 -> merged with 2
        ByteRange("a", 120, 10),  # 4: inside the merged span
    ]
    spans = coalesce(ranges, max_gap=64, max_span=1 << 20)
    as_tuples = [(s.path, s.offset, s.length, sorted(s.members)) for s in spans]
    # ordered by the first range each span holds (0, then 1, then 2)
    assert as_tuples == [
        ("a", 1000, 10, [(0, 0, 10)]),
        ("b", 0, 5, [(1, 0, 5)]),
        ("a", 0, 200, [(2, 0, 100), (3, 150, 50), (4, 120, 10)]),
    ]


def test_max_span_caps_merging_but_keeps_long_ranges_whole() -> None:
    ranges = [ByteRange("a", i * 100, 100) for i in range(10)] + [ByteRange("b", 0, 5000)]
    spans = coalesce(ranges, max_gap=0, max_span=300)
    assert [(s.path, s.offset, s.length) for s in spans] == [
        ("a", 0, 300),
        ("a", 300, 300),
        ("a", 600, 300),
        ("a", 900, 100),
        ("b", 0, 5000),
    ]
    covered = sorted(m[0] for s in spans for m in s.members)
    assert covered == list(range(11))


def test_plan_batches_respects_every_limit() -> None:
    items = [("ds/x.tar", 0, 100)] * 10
    assert plan_batches(items, max_ranges=4, max_bytes=10_000) == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]
    assert plan_batches(items, max_ranges=100, max_bytes=250) == [
        [0, 1],
        [2, 3],
        [4, 5],
        [6, 7],
        [8, 9],
    ]
    big = [("ds/x.tar", 0, 10), ("ds/x.tar", 0, 1000), ("ds/x.tar", 0, 10)]
    assert plan_batches(big, max_ranges=100, max_bytes=500) == [[0], [1], [2]]
    assert plan_batches([], max_ranges=4, max_bytes=100) == []


def test_batch_body_is_the_json_the_gateway_parses() -> None:
    paths = ['ds/shard-00001.tar', 'ds/a "quoted" name.tar', "ds/ünïcode.tar"]
    items = [(paths[k % 3], int(o), 114_660 + k) for k, o in enumerate(np.arange(0, 9000, 1000))]
    body = batch_body(items)
    assert json.loads(body) == {"ranges": [[p, o, n] for p, o, n in items]}
    assert body == json.dumps({"ranges": [list(i) for i in items]}, separators=(",", ":")).encode()
    assert json.loads(batch_body([])) == {"ranges": []}


def test_frame_headers_are_each_items_then_the_trailer() -> None:
    lengths = [114_660, 0, 2**40]
    packed = b"".join(FRAME.pack(k, n) for k, n in enumerate(lengths))
    assert frame_headers(lengths) == packed + FRAME.pack(TRAILER_INDEX, 0)
    assert frame_headers([]) == FRAME.pack(TRAILER_INDEX, 0)
