"""``speechvq sample`` and ``speechvq evaluate prior``: draw from a prior trained on a VQ-VAE's
codes (images, audio, plus the codes), and score its held-out likelihood beside n-gram
baselines. The work is in `speechvq.sample` and `speechvq.evaluation.prior`, imported by the
commands (they bring torch) so ``speechvq --help`` stays fast.
"""

from __future__ import annotations

import argparse

from speechvq.cli.common import (add_batch_size_argument, add_command, add_engine_argument,
                                 add_model_arguments,
                                 add_progress_argument, add_results_exp_argument,
                                 add_seed_argument, positive_int, print_results, progress,
                                 results_claim)


def cmd_sample(args: argparse.Namespace) -> int:
    from speechvq.sample import sample_prior
    if (args.n is None) == (args.per_class is None):
        from speechvq.errors import ConfigError
        raise ConfigError("give -n N (samples) or --per-class N (samples of every class)")
    result = sample_prior(args.model, args.n or 0, args.out, class_name=args.class_name,
                          speaker=args.speaker, prompt=args.prompt,
                          prompt_length=args.prompt_length, length=args.length,
                          temperature=args.temperature, seed=args.seed,
                          per_class=args.per_class or 0, checkpoint=args.checkpoint,
                          device=args.device, engine=args.engine, guidance=args.guidance)
    print(f"{args.out}: {result['n']} samples of {'x'.join(map(str, result['grid']))} codes in "
          f"{result['seconds']:.2f} s ({result['codes_per_second']:.0f} codes/s), "
          f"{len(result['files'])} decoded files; codes in {result['codes']}")
    return 0


def cmd_evaluate_prior(args: argparse.Namespace) -> int:
    from speechvq.evaluation.prior import evaluate_prior, format_prior_table
    with results_claim(args, args.data, args.fit_on):
        result = evaluate_prior(args.model, args.data, fit_on=args.fit_on, name=args.name,
                                exp_dir=args.exp, checkpoint=args.checkpoint,
                                batch_size=args.batch_size,
                                samples_per_class=args.samples_per_class,
                                temperature=args.temperature, seed=args.seed,
                                device=args.device, progress=progress(args),
                                alignments=args.alignments, guidance=args.guidance,
                                draws_per_utterance=args.draws_per_utterance)
    print_results([result], format_prior_table)
    return 0


def _temperature(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _add_guidance_argument(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument("--guidance", type=_temperature, default=0.0, metavar="W",
                   help=f"class-conditional PixelCNN priors: guidance weight{what}, drawing "
                        f"from (1 + W) x the class's logits - W x the unconditional ones (the "
                        f"learnt 'no class' of a prior trained with model.class_dropout, else "
                        f"the mean class; classifier-free guidance; 0 = none, README 'Priors')")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sample`` to ``speechvq <command>``."""
    p = add_command(
        sub, "sample", cmd_sample, help="draw from a prior: images or audio, plus the codes",
        description="Sample N code grids from a prior (`speechvq train` with task: prior) and "
                    "decode them with the VQ-VAE whose codes it models: images -> OUT/sample_"
                    "NNN.png and OUT/grid.png; speech -> OUT/sample_NNN.wav (log-mel head + "
                    "Griffin-Lim, CPU); always OUT/codes/, a code dump of the samples. A "
                    "conditional prior without --class/--speaker goes through its classes in "
                    "turn (or takes the prompt items').\n\nexamples:\n"
                    "  speechvq sample --model exp/images_prior -n 16 --class 3 -o samples/3\n"
                    "  speechvq sample --model exp/images_prior --per-class 10 -o samples\n"
                    "  speechvq sample --model exp/mini_prior -n 4 --prompt dump/codes/test "
                    "--prompt-length 50 -o samples/continued")
    add_model_arguments(p)
    p.add_argument("-n", type=positive_int, help="samples to draw")
    p.add_argument("-o", "--out", required=True, help="output folder")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--class", dest="class_name", metavar="C", help="class of every sample")
    who.add_argument("--speaker", metavar="S", help="speaker of every sample")
    who.add_argument("--per-class", type=positive_int, metavar="N",
                     help="N samples of every class, class by class (instead of -n); "
                          "grid.png has a row per class")
    p.add_argument("--prompt", metavar="DATA", help="code dump whose items' first codes are kept")
    p.add_argument("--prompt-length", type=positive_int, metavar="L",
                   help="codes of each prompt item kept, in raster order")
    p.add_argument("--length", type=positive_int, metavar="T",
                   help="codes per sample of a 1-D (speech) prior (default: its training crop)")
    p.add_argument("--temperature", type=_temperature, default=1.0, help="0 = greedy")
    _add_guidance_argument(p)
    add_seed_argument(p, "the draws")
    add_engine_argument(p, "a speech (wavenet) prior")


def register_evaluate(kinds: argparse._SubParsersAction) -> None:
    """Add ``prior`` to ``speechvq evaluate <what>``."""
    e = add_command(
        kinds, "prior", cmd_evaluate_prior, help="a prior's bits per code vs n-gram baselines",
        description="Held-out negative log-likelihood in bits per code of a prior on a code "
                    "dump, beside uniform (log2 K), unigram and a bigram over the previous code "
                    "in raster order interpolated with the unigram (counts from the prior's "
                    "training codes, weight tuned on their held-out part); bits/dim for an "
                    "image VQ-VAE with the categorical decoder; for a class-conditional image "
                    "prior, the share of samples a classifier of the real training images "
                    "labels as the class asked for. Writes EXP/eval/prior_<name>.json.\n\n"
                    "example:\n  speechvq evaluate prior --model exp/images_prior --data "
                    "dump/codes/test")
    add_model_arguments(e)
    e.add_argument("--data", required=True, metavar="CODES", help="the scored code dump")
    e.add_argument("--fit-on", metavar="CODES", help="code dump the baselines count on "
                                                     "(default: the prior's training codes)")
    e.add_argument("--name", help="result name (default: the dump's folder name)")
    add_results_exp_argument(e)
    e.add_argument("--samples-per-class", type=int, default=50, metavar="N",
                   help="class-conditional image priors: samples per class the classifier "
                        "scores (0: none)")
    e.add_argument("--temperature", type=_temperature, default=1.0,
                   help="softmax temperature of those samples, and of the speech samples "
                        "scored with --alignments (0 = greedy)")
    e.add_argument("--alignments", metavar="CTM",
                   help="speech priors: the training data's phones.ctm (or its data dir); "
                        "samples and continuations of the test items (first second given) "
                        "are read as phones and scored by a phone bigram, beside the code "
                        "bigram's, the unigram's and the real codes'")
    _add_guidance_argument(e, " of the scored samples")
    e.add_argument("--draws-per-utterance", type=positive_int, default=None, metavar="N",
                   help="with --alignments: sequences (default 10) the prior, the code bigram "
                   "and the unigram each draw per test utterance (its length; its first "
                   "second for continuations), pooled, so the figures' sampling noise is small "
                   "beside their differences")
    # 64: an item is one 8x8 grid or one utterance's codes, and the figures do not depend on it
    add_batch_size_argument(e, "items per prior batch when scoring (bits per code, class "
                            "information)", default=64)
    add_seed_argument(e, "sampling and the bootstrap intervals (the image classifier is always "
                      "trained at seed 0)")
    add_progress_argument(e)
