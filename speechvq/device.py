"""Which torch device a command runs on (``--device`` or ``train.device``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from speechvq.errors import ConfigError

__all__ = ["cpu_cores", "pick_device"]


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask, as taskset or a scheduler sets it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def pick_device(name: str = "auto", local_rank: int = 0,
                option: str = "--device") -> "torch.device":
    """'auto' = CUDA (this process's local rank under torchrun) when available, else CPU; or an
    explicit torch device name, checked against what this machine has.

    Args:
        name: auto, cpu, cuda, cuda:N or mps. local_rank: the GPU 'auto' picks.
        option: how the user set it, for the error message (``--device``, ``train.device``).
    Raises:
        ConfigError: not a device, or one this machine (or PyTorch build) does not have.
    """
    import torch

    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{option} {name!r} is not a device; use auto, cpu, cuda or cuda:N") \
            from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {name}: this PyTorch build sees no CUDA GPU; use cpu "
                              f"(or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{option} {name}: only {torch.cuda.device_count()} CUDA GPU(s) "
                              f"are visible (cuda:0 ... cuda:{torch.cuda.device_count() - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{option} {name}: this machine has no Apple MPS device; use cpu")
    elif device.type not in ("cpu", "mps"):
        raise ConfigError(f"{option} {name!r}: speechvq runs on cpu, cuda (or mps)")
    return device
