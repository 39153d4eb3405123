"""``speechvq convert`` and ``speechvq evaluate conversion``: voice conversion, and how well the
converted speech carries the target speaker and the source content (stage 4). The work is
`speechvq.convert` and `speechvq.evaluation.speech.conversion`, imported by the commands (they
bring torch and librosa) so ``speechvq --help`` stays fast.
"""

from __future__ import annotations

import argparse

from speechvq.cli.common import (add_batch_size_argument, add_command, add_engine_argument,
                                 add_jobs_arguments, add_model_arguments,
                                 add_progress_argument, add_results_exp_argument,
                                 add_seed_argument, float_range, positive_int, print_results,
                                 progress, results_claim)
from speechvq.errors import ConfigError


def cmd_convert(args: argparse.Namespace) -> int:
    from speechvq import convert
    if args.list_speakers:
        print("\n".join(convert.list_speakers(args.model, args.data, checkpoint=args.checkpoint)))
        return 0
    single = args.src is not None
    if single == (args.data is not None):
        raise ConfigError("give either --src a.wav --speaker S -o out.wav, or --data DATA "
                          "--speakers S1,S2 --out DIR")
    if single:
        if not args.speaker or not args.output:
            raise ConfigError("--src needs --speaker S and -o out.wav")
        from speechvq.audio import check_audio_name
        check_audio_name(args.output)  # before the model loads and a long conversion runs
        out = convert.convert_file(args.model, args.src, args.speaker, args.output,
                                   head=args.head, temperature=args.temperature,
                                   seed=args.seed, checkpoint=args.checkpoint, device=args.device,
                                   engine=args.engine)
        print(out)
        return 0
    if not (args.speakers or args.parallel_to or args.pairs) or not args.out:
        raise ConfigError("--data needs --out DIR and target speakers: --speakers S1,S2 and/or "
                          "--parallel-to REF (speakers who read the same sentences in REF)")
    result = convert.convert_data(args.model, args.data,
                                  args.speakers.split(",") if args.speakers else None, args.out,
                                  head=args.head, max_utts=args.max_utts,
                                  per_speaker=args.per_speaker, parallel_to=args.parallel_to,
                                  n_targets=args.n_targets,
                                  batch_size=args.batch_size, temperature=args.temperature,
                                  seed=args.seed, checkpoint=args.checkpoint,
                                  device=args.device, progress=progress(args),
                                  engine=args.engine, pairs_file=args.pairs, nj=args.nj,
                                  cmd=args.cmd)
    print(f"{args.out}: {len(result.utt2spk)} conversions")
    return 0


