"""What the prior sampling benchmarks share (tools/bench_prior.py, tools/bench_speech_prior.py):
their options, the prior they time (a trained one, or random weights of a recipe's size) and how
a rate is measured. Imported by them as a sibling module (``python tools/bench_*.py`` puts
tools/ first on sys.path)."""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch


def prior_bench_parser(doc: str, *, prior: str, size_of: str,
                       checkpoint: str) -> argparse.ArgumentParser:
    """--model, --checkpoint, --batch and --threads, described by the first paragraph of `doc`.

    Args:
        prior: what --model takes ("a prior"). size_of: the conf whose size the random prior
            has. checkpoint: an example checkpoint name ("best").
    """
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--model", help=f"{prior}'s exp dir or checkpoint (default: random weights "
                                   f"of {size_of}'s size)")
    p.add_argument("--checkpoint", help=f"checkpoint name in the exp dir (e.g. {checkpoint})")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--threads", type=int, default=1)
    return p


def prior_to_time(args: argparse.Namespace, random_prior: Callable[[], torch.nn.Module]
                  ) -> torch.nn.Module:
    """With ``args.threads`` set: the prior of ``--model`` (and ``--checkpoint``), else
    `random_prior()` built after seeding torch with 0."""
    torch.set_num_threads(args.threads)
    if args.model:
        from speechvq.checkpoint import load_model
        return load_model(args.model, args.checkpoint, kind="prior")
    torch.manual_seed(0)
    return random_prior()


def codes_per_second(sample: Callable[[], object], codes: int) -> float:
    """`codes` over the wall-clock seconds of one `sample()` call, without gradients."""
    with torch.no_grad():
        start = time.perf_counter()
        sample()
        return codes / (time.perf_counter() - start)
