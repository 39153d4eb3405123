"""Training and validation batches of a video dump.

``VideoBatches(dump, batch_size, seed, window)[step]`` is the batch of that step, a pure function
of (seed, step): the clips are picked as `speechvq.data.images.batches.ImageBatches` picks images
(epochs of permutations from ``default_rng([seed, epoch])``, ranks taking contiguous shares), and
each picked clip gives ``window`` consecutive frames starting at a frame drawn from
``default_rng([seed, step, rank])`` (the whole clip when ``window`` is its length). A fully
convolutional video model trains on short windows as well as on whole clips, at a fraction of
the cost.

A batch is ``{"clip": (B, C, T, H, W) uint8}``; scaling is the model's business.
"""

from __future__ import annotations

import numpy as np
import torch

from speechvq.data.images.batches import ImageBatches
from speechvq.data.video.dump import VideoDump

__all__ = ["VideoBatches", "validation_clips", "to_clip_batch"]


def to_clip_batch(clips: np.ndarray) -> dict[str, torch.Tensor]:
    """(B, T, H, W, C) uint8 clips as a batch dict (clips (B, C, T, H, W))."""
    return {"clip": torch.from_numpy(clips.transpose(0, 4, 1, 2, 3).copy())}  # (B, C, T, H, W)


class VideoBatches(ImageBatches):
    """Map-style dataset over steps: item ``step`` is this rank's batch of windows at that step.

    Args:
        dump: the training dump. batch_size: clips per step over all ranks. seed: the run's
        seed. window: frames per training window (at most the clips' length).
        rank, world_size: this process under torchrun.
    """

    def __init__(self, dump: VideoDump, batch_size: int, seed: int, window: int, *,
                 rank: int = 0, world_size: int = 1):
        super().__init__(dump, batch_size, seed, rank=rank, world_size=world_size)
        assert 1 <= window <= dump.frames, "checked by the video task's setup"
        self.window = window

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        index = self.indices(step)
        rng = np.random.default_rng([self.seed, step, self.rank])
        starts = rng.integers(0, self.dump.frames - self.window + 1, len(index))  # (b,)
        clips = np.empty((len(index), self.window, *self.dump.frame_shape), np.uint8)
        for k in np.argsort(index):  # the memory map reads ascending rows fastest
            clips[k] = self.dump.clips[index[k], starts[k]:starts[k] + self.window]
        return to_clip_batch(clips)


def validation_clips(dump: VideoDump, batch_size: int,
                     max_items: int) -> list[dict[str, torch.Tensor]]:
    """The first `max_items` whole clips of `dump` in batches of `batch_size`: the fixed
    held-out set of the Trainer's validation pass."""
    n = min(len(dump), max_items)
    return [to_clip_batch(np.asarray(dump.clips[i:min(i + batch_size, n)]))
            for i in range(0, n, batch_size)]
