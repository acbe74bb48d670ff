"""The sampler's split rule: exactly once, deterministic, resumable, any worker count."""

from __future__ import annotations

import numpy as np
import pytest

from farfeed.errors import ConfigError
from farfeed.loader.dataset import bundled
from farfeed.loader.sampler import Sampler, worker_positions, worker_stream
from farfeed.loader.world import World


def all_streams(
    s: Sampler, epoch: int, world_size: int, workers: int, batch: int, consumed: int = 0
) -> list[np.ndarray]:
    out = []
    for rank in range(world_size):
        rank_ids = s.rank_stream(epoch, World(rank, world_size), consumed)
        for w in range(workers):
            out.append(
                worker_stream(rank_ids, World(rank, world_size, w, workers), batch_size=batch)
            )
    return out


@pytest.mark.parametrize(
    "n,world,workers,batch", [(100, 2, 2, 4), (101, 3, 2, 5), (7, 4, 3, 1), (64, 1, 1, 64)]
)
def test_pad_covers_every_sample_and_repeats_only_the_pad(
    n: int, world: int, workers: int, batch: int
) -> None:
    s = Sampler(np.arange(n) * 10, seed=3, uneven="pad")
    seen = np.concatenate(all_streams(s, 0, world, workers, batch))
    assert set(seen.tolist()) == set((np.arange(n) * 10).tolist())
    assert len(seen) == -(-n // world) * world
    assert len(seen) - len(set(seen.tolist())) == (-n) % world


@pytest.mark.parametrize("n,world", [(100, 3), (10, 4), (9, 3)])
def test_drop_delivers_each_sample_at_most_once(n: int, world: int) -> None:
    s = Sampler(np.arange(n), seed=1, uneven="drop")
    seen = np.concatenate(all_streams(s, 2, world, 2, 3))
    assert len(seen) == len(set(seen.tolist())) == (n // world) * world
    assert s.rank_length(world) == n // world


def test_order_is_seeded_and_changes_each_epoch() -> None:
    a = Sampler(np.arange(1000), seed=7)
    b = Sampler(np.arange(1000), seed=7)
    assert np.array_equal(a.epoch_order(0), b.epoch_order(0))
    assert not np.array_equal(a.epoch_order(0), a.epoch_order(1))
    assert not np.array_equal(a.epoch_order(0), Sampler(np.arange(1000), seed=8).epoch_order(0))
    assert not np.array_equal(a.epoch_order(0), np.arange(1000))  # shuffled at sample level
    assert np.array_equal(Sampler(np.arange(10), shuffle=False).epoch_order(5), np.arange(10))


def test_round_robin_batches_rebuild_the_rank_stream() -> None:
    """A DataLoader takes batch b from worker b % N: that is the rank's order exactly."""
    s = Sampler(np.arange(103), seed=0)
    rank_ids = s.rank_stream(0, World(1, 2))
    for workers in (1, 2, 3, 5):
        streams = [
            list(worker_stream(rank_ids, World(1, 2, w, workers), batch_size=4))
            for w in range(workers)
        ]
        rebuilt: list[int] = []
        b = 0
        while any(streams):
            rebuilt += streams[b % workers][:4]
            del streams[b % workers][:4]
            b += 1
        assert rebuilt == rank_ids.tolist()


@pytest.mark.parametrize("workers,bundle", [(1, 3), (2, 3), (3, 4), (4, 2)])
def test_bundled_messages_in_turn_rebuild_the_rank_stream(workers: int, bundle: int) -> None:
    """With bundles, a worker's messages are one batch, then ``bundle`` batches each; a
    DataLoader takes message m from worker m % N: that is still the rank's order."""
    s = Sampler(np.arange(203), seed=0)
    rank_ids = s.rank_stream(0, World(0, 1))
    messages = []
    for w in range(workers):
        ids = worker_stream(rank_ids, World(0, 1, w, workers), batch_size=4, bundle=bundle)
        batches = [ids[i : i + 4].tolist() for i in range(0, len(ids), 4)]
        messages.append([sum(m, []) for m in bundled(batches, bundle)])
    assert [len(m[0]) for m in messages] == [4] * workers  # a first message of one batch
    assert all(len(x) <= 4 * bundle for m in messages for x in m)
    rebuilt: list[int] = []
    m = 0
    while any(messages):
        if messages[m % workers]:
            rebuilt += messages[m % workers].pop(0)
        m += 1
    assert rebuilt == rank_ids.tolist()
    with pytest.raises(ConfigError, match="bundle"):
        worker_positions(4, worker=0, num_workers=1, batch_size=1, bundle=0)


@pytest.mark.parametrize("p", [0, 1, 17, 50])
def test_resume_position_continues_the_same_stream(p: int) -> None:
    s = Sampler(np.arange(101), seed=5, uneven="pad")
    full = s.rank_stream(1, World(1, 2))
    consumed = s.consumed_after(2, 0, p)
    assert s.rank_stream(1, World(1, 2), consumed).tolist() == full[p:].tolist()


def test_resume_with_another_world_size_finishes_the_epoch_exactly_once() -> None:
    s = Sampler(np.arange(90), seed=2, uneven="drop")
    first = [s.rank_stream(0, World(r, 3))[:10] for r in range(3)]  # each rank did 10
    consumed = s.consumed_after(3, 0, 10)
    rest = [s.rank_stream(0, World(r, 2), consumed) for r in range(2)]
    seen = np.concatenate(first + rest).tolist()
    assert sorted(seen) == list(range(90))


def test_bad_settings_are_refused_with_the_value() -> None:
    with pytest.raises(ConfigError, match="'sometimes'"):
        Sampler(np.arange(3), uneven="sometimes")
    with pytest.raises(ConfigError, match="no samples"):
        Sampler(np.arange(0))
    with pytest.raises(ConfigError, match="rank=2"):
        World(rank=2, world_size=2)
    with pytest.raises(ConfigError, match="batch_size"):
        worker_positions(4, worker=0, num_workers=1, batch_size=0)


def test_world_refuses_half_given_or_torchrun_without_process_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="both"):
        World.for_rank(rank=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="init_process_group"):
        World.for_rank()
    assert World.for_rank(rank=1, world_size=2) == World(1, 2)


@pytest.mark.parametrize("n,world,block", [(100, 1, 8), (103, 3, 8), (64, 2, 16), (10, 4, 32)])
def test_block_shuffle_is_exactly_once_and_keeps_runs_whole_per_rank(
    n: int, world: int, block: int
) -> None:
    s = Sampler(np.arange(n), seed=4, uneven="drop", block=block)
    streams = [s.rank_stream(0, World(r, world)) for r in range(world)]
    seen = np.concatenate(streams).tolist()
    assert len(seen) == len(set(seen)) == (n // world) * world
    if n >= 2 * block * world:
        # most neighbours in a rank's stream are neighbours in storage: one range each
        steps = np.concatenate([np.diff(x) for x in streams])
        assert np.mean(steps == 1) > 0.8
        assert not np.array_equal(s.epoch_order(0, world), np.arange(n))


def test_block_shuffle_moves_its_cuts_and_resumes_at_the_same_world_size() -> None:
    s = Sampler(np.arange(4000), seed=9, block=16)
    runs = [set(np.flatnonzero(np.diff(s.epoch_order(e)) != 1).tolist()) for e in (0, 1)]
    first = [set(s.epoch_order(e)[np.array(sorted(r)) + 1].tolist()) for e, r in enumerate(runs)]
    assert first[0] != first[1]  # the runs start at other samples each epoch
    full = s.rank_stream(2, World(1, 3))
    consumed = s.consumed_after(3, 0, 40)
    assert s.rank_stream(2, World(1, 3), consumed).tolist() == full[40:].tolist()
    with pytest.raises(ConfigError, match="shuffle_block"):
        Sampler(np.arange(10), block=0)
