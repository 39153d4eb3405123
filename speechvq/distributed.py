"""torchrun / DDP set-up and teardown for every task (PyTorch's own machinery, nothing home-made).

    with process_group(cfg.train.device) as env:       # env.rank, env.local_rank, env.world_size
        check_batch_divisible(cfg.train.batch_size, env.world_size)
        ...                                            # each rank builds its slice of a batch

Under ``torchrun`` (WORLD_SIZE > 1) the process group is started with NCCL on CUDA, else gloo,
and destroyed on the way out; in a single process nothing is started. Batches are
rank-disjoint by construction: each task's step-indexed batches give rank r its slice of the
global batch of that step.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, NamedTuple

from speechvq.device import pick_device
from speechvq.errors import ConfigError


class DistEnv(NamedTuple):
    """This process's place under torchrun; (0, 0, 1) in a single process."""

    rank: int
    local_rank: int
    world_size: int


def distributed_env() -> DistEnv:
    """(rank, local_rank, world_size) as torchrun sets them; (0, 0, 1) otherwise."""
    return DistEnv(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
                   int(os.environ.get("WORLD_SIZE", "1")))


def check_batch_divisible(batch_size: int, world_size: int) -> None:
    """Each rank takes an equal slice of a global batch.

    Raises:
        ConfigError: `batch_size` does not split evenly over the processes.
    """
    if batch_size % world_size:
        raise ConfigError(f"train.batch_size={batch_size} is not divisible by the {world_size} "
                          f"processes of torchrun; change one of them")


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[DistEnv]:
    """Start the torch.distributed process group under torchrun (NCCL on CUDA, else gloo) and
    destroy it on exit; a no-op in a single process or when a group already exists."""
    import torch
    import torch.distributed as dist

    env = distributed_env()
    started = False
    if env.world_size > 1 and not dist.is_initialized():
        on_cuda = pick_device(device, env.local_rank, "train.device").type == "cuda"
        if on_cuda:
            torch.cuda.set_device(env.local_rank)
        dist.init_process_group("nccl" if on_cuda else "gloo")
        started = True
    try:
        yield env
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def all_reduce_sum_(tensor) -> None:
    """Sum `tensor` in place over every rank (nothing to do in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
