"""Who this process is in a `torchrun` job, computed once, and the few collectives we need.

`TrainRanks.from_env()` reads torchrun's variables once at start-up; everything below takes
the `TrainRanks` value object instead of re-reading the environment. gloo on CPU, nccl on GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from farfeed.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TrainRanks:
    """This process's place in the training job: rank, world size and local rank (the GPU).

    >>> TrainRanks(rank=0, world_size=2, local_rank=0)

    Not `farfeed.loader.world.World`, which also counts DataLoader workers.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(
                f"need 0 <= rank < world_size, got rank={self.rank!r} "
                f"world_size={self.world_size!r}"
            )

    @classmethod
    def from_env(cls) -> TrainRanks:
        """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as torchrun sets them (single process when absent)."""
        try:
            return cls(
                rank=int(os.environ.get("RANK", "0")),
                world_size=int(os.environ.get("WORLD_SIZE", "1")),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            )
        except ValueError as exc:
            raise ConfigError(f"bad torchrun environment: {exc}") from exc

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one rank."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes results and checkpoints."""
        return self.rank == 0


def device_for(world: TrainRanks, device: str) -> torch.device:
    """The torch device this rank trains on (``cuda:LOCAL_RANK`` on GPU)."""
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device")
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return torch.device("cpu")


def init(world: TrainRanks, device: torch.device) -> None:
    """Join the process group (gloo on CPU, nccl on GPU); a no-op for one rank."""
    if world.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def shutdown(world: TrainRanks) -> None:
    """Leave the process group."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: TrainRanks) -> None:
    """Wait for every rank."""
    if world.distributed:
        dist.barrier()


def gather(world: TrainRanks, obj: Any) -> list[Any]:
    """Every rank's ``obj`` on every rank, in rank order (``[obj]`` for one rank)."""
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.world_size
    dist.all_gather_object(out, obj)
    return out
