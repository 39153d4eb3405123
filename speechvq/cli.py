"""``speechvq <command>``: a thin argparse layer over the library.

Each command parses its arguments, resolves and validates its config (before it touches any data
path), and calls one library function. Errors a user can cause arrive as `SpeechVQError` and are
printed as one line, ``speechvq <command>: error: <message>``, with exit status 2; any other
exception is a bug and keeps its traceback. Commands whose library part is not built yet are not
registered (``speechvq --help`` lists what works).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable, Sequence

from speechvq import __version__
from speechvq.config import Config, dump_config, load_config
from speechvq.errors import ConfigError, SpeechVQError

EPILOG = ("Run `speechvq <command> --help` for a command's options. Config keys are set with "
          "key=value overrides, e.g. model.quantizer.codebook_size=128; `speechvq config` lists "
          "them all with their defaults.")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and shows an option's default when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = action.default is None or action.default is False \
            or action.default == argparse.SUPPRESS
        if "default" not in text and not hidden and action.option_strings:
            text += " (default: %(default)s)"
        return text


def add_config_arguments(parser: argparse.ArgumentParser, *, print_config: bool = True) -> None:
    """The config options every config-driven command shares."""
    parser.add_argument("--config", metavar="YAML", action="append", default=None,
                        help="config file; keys it omits keep their defaults; give several to "
                             "apply them in order (a later file overrides the keys it sets)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.lr=1e-4 model.encoder.strides=[2,2,2]")
    if print_config:
        parser.add_argument("--print-config", action="store_true",
                            help="print the resolved config as YAML and exit")


def resolve_config(args: argparse.Namespace) -> Config:
    """Load and validate the command's config; first thing every config-driven command does."""
    return load_config(args.config, args.overrides)


# ------------------------------------------------------------------------------------ commands


def cmd_config(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    sys.stdout.write(dump_config(cfg, comments=not args.no_comments))
    return 0


def _add_config_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config", formatter_class=_Formatter,
        help="print the resolved config (defaults <- --config <- overrides) and check it",
        description="Resolve a config exactly as `speechvq train` would (defaults, then the "
                    "YAML file, then key=value overrides), validate it, and print it as YAML with "
                    "each key's meaning and the paper's default. Exit status 2 names the first "
                    "bad key.\n\nexample:\n  speechvq config --config conf/train.yaml "
                    "model.quantizer.codebook_size=128")
    add_config_arguments(p, print_config=False)
    p.add_argument("--no-comments", action="store_true", help="plain YAML without the key docs")
    p.set_defaults(func=cmd_config)


