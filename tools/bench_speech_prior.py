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

import argparse
import sys
import time
from types import SimpleNamespace

import torch


def naive_sample(model, n: int, steps: int) -> torch.Tensor:
    """The baseline: the full forward pass over the codes so far for every new code."""
    codes = torch.zeros(n, steps, dtype=torch.long)
    for t in range(steps):
        logits = model(codes[:, :t + 1])[:, :, t]  # (n, K): sees codes[:, :t] only
        codes[:, t] = torch.multinomial(torch.softmax(logits, -1), 1).squeeze(-1)
    return codes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a speech prior's exp dir or checkpoint (default: random "
                                   "weights of recipes/mini/conf/prior.yaml's size)")
    p.add_argument("--checkpoint", help="checkpoint name in the exp dir (e.g. best.pt)")
    p.add_argument("--length", type=int, default=250, help="codes per sample (250 = 5 s at 50 Hz)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model:
        from speechvq.checkpoint import load_model
        model = load_model(args.model, args.checkpoint, kind="prior")
    else:
        from speechvq.models.prior.causal import CausalPrior
        torch.manual_seed(0)
        cfg = SimpleNamespace(arch="wavenet", channels=64, layers=10, kernel_size=2,
                              dilation_cycle=10, dropout=0.0, conditional=False)
        model = CausalPrior.from_config(cfg, codebook_size=128, n_classes=0).eval()
    from speechvq.models.speech import fast_wavenet
    engines = ["eager"] + (["fused"] if fast_wavenet.available() else [])
    model.sample(1, (8,), engine=engines[-1])  # load the compiled kernel once
    print(f"speech prior, {args.length} codes per sample, {args.threads} thread(s)")
    for n in args.batch:
        with torch.no_grad():
            start = time.perf_counter()
            naive_sample(model, n, args.length)
            base = n * args.length / (time.perf_counter() - start)
        for engine in engines:
            start = time.perf_counter()
            model.sample(n, (args.length,), engine=engine,
                         generator=torch.Generator().manual_seed(0))
            rate = n * args.length / (time.perf_counter() - start)
            print(f"batch {n:>3}: {engine:>5} {rate:8.0f} codes/s, full recompute {base:8.0f} "
                  f"codes/s, ratio {rate / base:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
