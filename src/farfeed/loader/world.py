"""Who am I in the job: rank and world size, DataLoader worker id and count.

Computed once, in one place, and passed around (never re-read deep inside): the
sampler splits the epoch by `rank` then by `worker` using this value object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from farfeed.errors import ConfigError


@dataclass(frozen=True, slots=True)
class World:
    """One consumer's place in the job.

    >>> World(rank=1, world_size=2, worker=0, num_workers=4)
    """

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(
                f"need 0 <= rank < world_size, got rank={self.rank!r} world_size={self.world_size!r}"
            )
        if self.num_workers < 1 or not 0 <= self.worker < self.num_workers:
            raise ConfigError(
                f"need 0 <= worker < num_workers, got worker={self.worker!r} "
                f"num_workers={self.num_workers!r}"
            )

    @classmethod
    def for_rank(cls, *, rank: int | None = None, world_size: int | None = None) -> World:
        """Rank and world size: as passed, else from torch.distributed when initialised.

        Under torchrun (``WORLD_SIZE`` > 1 in the environment) without an initialised
        process group and without explicit values this fails loudly: silently acting
        as rank 0 of 1 would make every rank read the whole epoch.
        """
        if (rank is None) != (world_size is None):
            raise ConfigError(
                f"pass both rank and world_size or neither, got rank={rank!r} world_size={world_size!r}"
            )
        if rank is not None and world_size is not None:
            return cls(rank=rank, world_size=world_size)
        dist_rank, dist_world = _torch_distributed()
        if dist_world is not None and dist_rank is not None:
            return cls(rank=dist_rank, world_size=dist_world)
        env_world = os.environ.get("WORLD_SIZE")
        if env_world not in (None, "", "1"):
            raise ConfigError(
                f"WORLD_SIZE={env_world!r} is set (torchrun?) but torch.distributed is not "
                "initialised: call torch.distributed.init_process_group() before creating "
                "farfeed.Dataset, or pass rank= and world_size="
            )
        return cls()

    def with_worker(self) -> World:
        """This world plus the current DataLoader worker (worker 0 of 1 outside workers)."""
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is None:
            return World(rank=self.rank, world_size=self.world_size)
        return World(
            rank=self.rank, world_size=self.world_size, worker=info.id, num_workers=info.num_workers
        )

    def check_distributed(self) -> None:
        """Fail loudly when torch.distributed disagrees with the rank split chosen earlier."""
        dist_rank, dist_world = _torch_distributed()
        if dist_world is not None and (dist_world, dist_rank) != (self.world_size, self.rank):
            raise ConfigError(
                f"torch.distributed says rank {dist_rank} of {dist_world}, but this Dataset "
                f"was split for rank {self.rank} of {self.world_size}: create the Dataset "
                "after init_process_group(), or pass the matching rank= and world_size="
            )


def _torch_distributed() -> tuple[int | None, int | None]:
    """(rank, world_size) from an initialised torch.distributed, else (None, None)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch without distributed support
        return None, None
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None, None
