"""The sampler: a seeded global permutation per epoch, split by rank, then by worker.

The split rule, in full (also in README.md beside this file):

1. **Epoch order.** ``order = ids[permutation(seed, epoch)]`` (or ``ids`` unshuffled).
   Identical in every rank and worker: the future is known before the epoch starts.
   With ``block`` > 1 (`block_order`) whole runs of ``block`` stored-adjacent samples
   are shuffled instead, laid out so that each rank's stream keeps them whole.
2. **Resume point.** ``consumed`` positions of ``order`` are already done
   (0 at the start of an epoch); the rest, ``order[consumed:]``, is split.
3. **Uneven division.** ``uneven="pad"`` repeats samples from the start of ``order``
   until the rest divides by ``world_size`` (every sample at least once, a few twice);
   ``uneven="drop"`` drops the last ``len % world_size`` (every sample at most once).
4. **By rank.** Rank ``r`` takes every ``world_size``-th position from ``r``
   (interleaved). After each rank delivered ``p`` samples, exactly the first
   ``consumed + p * world_size`` positions of ``order`` are done, whatever the world
   size was: so a job can resume with a different number of ranks.
5. **By worker.** The rank's stream is cut into batches of ``batch_size``; batch ``b``
   goes to DataLoader worker ``b % num_workers``. A torch DataLoader takes batches from
   its workers round-robin, so it hands the rank's stream to the training loop in
   exactly this order, and "batches delivered x batch_size" is the rank's position,
   whatever the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from farfeed.errors import ConfigError
from farfeed.loader.world import World

UNEVEN_RULES = ("pad", "drop")


@dataclass(frozen=True, slots=True)
class Sampler:
    """The epoch order of ``ids`` and its split; pure functions of (seed, epoch, world).

    >>> Sampler(np.arange(10), seed=0, shuffle=True, uneven="pad").rank_stream(0, World(0, 2))
    """

    ids: npt.NDArray[np.int64]
    seed: int = 0
    shuffle: bool = True
    uneven: str = "pad"
    #: Samples per shuffled block (1: every sample on its own; see `block_order`).
    block: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.block, int) or isinstance(self.block, bool) or self.block < 1:
            raise ConfigError(f"shuffle_block must be an int >= 1, got {self.block!r}")
        if self.uneven not in UNEVEN_RULES:
            raise ConfigError(f"uneven must be one of {UNEVEN_RULES}, got {self.uneven!r}")
        if len(self.ids) == 0:
            raise ConfigError("the split has no samples: nothing to iterate")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed!r}")

    @property
    def num_samples(self) -> int:
        """Samples in the split (one epoch of the whole job, before pad/drop)."""
        return len(self.ids)

    def epoch_order(self, epoch: int, world_size: int = 1) -> npt.NDArray[np.int64]:
        """Every sample id once, in this epoch's order (the same in every process).
        ``world_size`` matters only with ``block`` > 1 (`block_order`)."""
        if epoch < 0:
            raise ConfigError(f"epoch must be >= 0, got {epoch!r}")
        if not self.shuffle:
            return np.asarray(self.ids, dtype=np.int64)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch])))
        if self.block > 1:
            return block_order(np.asarray(self.ids, dtype=np.int64), self.block, world_size, rng)
        return np.asarray(self.ids, dtype=np.int64)[rng.permutation(len(self.ids))]

    def rank_length(self, world_size: int, consumed: int = 0) -> int:
        """Samples each rank delivers from position ``consumed`` to the end of the epoch."""
        rest = max(0, self.num_samples - consumed)
        if self.uneven == "pad":
            return -(-rest // world_size)
        return rest // world_size

    def rank_stream(self, epoch: int, world: World, consumed: int = 0) -> npt.NDArray[np.int64]:
        """This rank's samples from global position ``consumed`` on (rules 1-4 above)."""
        if consumed < 0:
            raise ConfigError(f"consumed must be >= 0, got {consumed!r}")
        order = self.epoch_order(epoch, world.world_size)
        rest = order[min(consumed, len(order)) :]
        size = self.rank_length(world.world_size, consumed) * world.world_size
        if size > len(rest):  # pad by repeating the epoch's first samples, cyclically
            extra = np.resize(order, size - len(rest))
            rest = np.concatenate([rest, extra])
        rest = rest[:size]
        return rest[world.rank :: world.world_size]

    def consumed_after(self, world_size: int, consumed: int, delivered: int) -> int:
        """Global position once each rank delivered ``delivered`` more samples from ``consumed``."""
        return min(self.num_samples, consumed + delivered * world_size)


def block_order(
    ids: npt.NDArray[np.int64], block: int, world_size: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """A block shuffle: ``ids`` (storage order) cut into runs of ``block`` neighbours, the
    runs permuted, each run kept whole in one rank's stream.

    - The cut moves every epoch: the ids are rotated by a random shift first, so a
      sample's run-mates change from epoch to epoch (one run wraps around the end).
    - The full runs are permuted; the short one left over goes last.
    - Rule 4 deals positions to ranks in turn, so each group of ``world_size`` runs is
      interleaved (position ``i * world_size + r`` holds sample ``i`` of the group's run
      ``r``): rank ``r`` then reads each of its runs back to back, as one range.

    The order depends on ``world_size``, so a block-shuffled job resumes only with the
    same number of ranks (`farfeed.Dataset.load_state_dict` checks).
    """
    n = len(ids)
    ids = np.roll(ids, -int(rng.integers(block))) if n > block else ids
    full = n // block
    runs = ids[: full * block].reshape(full, block)[rng.permutation(full)]
    groups = full // world_size
    head = runs[: groups * world_size].reshape(groups, world_size, block).transpose(0, 2, 1)
    return np.concatenate([head.reshape(-1), runs[groups * world_size :].reshape(-1),
                           ids[full * block :]])  # fmt: skip


def worker_positions(
    length: int, *, worker: int, num_workers: int, batch_size: int, bundle: int = 1
) -> npt.NDArray[np.int64]:
    """Positions of a rank stream of ``length`` that one worker serves (rule 5).

    Workers take units in turn. A unit is one batch; with ``bundle`` > 1, each worker's
    first unit is one batch (a short first batch) and every later one ``bundle`` batches,
    sent to the training process as one message (`farfeed.loader.dataset.bundled`)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
    if bundle < 1:
        raise ConfigError(f"bundle must be >= 1, got {bundle!r}")
    positions = np.arange(length, dtype=np.int64)
    batch = positions // batch_size
    unit = np.where(batch < num_workers, batch, num_workers + (batch - num_workers) // bundle)
    return positions[unit % num_workers == worker]


def worker_stream(
    rank_ids: npt.NDArray[np.int64], world: World, *, batch_size: int, bundle: int = 1
) -> npt.NDArray[np.int64]:
    """The explicit worker split: this worker's sample ids, in delivery order."""
    keep = worker_positions(
        len(rank_ids),
        worker=world.worker,
        num_workers=world.num_workers,
        batch_size=batch_size,
        bundle=bundle,
    )
    return rank_ids[keep]
