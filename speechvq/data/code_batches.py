"""Training and validation batches of a code dump (`speechvq.data.code_dump`) for a prior.

``CodeBatches(dump, items, batch_size, seed, crop)[step]`` is the batch of that step, a pure
function of (seed, step), so a resumed run sees the batches it would have seen:

- grids (images, video: every item has the same shape) are taken whole, in epochs, each a
  permutation of `items` drawn from ``numpy.random.default_rng([seed, epoch])``;
- 1-D sequences (speech) give windows of `crop` codes: step s draws its items (each with a
  probability proportional to its length) and their start offsets from
  ``default_rng([seed, s])``; a sequence shorter than `crop` is padded and its padding masked.

A share ``start_share`` of the windows begins at its utterance's start. Given a start symbol
(``start``: the prior's input index K), a window also carries ``first``, its input at t = 0:
the code before it, or the symbol for a window that begins its utterance.

A batch is ``{"codes": (B, *shape) int64, "cond": (B,) int64, "mask": (B, *shape) bool}``
(mask: which positions are scored), plus ``"first": (B,) int64`` for windows given `start`. Under torchrun rank r of R takes its contiguous B/R share.
`validation_batches` cuts held-out items into fixed batches: grids whole, sequences into
consecutive `crop`-long windows (the last one padded and masked).
"""

from __future__ import annotations

import numpy as np
import torch

from speechvq.data.code_dump import CodeDump

__all__ = ["CodeBatches", "validation_batches", "grid_batch"]


def grid_batch(dump: CodeDump, index: np.ndarray) -> dict[str, torch.Tensor]:
    """The whole grids of items `index` as a batch."""
    codes = torch.from_numpy(np.stack([dump.item(int(i)) for i in index]))  # (B, *grid)
    return {"codes": codes, "cond": torch.from_numpy(dump.condition_ids[index]),
            "mask": torch.ones(codes.shape, dtype=torch.bool)}


def _window_batch(dump: CodeDump, index: np.ndarray, starts: np.ndarray, crop: int,
                  start_symbol: int | None = None) -> dict[str, torch.Tensor]:
    codes = np.zeros((len(index), crop), np.int64)
    mask = np.zeros((len(index), crop), bool)
    first = np.zeros(len(index), np.int64)
    for row, (i, start) in enumerate(zip(index, starts)):
        a = int(dump.offsets[i]) + int(start)
        n = min(crop, int(dump.lengths[i]) - int(start))
        codes[row, :n] = dump.codes[a:a + n]
        mask[row, :n] = True
        first[row] = dump.codes[a - 1] if start > 0 else (start_symbol or 0)
    batch = {"codes": torch.from_numpy(codes),
             "cond": torch.from_numpy(dump.condition_ids[index]), "mask": torch.from_numpy(mask)}
    if start_symbol is not None:
        batch["first"] = torch.from_numpy(first)
    return batch


class CodeBatches(torch.utils.data.Dataset):
    """Map-style dataset over steps: item ``step`` is this rank's batch of that step.

    Args:
        dump: the training code dump. items: the dump indices trained on (the held-out ones
            left out). batch_size: items per step over all ranks. seed: the run's seed.
        crop: window length of 1-D sequences (grids are taken whole).
        rank, world_size: this process under torchrun.
        start: the start symbol, to give windows their ``first`` input (None: no ``first``).
        start_share: windows that begin at their utterance's start.
    """

    def __init__(self, dump: CodeDump, items: np.ndarray, batch_size: int, seed: int,
                 crop: int, *, rank: int = 0, world_size: int = 1, start: int | None = None,
                 start_share: float = 0.0):
        assert batch_size % world_size == 0, "checked by distributed.check_batch_divisible"
        self.dump, self.items = dump, np.asarray(items, np.int64)
        self.batch_size, self.seed, self.crop = batch_size, seed, crop
        self.start, self.start_share = start, start_share
        self.rank, self.world_size = rank, world_size
        self.whole = dump.grid is not None
        lengths = dump.lengths[self.items].astype(np.float64)
        self.weights = lengths / lengths.sum()
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return 2 ** 62  # endless: the Trainer's sampler picks the steps

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            if len(self._orders) >= 2:
                self._orders.pop(min(self._orders))
            self._orders[epoch] = np.random.default_rng([self.seed, epoch]).permutation(
                self.items)
        return self._orders[epoch]

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        share = self.batch_size // self.world_size
        lo = self.rank * share
        if self.whole:
            positions = np.arange(step * self.batch_size + lo, step * self.batch_size + lo + share)
            n = len(self.items)
            index = np.array([self._order(int(p // n))[p % n] for p in positions], np.int64)
            return grid_batch(self.dump, index)
        rng = np.random.default_rng([self.seed, step])
        picks = self.items[rng.choice(len(self.items), self.batch_size, p=self.weights)]
        room = np.maximum(self.dump.lengths[picks] - self.crop, 0)
        starts = (rng.random(self.batch_size) * (room + 1)).astype(np.int64)
        if self.start_share > 0:  # drawn after the rest: share 0 keeps the batches as they were
            starts[rng.random(self.batch_size) < self.start_share] = 0
        return _window_batch(self.dump, picks[lo:lo + share], starts[lo:lo + share], self.crop,
                             self.start)


def validation_batches(dump: CodeDump, items: np.ndarray, batch_size: int, crop: int,
                       max_items: int, start: int | None = None
                       ) -> list[dict[str, torch.Tensor]]:
    """Fixed held-out batches of the first `max_items` of `items` (module docstring); `start`
    as `CodeBatches`'s (each window then sees the code before it)."""
    items = np.asarray(items, np.int64)[:max_items]
    if dump.grid is not None:
        return [grid_batch(dump, items[k:k + batch_size])
                for k in range(0, len(items), batch_size)]
    windows = [(i, s) for i in items for s in range(0, int(dump.lengths[i]), crop)]
    return [_window_batch(dump, np.array([i for i, _ in windows[k:k + batch_size]], np.int64),
                          np.array([s for _, s in windows[k:k + batch_size]], np.int64), crop,
                          start)
            for k in range(0, len(windows), batch_size)]