def cmd_evaluate_conversion(args: argparse.Namespace) -> int:
    from speechvq.evaluation.speech.conversion import evaluate_conversions, format_conversion
    names = args.name.split(",") if args.name else None
    if names is not None and len(names) != len(args.data):
        raise ConfigError(f"--name has {len(names)} names for {len(args.data)} --data dirs; give "
                          f"one per dir, comma-separated, or leave it out")
    with results_claim(args, *args.data, *args.ref, args.train, args.src):
        results = evaluate_conversions(
            args.data, args.ref, args.model, names=names, train=args.train, src=args.src,
            exp_dir=args.exp, checkpoint=args.checkpoint, device=args.device,
            batch_size=args.batch_size, seed=args.seed, progress=progress(args))
    print_results(results, format_conversion)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``convert`` to ``speechvq <command>``."""
    p = add_command(
        sub, "convert", cmd_convert, help="voice conversion (stage 4)",
        description="Encode the source, decode its codes with a target speaker's embedding.\n\n"
                    "heads:\n  wavenet  the paper's WaveNet, incremental sampling (use a GPU)\n"
                    "  mel      the log-mel head + Griffin-Lim (fast on CPU)\n"
                    "  auto     WaveNet on CUDA when present, else the mel head\n\nexamples:\n"
                    "  speechvq convert --model exp/vctk --src a.wav --speaker p225 -o out.wav\n"
                    "  speechvq convert --model exp/mini --data data/test --speakers f01,m02 "
                    "--out exp/mini/convert/test")
    add_model_arguments(p)
    p.add_argument("--src", help="one source audio file (any rate; resampled)")
    p.add_argument("--speaker", help="target speaker of --src")
    p.add_argument("-o", "--output", help="output wav of --src")
    p.add_argument("--data", help="many sources: a Kaldi data dir or dump")
    p.add_argument("--speakers", help="comma-separated target speakers for --data")
    p.add_argument("--out", help="output Kaldi dir for --data (wav.scp, utt2spk, utt2src)")
    p.add_argument("--parallel-to", metavar="REF",
                   help="for --data: convert each source only to (--speakers, or any model "
                        "speaker) who read the same sentence in REF, so it has a parallel target")
    p.add_argument("--n-targets", type=positive_int, default=None,
                   help="for --data: at most this many targets per source (first in sorted order)")
    p.add_argument("--max-utts", type=positive_int, default=None,
                   help="convert only the first N source utterances (sorted)")
    p.add_argument("--per-speaker", type=positive_int, default=None, metavar="N",
                   help="take at most the first N utterances of each source speaker (before "
                        "--max-utts), so the sources span speakers")
    p.add_argument("--head", choices=("auto", "wavenet", "mel"), default="auto",
                   help="decoder that renders the codes (see above)")
    p.add_argument("--temperature", type=float_range(0, 100), default=1.0,
                   help="WaveNet sampling temperature")
    add_engine_argument(p, "--head wavenet (model.decoder.wavenet.engine)")
    add_seed_argument(p, "WaveNet sampling seed")
    p.add_argument("--pairs", metavar="FILE",
                   help="for --data: convert exactly the lines `<output utt> <source utt> "
                        "<target speaker>` of FILE (instead of --speakers/--parallel-to)")
    add_batch_size_argument(p, "conversions per batch")
    add_jobs_arguments(p, "for --data: each job converts whole batches with the seeds one "
                          "process uses, so the wavs equal --nj 1's")
    p.add_argument("--list-speakers", action="store_true",
                   help="print the model's speakers and exit; with --data, only those who read "
                        "something there (an error when none does)")
    add_progress_argument(p)


def register_evaluate(kinds: argparse._SubParsersAction) -> None:
    """Add ``conversion`` to ``speechvq evaluate <what>``."""
    c = add_command(
        kinds, "conversion", cmd_evaluate_conversion,
        help="speaker, content and MCD of conversions",
        description="Speaker-ID (accuracy on held-out real audio first, then the share of "
                    "converted files identified as the target and as the source), content "
                    "(code agreement with the source, mapping accuracy against the source's "
                    "alignment) and MCD against the target's real reading of the same sentence "
                    "in --ref, beside the unconverted source (baseline) and a topline.\n\n"
                    "example:\n  speechvq evaluate conversion --model exp/mini --data "
                    "exp/mini/convert/test_mel exp/mini/convert/test_unseen_mel --ref data/test "
                    "data/test_reread --train data/train")
    add_model_arguments(c)
    c.add_argument("--data", required=True, nargs="+", metavar="CONVERTED",
                   help="output dir(s) of `speechvq convert --data` (wav.scp, utt2spk, "
                        "utt2src); with several, the speaker classifier and the training codes "
                        "are computed once")
    c.add_argument("--ref", required=True, nargs="+", metavar="DATA",
                   help="real recordings with text: the targets' readings of the sentences; "
                        "further dirs add more readings (e.g. data/test data/test_reread: a "
                        "second reading by the target gives the MCD topline)")
    c.add_argument("--train", metavar="DATA",
                   help="real training audio for the speaker classifier and the phone mapping "
                        "(default: the first --ref, with a held-out split)")
    c.add_argument("--src", metavar="DATA", help="where the source utterances are (default: "
                                                 "--ref, --train, then dirs beside --ref)")
    c.add_argument("--name", help="result name, or comma-separated names, one per --data "
                                  "(default: each CONVERTED's folder name)")
    add_results_exp_argument(c)
    add_batch_size_argument(c, "utterances per encoder batch")
    add_seed_argument(c, "classifier and held-out split seed")
    add_progress_argument(c)
