"""``speechvq prepare``, ``validate``, ``fix`` and ``dump``: corpora -> Kaldi data dirs -> the
training dump (stages 0 and 1). The work is in `speechvq.data`; its modules are imported by the
commands, not here, so ``speechvq --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechvq.cli.common import (add_command, add_progress_argument, add_seed_argument,
                                 int_range, positive_int, print_splits, progress,
                                 warnings_as_lines)
from speechvq.config.speech import MAX_SAMPLE_RATE


def cmd_prepare(args: argparse.Namespace) -> int:
    warnings_as_lines("prepare")
    if args.corpus == "builtin":
        from speechvq.data.builtin.corpus import prepare_builtin
        splits = prepare_builtin(args.out, size=args.size, seed=args.seed,
                                 use_cache=not args.no_cache, nj=args.nj,
                                 progress=progress(args))
    else:
        from speechvq.data.speech.corpora import PREPARERS
        options = {"vctk": {"mic": getattr(args, "mic", None)},
                   "librispeech": {"alignments": getattr(args, "alignments", None)},
                   "timit": {"include_sa": getattr(args, "include_sa", False)},
                   "folder": {}}[args.corpus]
        splits = PREPARERS[args.corpus](args.src, args.out, progress=progress(args), **options)
    print_splits(splits)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    checked = _check_dump(Path(args.data))
    if checked is not None:
        what, verified = checked
        sums = "checksums match" if verified else \
            "no checksums recorded (made by an older speechvq)"
        print(f"{args.data}: OK, {what}, {sums}")
        return 0
    from speechvq.data.speech.kaldi import validate_data_dir
    d = validate_data_dir(args.data)
    extra = [name for name, present in (("text", d.text), ("segments", d.segments),
                                        ("phones.ctm", d.ctm)) if present is not None]
    print(f"{args.data}: OK, {len(d.utt2spk)} utterances, {len(d.speakers())} speakers"
          + (f" (+ {', '.join(extra)})" if extra else ""))
    return 0


def _check_dump(path: Path) -> tuple[str, bool] | None:
    """Open the dump at `path` (speech, image, video or code dump, told apart by their files)
    and check its files against their checksums: (what it holds, whether checksums were
    recorded), or None when `path` is no dump (a Kaldi dir)."""
    if (path / "dump.json").is_file():
        from speechvq.data.speech.dumpfile import SpeechDump
        dump = SpeechDump(path)
        return f"dump of {len(dump)} utterances, {len(dump.speakers)} speakers", dump.verify()
    if (path / "info.json").is_file() and (path / "images.npy").is_file():
        from speechvq.data.images.dump import ImageDump
        images = ImageDump.open(path)
        h, w, c = images.shape
        return (f"image dump of {len(images)} {h}x{w}x{c} images, {len(images.classes)} "
                f"classes", images.verify())
    if (path / "info.json").is_file() and (path / "clips.npy").is_file():
        from speechvq.data.video.dump import VideoDump
        clips = VideoDump.open(path)
        h, w, c = clips.frame_shape
        return (f"video dump of {len(clips)} clips of {clips.frames} {h}x{w}x{c} frames",
                clips.verify())
    if (path / "codes.json").is_file():
        from speechvq.data.code_dump import CodeDump
        codes = CodeDump.open(path)
        return (f"code dump of {len(codes)} {codes.modality} items, {codes.codes.shape[0]} "
                f"codes of K={codes.codebook_size}", codes.verify())
    return None


def cmd_fix(args: argparse.Namespace) -> int:
    from speechvq.data.speech.fix import fix_data_dir
    from speechvq.data.speech.kaldi import validate_data_dir
    counts = fix_data_dir(args.data)
    print(f"{args.data}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    validate_data_dir(args.data)  # what fix cannot repair (pipes, segment times, ...)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    from speechvq.data.speech.dump import dump_data_dir
    out = dump_data_dir(args.data, args.out, sample_rate=args.sample_rate,
                        normalize=args.normalize, nj=args.nj, skip_bad=args.skip_bad,
                        progress=progress(args))
    print(out)
    return 0


# Corpora read from a copy on disk: (help, their own options as (flag, add_argument keywords)).
CORPORA = {
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


def _add_prepare_command(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "prepare", cmd_prepare, help="corpus -> Kaldi data dirs (stage 0)",
        description="Write Kaldi data dirs (wav.scp, utt2spk, spk2utt, text, and phones.ctm + "
                    "phones.txt where the corpus has alignments) for each split of a corpus, "
                    "sorted in LC_ALL=C order, with absolute audio paths. Prints `split<TAB>dir` "
                    "per split.\n\nexamples:\n  speechvq prepare builtin data/builtin\n"
                    "  speechvq prepare vctk /data/VCTK-Corpus-0.92 data/vctk --mic mic1\n"
                    "  speechvq prepare folder ../shared/data/real/vctk data/real_vctk")
    corpora = p.add_subparsers(dest="corpus", metavar="<corpus>", required=True)
    b = add_command(corpora, "builtin", None,
                    help="the built-in multi-speaker corpus (eSpeak NG, exact alignments)",
                    description="Synthesise the built-in English corpus (train, dev, test, "
                                "test_unseen, test_reread) with exact phone alignments. Needs "
                                "the `builtin` extra (pip install \"speechvq[builtin]\"). "
                                "Cached under $SPEECHVQ_CACHE (default ~/.cache/speechvq).")
    b.add_argument("out", help="output folder; one Kaldi dir per split inside")
    b.add_argument("--size", choices=("tiny", "default", "large"), default="default",
                   help="tiny: seconds (tests); default: the mini recipe; large: a few hours")
    add_seed_argument(b, "sentences, splits and voices")
    b.add_argument("--no-cache", action="store_true", help="synthesise afresh, no cache")
    b.add_argument("--nj", type=positive_int, default=2, help="parallel synthesis processes")
    add_progress_argument(b)
    for name, (text, options) in CORPORA.items():
        c = add_command(corpora, name, None, help=text, description=text)
        c.add_argument("src", help="the corpus as distributed")
        c.add_argument("out", help="output folder; one Kaldi dir per split inside")
        for flag, kwargs in options:
            c.add_argument(flag, **kwargs)
        add_progress_argument(c)


def _add_validate_commands(sub: argparse._SubParsersAction) -> None:
    v = add_command(sub, "validate", cmd_validate,
                    help="check a Kaldi data dir (as Kaldi's validate_data_dir.sh) or a dump",
                    description="Check a Kaldi data dir: required files, LC_ALL=C order, "
                                "unique ids, consistent utt2spk/spk2utt/wav.scp/text/"
                                "segments/phones.ctm, audio files present, segments inside "
                                "their recordings. Or check a dump (speech, images, video or "
                                "codes): its structure, and every file against the checksum "
                                "recorded when it was made. The first problem is reported "
                                "with its file, line and fix; exit status 2.")
    v.add_argument("data", help="Kaldi data dir or dump")
    f = add_command(sub, "fix", cmd_fix,
                    help="sort a Kaldi data dir and drop inconsistent entries "
                         "(as fix_data_dir.sh)",
                    description="Sort every file in LC_ALL=C order, drop utterances missing "
                                "from any file or whose audio is missing, regenerate "
                                "spk2utt. The original files are kept in DATA/.backup/ "
                                "(.backup.1/, ... on later runs).")
    f.add_argument("data", help="Kaldi data dir")


def _add_dump_command(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "dump", cmd_dump, help="Kaldi data dir -> training dump (stage 1)",
        description="Decode every file once, resample to the model rate, and store one "
                    "contiguous int16 array + index (memory-mapped when training), speakers.txt "
                    "and the phone alignments. Built in OUT.tmp/ and renamed when complete; a "
                    "rerun after a kill continues; a complete OUT is skipped.\n\nexample:\n"
                    "  speechvq dump data/builtin/train dump/builtin/train --nj 2")
    p.add_argument("data", help="Kaldi data dir")
    p.add_argument("out", help="dump folder to create")
    p.add_argument("--nj", type=positive_int, default=1, help="parallel decoding processes")
    p.add_argument("--sample-rate", type=int_range(1000, MAX_SAMPLE_RATE), default=16000,
                   help="model sample rate in Hz")
    p.add_argument("--normalize", action="store_true",
                   help="peak-normalise each utterance (default: only scale down where |x| > 1)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out corrupt/empty/silent files (listed in OUT/skipped.txt) "
                        "instead of stopping")
    add_progress_argument(p)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``prepare``, ``validate``, ``fix`` and ``dump`` to ``speechvq <command>``."""
    _add_prepare_command(sub)
    _add_validate_commands(sub)
    _add_dump_command(sub)
