"""Training and validation batches of an image dump.

``ImageBatches(dump, batch_size, seed)[step]`` is the batch of that step, a pure function of
(seed, step), so a resumed run sees the batches it would have seen: the dump is read in epochs,
each a permutation drawn from ``numpy.random.default_rng([seed, epoch])``, and step s takes the
positions ``s*B .. s*B + B - 1`` of that endless sequence. Under torchrun, rank r of R takes its
contiguous B/R share of each batch, so the ranks together see exactly the single-process batch.

A batch is ``{"image": (B, C, H, W) uint8, "label": (B,) int64}``; scaling the pixels is the
model's business (`speechvq.models.image`), so the host sends bytes, not floats.
"""

from __future__ import annotations

import numpy as np
import torch

from speechvq.data.images.dump import ImageDump

__all__ = ["ImageBatches", "validation_batches", "to_batch"]


def to_batch(images: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
    """NHWC uint8 images and their labels as a batch dict (images NCHW)."""
    return {"image": torch.from_numpy(images.transpose(0, 3, 1, 2).copy()),  # (B, C, H, W)
            "label": torch.from_numpy(np.asarray(labels, np.int64))}


class ImageBatches(torch.utils.data.Dataset):
    """Map-style dataset over steps: item ``step`` is this rank's batch of that step.

    Args:
        dump: the training dump. batch_size: images per step over all ranks.
        seed: the run's seed. rank, world_size: this process under torchrun.
    """

    def __init__(self, dump: ImageDump, batch_size: int, seed: int, *, rank: int = 0,
                 world_size: int = 1):
        assert batch_size % world_size == 0, "checked by distributed.check_batch_divisible"
        self.dump, self.batch_size, self.seed = dump, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self._orders: dict[int, np.ndarray] = {}  # epoch -> permutation (the last two)

    def __len__(self) -> int:
        return 2 ** 62  # endless: the Trainer's sampler picks the steps

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            if len(self._orders) >= 2:
                self._orders.pop(min(self._orders))
            rng = np.random.default_rng([self.seed, epoch])
            self._orders[epoch] = rng.permutation(len(self.dump))  # (N,)
        return self._orders[epoch]

    def indices(self, step: int) -> np.ndarray:
        """Dump indices of this rank's images at `step`; (B / world_size,) int64."""
        share = self.batch_size // self.world_size
        start = step * self.batch_size + self.rank * share
        positions = np.arange(start, start + share)  # (b,)
        n = len(self.dump)
        out = np.empty(share, np.int64)
        for epoch in np.unique(positions // n):
            here = positions // n == epoch
            out[here] = self._order(int(epoch))[positions[here] % n]
        return out

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        index = self.indices(step)
        order = np.argsort(index)  # the memory map reads ascending rows fastest
        images = np.empty((len(index), *self.dump.shape), np.uint8)
        images[order] = self.dump.images[index[order]]
        return to_batch(images, self.dump.labels[index])


def validation_batches(dump: ImageDump, batch_size: int,
                       max_items: int) -> list[dict[str, torch.Tensor]]:
    """The first `max_items` images of `dump` in batches of `batch_size` (the last may be
    smaller): the fixed held-out set of the Trainer's validation pass."""
    n = min(len(dump), max_items)
    return [to_batch(np.asarray(dump.images[i:min(i + batch_size, n)]),
                     dump.labels[i:min(i + batch_size, n)]) for i in range(0, n, batch_size)]
