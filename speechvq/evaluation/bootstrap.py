"""95 % bootstrap intervals, shared by every evaluation (units, ABX, conversion, images).

A figure computed over independent units (utterances, images, ABX items, converted files) is
recomputed on `RESAMPLES` resamples of those units drawn with replacement, and the interval is
the 2.5th and 97.5th percentiles of the resampled figures (the percentile bootstrap, Efron &
Tibshirani 1993, ch. 13). A resample is represented by how often it draws each unit (a row of
`resample_counts`), so a figure that is a sum over units is a weighted sum: nothing is
recomputed from the raw data (no re-encoding, no DTW). Results store the interval as
``ci95.<metric> = [low, high]`` beside the scalar (DESIGN.md "Report keys").
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

RESAMPLES = 1000  # resamples per interval
CHUNK = 100  # resamples computed at once (bounds memory to CHUNK x units)
LEVEL = 95.0


def resample_counts(n: int, seed: int, resamples: int | None = None) -> np.ndarray:
    """How often each of `n` units is drawn in each resample: (resamples, n) int32, every row
    summing to n (multinomial with equal probabilities), seeded; `RESAMPLES` rows by default."""
    resamples = RESAMPLES if resamples is None else resamples
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, (resamples, n))  # (R, n)
    counts = np.zeros((resamples, n), dtype=np.int32)
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1)
    return counts


def chunks(counts: np.ndarray) -> Iterator[np.ndarray]:
    """`counts` in blocks of `CHUNK` resamples (rows)."""
    for s in range(0, len(counts), CHUNK):
        yield counts[s:s + CHUNK]


def interval(values: np.ndarray) -> list[float] | None:
    """[low, high] percentile interval of resampled figures, NaNs (a resample where the figure is
    undefined) left out; None when every resample is undefined."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.percentile(values, [(100 - LEVEL) / 2, (100 + LEVEL) / 2])
    return [float(lo), float(hi)]


def ratio_ci(num, den, counts: np.ndarray) -> list[float] | None:
    """Interval of ``sum(num) / sum(den)`` over units (a frame-pooled accuracy, a mean when
    ``den`` is ones), resampled by `counts` (`resample_counts` over the same units)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return interval((counts @ num) / (counts @ den))


def mean_ci(values, seed: int) -> list[float] | None:
    """Interval of the mean of per-unit `values` (units: utterances, files); None when there is
    no value to resample."""
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if values.size == 0:
        return None
    return ratio_ci(values, np.ones_like(values), resample_counts(values.size, seed))


def statistic_ci(stat: Callable[[np.ndarray], np.ndarray], counts: np.ndarray
                 ) -> list[float] | None:
    """Interval of a figure computed by ``stat(block of counts rows) -> (rows,) figures``."""
    return interval(np.concatenate([stat(c) for c in chunks(counts)]))