def positive_int(text: str) -> int:
    """argparse type of counts that must be at least 1 (batch sizes, jobs, utterances, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_progress_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "no_progress", False)


def _warnings_as_lines(command: str) -> None:
    """Library warnings (e.g. a corpus missing some transcripts) as one line each."""
    warnings.formatwarning = (lambda message, category, *a, **k:
                              f"speechvq {command}: warning: {message}\n")


def _print_splits(splits: dict) -> None:
    for name, path in splits.items():
        print(f"{name}\t{path}")


def cmd_prepare(args: argparse.Namespace) -> int:
    _warnings_as_lines("prepare")
    if args.corpus == "builtin":
        from speechvq.data.builtin.corpus import prepare_builtin
        splits = prepare_builtin(args.out, size=args.size, seed=args.seed,
                                 use_cache=not args.no_cache, nj=args.nj,
                                 progress=_progress(args))
    else:
        from speechvq.data.speech.corpora import PREPARERS
        options = {"vctk": {"mic": getattr(args, "mic", None)},
                   "librispeech": {"alignments": getattr(args, "alignments", None)},
                   "timit": {"include_sa": getattr(args, "include_sa", False)},
                   "folder": {}}[args.corpus]
        splits = PREPARERS[args.corpus](args.src, args.out, progress=_progress(args), **options)
    _print_splits(splits)
    return 0


def _add_prepare_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", formatter_class=_Formatter, help="corpus -> Kaldi data dirs (stage 0)",
        description="Write Kaldi data dirs (wav.scp, utt2spk, spk2utt, text, and phones.ctm + "
                    "phones.txt where the corpus has alignments) for each split of a corpus, "
                    "sorted in LC_ALL=C order, with absolute audio paths. Prints `split<TAB>dir` "
                    "per split.\n\nexamples:\n  speechvq prepare builtin data/builtin\n"
                    "  speechvq prepare vctk /data/VCTK-Corpus-0.92 data/vctk --mic mic1\n"
                    "  speechvq prepare folder ../shared/data/real/vctk data/real_vctk")
    corpora = p.add_subparsers(dest="corpus", metavar="<corpus>", required=True)
    b = corpora.add_parser("builtin", formatter_class=_Formatter,
                           help="the built-in multi-speaker corpus (eSpeak NG, exact alignments)",
                           description="Synthesise the built-in English corpus (train, dev, "
                                       "test, test_unseen, test_reread) with exact phone "
                                       "alignments. Needs "
                                       "the `builtin` extra (pip install \"speechvq[builtin]\"). "
                                       "Cached under $SPEECHVQ_CACHE (default "
                                       "~/.cache/speechvq).")
    b.add_argument("out", help="output folder; one Kaldi dir per split inside")
    b.add_argument("--size", choices=("tiny", "default", "large"), default="default",
                   help="tiny: seconds (tests); default: the mini recipe; large: a few hours")
    b.add_argument("--seed", type=int, default=0, help="sentences, splits and voices")
    b.add_argument("--no-cache", action="store_true", help="synthesise afresh, no cache")
    b.add_argument("--nj", type=positive_int, default=2, help="parallel synthesis processes")
    _add_progress_argument(b)
    specs = {
        "vctk": ("VCTK 0.92 (wav48_silence_trimmed/, FLAC) or 0.80 (wav48/, WAV)",
                 [("--mic", dict(choices=("mic1", "mic2"), default="mic1",
                                 help="VCTK 0.92 microphone"))]),
        "librispeech": ("LibriSpeech: every SPLIT folder found (train-clean-100, dev-clean, ...)",
                        [("--alignments", dict(metavar="DIR", default=None,
                                               help="Montreal Forced Aligner TextGrids -> "
                                                    "phones.ctm"))]),
        "timit": ("TIMIT (upper- or lower-case tree): train, dev, test, test_core, 39 phones",
                  [("--include-sa", dict(action="store_true",
                                         help="keep the SA1/SA2 dialect sentences"))]),
        "folder": ("a plain folder <speaker>/<utt>.wav (.flac, ...), optional .txt/.lab", []),
    }
    for name, (text, options) in specs.items():
        c = corpora.add_parser(name, formatter_class=_Formatter, help=text, description=text)
        c.add_argument("src", help="the corpus as distributed")
        c.add_argument("out", help="output folder; one Kaldi dir per split inside")
        for flag, kwargs in options:
            c.add_argument(flag, **kwargs)
        _add_progress_argument(c)
    p.set_defaults(func=cmd_prepare)


def cmd_validate(args: argparse.Namespace) -> int:
    from speechvq.data.speech.kaldi import validate_data_dir
    d = validate_data_dir(args.data)
    extra = [name for name, present in (("text", d.text), ("segments", d.segments),
                                        ("phones.ctm", d.ctm)) if present is not None]
    print(f"{args.data}: OK, {len(d.utt2spk)} utterances, {len(d.speakers())} speakers"
          + (f" (+ {', '.join(extra)})" if extra else ""))
    return 0


def cmd_fix(args: argparse.Namespace) -> int:
    from speechvq.data.speech.kaldi import fix_data_dir, validate_data_dir
    counts = fix_data_dir(args.data)
    print(f"{args.data}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    validate_data_dir(args.data)  # what fix cannot repair (pipes, segment times, ...)
    return 0


def _add_validate_commands(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("validate", formatter_class=_Formatter,
                       help="check a Kaldi data dir (as Kaldi's validate_data_dir.sh)",
                       description="Check a Kaldi data dir: required files, LC_ALL=C order, "
                                   "unique ids, consistent utt2spk/spk2utt/wav.scp/text/"
                                   "segments/phones.ctm, audio files present, segments inside "
                                   "their recordings. The first problem is reported with its "
                                   "file, line and fix; exit status 2.")
    v.add_argument("data", help="Kaldi data dir")
    v.set_defaults(func=cmd_validate)
    f = sub.add_parser("fix", formatter_class=_Formatter,
                       help="sort a Kaldi data dir and drop inconsistent entries "
                            "(as fix_data_dir.sh)",
                       description="Sort every file in LC_ALL=C order, drop utterances missing "
                                   "from any file or whose audio is missing, regenerate "
                                   "spk2utt. The original files are kept in DATA/.backup/ (.backup.1/, ... "
                                   "on later runs).")
    f.add_argument("data", help="Kaldi data dir")
    f.set_defaults(func=cmd_fix)


def cmd_dump(args: argparse.Namespace) -> int:
    from speechvq.data.speech.dump import dump_data_dir
    out = dump_data_dir(args.data, args.out, sample_rate=args.sample_rate,
                        normalize=args.normalize, nj=args.nj, skip_bad=args.skip_bad,
                        progress=_progress(args))
    print(out)
    return 0


def _add_dump_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dump", formatter_class=_Formatter, help="Kaldi data dir -> training dump (stage 1)",
        description="Decode every file once, resample to the model rate, and store one "
                    "contiguous int16 array + index (memory-mapped when training), speakers.txt "
                    "and the phone alignments. Built in OUT.tmp/ and renamed when complete; a "
                    "rerun after a kill continues; a complete OUT is skipped.\n\nexample:\n"
                    "  speechvq dump data/builtin/train dump/builtin/train --nj 2")
    p.add_argument("data", help="Kaldi data dir")
    p.add_argument("out", help="dump folder to create")
    p.add_argument("--nj", type=positive_int, default=1, help="parallel decoding processes")
    p.add_argument("--sample-rate", type=positive_int, default=16000, help="model sample rate in Hz")
    p.add_argument("--normalize", action="store_true",
                   help="peak-normalise each utterance (default: only scale down where |x| > 1)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out corrupt/empty/silent files (listed in OUT/skipped.txt) "
                        "instead of stopping")
    _add_progress_argument(p)
    p.set_defaults(func=cmd_dump)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)  # validated before any data path is touched
    if args.print_config:
        sys.stdout.write(dump_config(cfg))
        return 0
    if args.data is None or args.exp is None:
        raise ConfigError("--data DUMP and --exp EXP are both needed (or --print-config)")
    from speechvq.train import train_speech
    last = train_speech(cfg, args.data, args.exp, progress=_progress(args),
                        command=["speechvq", *args.argv])
    print(last)
    return 0


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", formatter_class=_Formatter, help="train or resume a VQ-VAE (stage 2)",
        description="Train a speech VQ-VAE on a dump for train.max_steps steps. Rerunning the "
                    "same command on an exp dir with checkpoints/last.pt resumes it exactly. "
                    "Multi-GPU: torchrun --nproc_per_node N $(which speechvq) train ...\n\n"
                    "EXP gets config.yaml, cmdline.txt, speakers.txt, checkpoints/ "
                    "(step_*.pt, last.pt), metrics.jsonl, log/ and TensorBoard events when "
                    "tensorboard is installed.\n\nexample:\n  speechvq train --config "
                    "conf/train.yaml --data dump/train --exp exp/mini train.max_steps=2000")
    p.add_argument("--data", metavar="DUMP", help="training dump (from `speechvq dump`)")
    p.add_argument("--exp", metavar="EXP", help="experiment dir")
    add_config_arguments(p)
    _add_progress_argument(p)
    p.set_defaults(func=cmd_train)


def _add_model_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", metavar="M", required=required,
                   help="exp dir (uses checkpoints/last.pt) or a .pt checkpoint")
    p.add_argument("--checkpoint", metavar="NAME", default=None,
                   help="another checkpoint of the exp dir, e.g. step_00001000.pt")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda:N")


def cmd_encode(args: argparse.Namespace) -> int:
    from speechvq.encode import encode_to_file
    codes = encode_to_file(args.model, args.data, args.out, fmt=args.format, dedup=args.dedup,
                           batch_size=args.batch_size, checkpoint=args.checkpoint,
                           device=args.device, progress=_progress(args))
    n_frames = sum(len(c) for c in codes.values())
    if args.dedup:
        from speechvq.data.codes import dedup
        n_units = sum(len(dedup(c)) for c in codes.values())
        print(f"{args.out}: {len(codes)} utterances, {n_units} units ({n_frames} frames before "
              f"deduplication)")
    else:
        print(f"{args.out}: {len(codes)} utterances, {n_frames} frames")
    return 0


def _add_encode_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode", formatter_class=_Formatter, help="audio -> discrete units (stage 3)",
        description="Encode every utterance of DATA (a Kaldi dir or a dump, any corpus) into "
                    "codes: code i covers samples [i*hop, (i+1)*hop) at the model's rate.\n\n"
                    "formats:\n  kaldi  `utt c1 c2 ...` per line, sorted by utt\n"
                    "  km     fairseq .km: one line of units per utt, in the same order, no ids\n"
                    "  gslm   GSLM `utt|c1 c2 ...`\n\nexample:\n  speechvq encode --model "
                    "exp/mini --data dump/test --out exp/mini/units/test.txt")
    _add_model_arguments(p)
    p.add_argument("--data", required=True, help="Kaldi data dir or dump")
    p.add_argument("--out", required=True, help="units file to write")
    p.add_argument("--format", choices=("kaldi", "km", "gslm"), default="kaldi")
    p.add_argument("--dedup", action="store_true",
                   help="collapse runs of the same unit (not for unit evaluation)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="utterances per batch")
    _add_progress_argument(p)
    p.set_defaults(func=cmd_encode)


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
                                   seed=args.seed, checkpoint=args.checkpoint, device=args.device)
        print(out)
        return 0
    if not (args.speakers or args.parallel_to) or not args.out:
        raise ConfigError("--data needs --out DIR and target speakers: --speakers S1,S2 and/or "
                          "--parallel-to REF (speakers who read the same sentences in REF)")
    result = convert.convert_data(args.model, args.data,
                                  args.speakers.split(",") if args.speakers else None, args.out,
                                  head=args.head, max_utts=args.max_utts,
                                  per_speaker=args.per_speaker, parallel_to=args.parallel_to,
                                  n_targets=args.n_targets,
                                  batch_size=args.batch_size, temperature=args.temperature,
                                  seed=args.seed, checkpoint=args.checkpoint,
                                  device=args.device, progress=_progress(args))
    print(f"{args.out}: {len(result.utt2spk)} conversions")
    return 0


def _add_convert_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", formatter_class=_Formatter, help="voice conversion (stage 4)",
        description="Encode the source, decode its codes with a target speaker's embedding.\n\n"
                    "heads:\n  wavenet  the paper's WaveNet, incremental sampling (use a GPU)\n"
                    "  mel      the log-mel head + Griffin-Lim (fast on CPU)\n"
                    "  auto     WaveNet on CUDA when present, else the mel head\n\nexamples:\n"
                    "  speechvq convert --model exp/vctk --src a.wav --speaker p225 -o out.wav\n"
                    "  speechvq convert --model exp/mini --data data/test --speakers f01,m02 "
                    "--out exp/mini/convert/test")
    _add_model_arguments(p)
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
    p.add_argument("--temperature", type=float, default=1.0, help="WaveNet sampling temperature")
    p.add_argument("--seed", type=int, default=0, help="WaveNet sampling seed")
    p.add_argument("--batch-size", type=positive_int, default=8, help="conversions per batch")
    p.add_argument("--list-speakers", action="store_true",
                   help="print the model's speakers and exit; with --data, only those who read "
                        "something there (an error when none does)")
    _add_progress_argument(p)
    p.set_defaults(func=cmd_convert)


def cmd_evaluate_units(args: argparse.Namespace) -> int:
    from speechvq.evaluation.speech import unit_eval
    if (args.model is None) == (args.units is None):
        raise ConfigError("give either --model M --data DATA, or --units FILE --frame-rate R "
                          "--alignments DATA_OR_CTM")
    if args.model is not None:
        if args.data is None:
            raise ConfigError("--model needs --data DATA (a dump or Kaldi dir with phones.ctm)")
        results = unit_eval.evaluate_units_model(
            args.model, args.data, fit_on=args.fit_on, name=args.name, exp_dir=args.exp,
            checkpoint=args.checkpoint, batch_size=args.batch_size,
            abx_max_triplets=args.abx_triplets, abx_items=args.abx_items,
            export_abx=args.export_abx, seed=args.seed, device=args.device,
            progress=_progress(args))
        for result in results:
            print(unit_eval.format_units_table(result))
            print(result["output"])
        return 0
    else:
        if args.frame_rate is None or args.alignments is None:
            raise ConfigError("--units needs --frame-rate R and --alignments DATA_OR_CTM")
        result = unit_eval.evaluate_units_file(
            args.units, args.frame_rate, args.alignments, fit_units=args.fit_units,
            fit_alignments=args.fit_alignments, codebook_size=args.codebook_size,
            name=args.name, exp_dir=args.exp, seed=args.seed, progress=_progress(args))
    print(unit_eval.format_units_table(result))
    print(result["output"])
    return 0


def cmd_evaluate_conversion(args: argparse.Namespace) -> int:
    from speechvq.evaluation.speech.conversion import evaluate_conversions, format_conversion
    names = args.name.split(",") if args.name else None
    if names is not None and len(names) != len(args.data):
        raise ConfigError(f"--name has {len(names)} names for {len(args.data)} --data dirs; give "
                          f"one per dir, comma-separated, or leave it out")
    results = evaluate_conversions(args.data, args.ref, args.model, names=names, train=args.train,
                                   src=args.src, exp_dir=args.exp, checkpoint=args.checkpoint,
                                   device=args.device, batch_size=args.batch_size,
                                   seed=args.seed, progress=_progress(args))
    for result in results:
        print(format_conversion(result))
        print(result["output"])
    return 0


def _add_evaluate_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", formatter_class=_Formatter, help="unit and conversion metrics (stages 3-4)",
        description="Score discrete units against phone alignments, or conversions against "
                    "real recordings. Results go to EXP/eval/<what>_<name>.json (EXP = the "
                    "--model exp dir, or --exp) and a table is printed.")
    kinds = p.add_subparsers(dest="what", metavar="<what>", required=True)
    u = kinds.add_parser(
        "units", formatter_class=_Formatter, help="how phone-like the units are",
        description="Mapping accuracy (with and without SIL), phone and cluster purity, PNMI, "
                    "perplexity, codes used, bitrate and ABX within/across speakers, for the "
                    "model beside three baselines on the same frames (majority phone, random "
                    "codes, MFCC+deltas k-means with the same K). The code-to-phone mapping is "
                    "fitted on --fit-on (default: the scored data itself).\n\nexamples:\n"
                    "  speechvq evaluate units --model exp/mini --data dump/test dump/test_unseen --fit-on "
                    "dump/train\n  speechvq evaluate units --units hubert.txt "
                    "--frame-rate 50 --alignments data/test --exp exp/hubert")
    _add_model_arguments(u, required=False)
    u.add_argument("--data", nargs="+", metavar="DATA",
                   help="scored data (dumps or Kaldi dirs) with phone alignments; with several, "
                        "everything fitted on --fit-on is computed once")
    u.add_argument("--fit-on", metavar="DATA", help="data the mapping and k-means are fitted on")
    u.add_argument("--units", metavar="FILE", help="units of any system (`utt c1 c2 ...`), "
                                                   "one per frame (not deduplicated)")
    u.add_argument("--frame-rate", type=float, metavar="R", help="units per second of --units")
    u.add_argument("--alignments", metavar="DATA_OR_CTM",
                   help="for --units: a Kaldi dir / dump with phones.ctm, or a phones.ctm file")
    u.add_argument("--fit-units", metavar="FILE", help="for --units: units to fit the mapping")
    u.add_argument("--fit-alignments", metavar="DATA_OR_CTM", help="alignments of --fit-units")
    u.add_argument("--codebook-size", type=positive_int, default=None,
                   help="for --units: K (default: largest unit + 1)")
    u.add_argument("--name", help="result name (default: the data's folder name)")
    u.add_argument("--exp", metavar="EXP", help="exp dir for the results (default: --model's)")
    u.add_argument("--abx-triplets", type=positive_int, default=5000,
                   help="ABX: every triplet is scored up to this many per condition, else a "
                        "seeded sample whose 95%% interval is under 0.2 points")
    u.add_argument("--abx-items", default="phone", metavar="SPAN",
                   help="ABX items: 'phone', the centre phone in its context (ZeroSpeech ABX2, "
                        "within context), or 'triphone', the three phones (libri-light)")
    u.add_argument("--export-abx", metavar="DIR", help="also write DIR/<name>/: the ZeroSpeech "
                   ".item file, one .npy of features per utterance and the zrc-abx2 commands")
    u.add_argument("--batch-size", type=positive_int, default=8, help="utterances per encoder batch")
    u.add_argument("--seed", type=int, default=0, help="baselines, k-means and ABX sampling")
    _add_progress_argument(u)
    u.set_defaults(func=cmd_evaluate_units)
    c = kinds.add_parser(
        "conversion", formatter_class=_Formatter, help="speaker, content and MCD of conversions",
        description="Speaker-ID (accuracy on held-out real audio first, then the share of "
                    "converted files identified as the target and as the source), content "
                    "(code agreement with the source, mapping accuracy against the source's "
                    "alignment) and MCD against the target's real reading of the same sentence "
                    "in --ref, beside the unconverted source (baseline) and a topline.\n\n"
                    "example:\n  speechvq evaluate conversion --model exp/mini --data "
                    "exp/mini/convert/test_mel exp/mini/convert/test_unseen_mel --ref data/test "
                    "data/test_reread --train data/train")
    _add_model_arguments(c)
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
    c.add_argument("--exp", metavar="EXP", help="exp dir for the results (default: --model's)")
    c.add_argument("--batch-size", type=positive_int, default=8, help="utterances per encoder batch")
    c.add_argument("--seed", type=int, default=0, help="classifier and held-out split seed")
    _add_progress_argument(c)
    c.set_defaults(func=cmd_evaluate_conversion)


def cmd_report(args: argparse.Namespace) -> int:
    _warnings_as_lines("report")
    from speechvq.evaluation.report import make_report
    print(make_report(args.exp))
    return 0


def _add_report_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", formatter_class=_Formatter, help="report.md, report.json and figures (stage 5)",
        description="Gather EXP/eval/*.json, metrics.jsonl and config.yaml into "
                    "EXP/report/report.md, report.json (every number with the command and data "
                    "that produced it) and PNG figures: training curves, code usage, code-phone "
                    "co-occurrence, spectrograms of conversions.\n\nexample:\n"
                    "  speechvq report --exp exp/mini")
    p.add_argument("--exp", required=True, metavar="EXP", help="experiment dir")
    p.set_defaults(func=cmd_report)


# Each entry adds one sub-command; a command is registered only once its library part exists.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_prepare_command,
    _add_validate_commands,
    _add_dump_command,
    _add_train_command,
    _add_encode_command,
    _add_convert_command,
    _add_evaluate_command,
    _add_report_command,
    _add_config_command,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechvq", formatter_class=_Formatter, epilog=EPILOG,
        description="Discrete speech units and voice conversion with VQ-VAEs "
                    "(van den Oord et al., 2017).")
    parser.add_argument("--version", action="version", version=f"speechvq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``speechvq`` console script; returns the exit status."""
    parser = build_parser()
    # key=value overrides may come anywhere, also after options (argparse alone would only take
    # them before the first option).
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    args.argv = argv  # the command as typed, for cmdline.txt
    if extra:
        if hasattr(args, "overrides") and all("=" in a and not a.startswith("-") for a in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except SpeechVQError as e:
        message = " ".join(str(e).split())  # always one line
        print(f"speechvq {args.command}: error: {message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"speechvq {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`speechvq ... | head`): stop quietly, as cat or ls would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
