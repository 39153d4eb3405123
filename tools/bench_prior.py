#!/usr/bin/env python
"""Benchmark sampling from a prior: codes per second at batch 1 and 16, the cached sampler
(`PixelCNNPrior.sample`: the vertical stack once per row, the horizontal stack on the row's
columns up to the current one) against recomputing the whole grid for every code, the
baseline, measured in the same run.

    python tools/bench_prior.py                  # egs/images' prior size, random weights
    python tools/bench_prior.py --model egs/images/exp/images_prior --checkpoint best
    python tools/bench_prior.py --grid 32 32 --threads 2

Prints one line per batch size: codes/s of both and their ratio. Timings depend on the machine
and its load; the ratio is what carries over.
"""

from __future__ import annotations

import sys

import torch

from prior_bench_common import codes_per_second, prior_bench_parser, prior_to_time


def naive_sample(model, n: int, grid: tuple[int, int], cond) -> torch.Tensor:
    """The baseline: the full forward pass over the grid for every code, raster order."""
    codes = torch.zeros(n, *grid, dtype=torch.long)
    for i in range(grid[0]):
        for j in range(grid[1]):
            logits = model(codes, cond)[:, :, i, j]  # (n, K)
            codes[:, i, j] = torch.multinomial(torch.softmax(logits, -1), 1).squeeze(-1)
    return codes


def sampling_rates(model, n: int, grid: tuple[int, int], n_classes: int,
                   repeats: int = 1) -> tuple[float, float]:
    """Codes per second of the cached sampler and of the full-recompute baseline, best of
    `repeats` interleaved rounds."""
    cond = torch.arange(n) % n_classes if n_classes else None
    best = [0.0, 0.0]
    for _ in range(repeats):
        for k, fn in enumerate((lambda: model.sample(n, grid, cond=cond),
                                lambda: naive_sample(model, n, grid, cond))):
            best[k] = max(best[k], codes_per_second(fn, n * grid[0] * grid[1]))
    return best[0], best[1]


def main(argv=None) -> int:
    p = prior_bench_parser(__doc__, prior="a prior", size_of="egs/images/conf/prior.yaml",
                           checkpoint="best")
    p.add_argument("--grid", type=int, nargs=2, default=None, help="H W (default: the model's, "
                                                                   "else 8 8)")
    args = p.parse_args(argv)

    def random_prior():
        from speechvq.models.prior.pixelcnn import PixelCNNPrior
        return PixelCNNPrior(512, 64, 10, 3, n_classes=10).eval()

    model = prior_to_time(args, random_prior)
    if args.model:
        grid = tuple(args.grid or model.prior_info["grid"])
        n_classes = model.prior_info["n_classes"]
    else:
        grid, n_classes = tuple(args.grid or (8, 8)), 10
    print(f"prior {type(model).__name__}, grid {grid[0]}x{grid[1]}, {args.threads} thread(s)")
    for n in args.batch:
        rates = sampling_rates(model, n, grid, n_classes)
        print(f"batch {n:>3}: cached {rates[0]:8.0f} codes/s, full recompute {rates[1]:8.0f} "
              f"codes/s, ratio {rates[0] / rates[1]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
