#!/usr/bin/env python
"""Benchmark sampling from the speech prior: codes per second at batch 1 and 16 of the
incremental engines (`CausalPrior.sample`: the WaveNet's per-layer ring buffers, 'eager' PyTorch
steps and the 'fused' numba kernel) against recomputing the forward pass over the whole prefix
for every code, the baseline, measured in the same run.

    python tools/bench_speech_prior.py        # recipes/mini/conf/prior.yaml's size, random weights
    python tools/bench_speech_prior.py --model recipes/mini/exp/mini_prior --checkpoint best.pt

Prints one line per batch size and engine: codes/s and the ratio to the full recompute. Timings
depend on the machine and its load; the ratios are what carry over.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import torch

from prior_bench_common import codes_per_second, prior_bench_parser, prior_to_time


def speakers(model, n: int) -> torch.Tensor | None:
    """Speaker 0 for each of n rows of a speaker-conditioned prior (None: unconditional)."""
    return torch.zeros(n, dtype=torch.long) if model.n_classes else None


def naive_sample(model, n: int, steps: int) -> torch.Tensor:
    """The baseline: the full forward pass over the codes so far for every new code."""
    codes = torch.zeros(n, steps, dtype=torch.long)
    for t in range(steps):
        logits = model(codes[:, :t + 1], speakers(model, n))[:, :, t]  # (n, K): codes[:, :t]
        codes[:, t] = torch.multinomial(torch.softmax(logits, -1), 1).squeeze(-1)
    return codes


def main(argv=None) -> int:
    p = prior_bench_parser(__doc__, prior="a speech prior",
                           size_of="recipes/mini/conf/prior.yaml", checkpoint="best.pt")
    p.add_argument("--length", type=int, default=250, help="codes per sample (250 = 5 s at 50 Hz)")
    args = p.parse_args(argv)

    def random_prior():
        from speechvq.models.prior.causal import CausalPrior
        cfg = SimpleNamespace(arch="wavenet", channels=64, layers=10, kernel_size=2,
                              dilation_cycle=10, dropout=0.0, conditional=False)
        return CausalPrior.from_config(cfg, codebook_size=128, n_classes=0).eval()

    model = prior_to_time(args, random_prior)
    from speechvq.models.speech import fast_wavenet
    engines = ["eager"] + (["fused"] if fast_wavenet.available() else [])
    model.sample(1, (8,), cond=speakers(model, 1), engine=engines[-1])  # compile the kernel once
    print(f"speech prior, {args.length} codes per sample, {args.threads} thread(s)")
    for n in args.batch:
        base = codes_per_second(lambda: naive_sample(model, n, args.length), n * args.length)
        for engine in engines:
            rate = codes_per_second(lambda: model.sample(
                n, (args.length,), cond=speakers(model, n), engine=engine,
                generator=torch.Generator().manual_seed(0)), n * args.length)
            print(f"batch {n:>3}: {engine:>5} {rate:8.0f} codes/s, full recompute {base:8.0f} "
                  f"codes/s, ratio {rate / base:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
