#!/usr/bin/env python
"""Tune a speech prior's sampling temperature on held-out TRAINING utterances, never on test.

The prior's ``data.held_out`` utterances (the seeded split it validated on and never trained on)
play the test set: the code-to-phone map, the phone bigram and the code n-grams are fitted on the
other training utterances, and the prior's samples with the held-out utterances' lengths are
scored as `speechvq evaluate prior --alignments` scores the test ones
(`speechvq.evaluation.speech.prior_samples`). The temperature whose samples' phone-bigram
perplexity is closest to the held-out utterances' own is the one to pass to ``evaluate prior
--temperature`` and ``sample --temperature`` (the mini recipe's ``--prior-temperature``).

    python tools/tune_prior_temperature.py --model exp/mini_prior --checkpoint best.pt \\
        --alignments data/train --temperatures 1.0 0.95 0.9 0.85

Prints one line per temperature (the prior's perplexity and interval, the real held-out
utterances', the code bigram's) and the closest temperature.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def split_dumps(train, held: np.ndarray, rest: np.ndarray, out: Path):
    """(rest, held) code dumps of the training dump's items, written under `out`."""
    from speechvq.data.code_dump import CodeItem, write_code_dump

    made = []
    for name, items in (("fit", rest), ("held_out", held)):
        made.append(write_code_dump(
            out / name, [CodeItem(train.ids[i], np.asarray(train.item(int(i))),
                                  train.conditions[train.condition_ids[i]]) for i in items],
            modality="speech", codebook_size=train.codebook_size,
            conditions=list(train.conditions), checkpoint=train.checkpoint, source=train.path,
            frame_rate_hz=train.meta["frame_rate_hz"]))
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the speech prior's exp dir or checkpoint")
    p.add_argument("--checkpoint", help="checkpoint name in the exp dir (e.g. best.pt)")
    p.add_argument("--alignments", required=True, help="the training data dir (phones.ctm)")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.95, 0.9, 0.85])
    p.add_argument("--draws-per-utterance", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from speechvq.checkpoint import load_model
    from speechvq.data.code_dump import CodeDump, held_out_split
    from speechvq.evaluation.speech.prior_samples import score_speech_samples

    torch.set_num_threads(1)
    prior = load_model(args.model, args.checkpoint, kind="prior", device="cpu")
    train = CodeDump.open(prior.prior_info["train_codes"])
    rest, held = held_out_split(len(train), prior.config.data.held_out, prior.config.seed)
    if not len(held):
        print("the prior holds out no training utterances (data.held_out = 0)", file=sys.stderr)
        return 2
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        fit, scored = split_dumps(train, held, rest, Path(tmp))
        print(f"{len(held)} held-out training utterances scored, fitted on {len(rest)}; "
              f"{args.draws_per_utterance} draws each, seed {args.seed}")
        for t in args.temperatures:
            block = score_speech_samples(prior, fit, scored, args.alignments, temperature=t,
                                         seed=args.seed, draws=args.draws_per_utterance
                                         )["samples"]
            ppl, ci = block["phone_bigram_ppl"], block["ci95"]["phone_bigram_ppl"]
            gap = abs(ppl["prior"] - ppl["real"])
            print(f"temperature {t:g}: prior {ppl['prior']:.1f} [{ci['prior'][0]:.1f}, "
                  f"{ci['prior'][1]:.1f}], real held-out {ppl['real']:.1f}, code bigram "
                  f"{ppl['code_bigram']:.1f}; prior {gap:.1f} from real")
            if best is None or gap < best[1]:
                best = (t, gap)
    print(f"closest to the held-out utterances: temperature {best[0]:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
