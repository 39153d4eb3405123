"""``speechvq encode`` and ``speechvq evaluate units``: audio -> discrete units, and how phone-like
units are (stage 3). The work is `speechvq.encode` and `speechvq.evaluation.speech.unit_eval`,
imported by the commands (they bring torch) so ``speechvq --help`` stays fast.
"""

from __future__ import annotations

import argparse

from speechvq.cli.common import (add_batch_size_argument, add_command, add_jobs_arguments,
                                 add_model_arguments,
                                 add_progress_argument, add_results_exp_argument,
                                 add_seed_argument, float_range, positive_int, print_results,
                                 progress, results_claim, warnings_as_lines)
from speechvq.errors import ConfigError


def cmd_encode(args: argparse.Namespace) -> int:
    warnings_as_lines("encode")
    if (args.out is None) == (args.codes_out is None):
        raise ConfigError("give one of --out FILE (a units file, speech) or --codes-out DIR (a "
                          "code dump for `speechvq train` with task: prior)")
    if args.codes_out is not None:
        return _encode_code_dump(args)
    from speechvq.encode import encode_to_file
    codes = encode_to_file(args.model, args.data, args.out, fmt=args.format, dedup=args.dedup,
                           batch_size=args.batch_size, checkpoint=args.checkpoint,
                           device=args.device, progress=progress(args),
                           utt_list=args.utt_list, vectors_out=args.vectors, nj=args.nj,
                           cmd=args.cmd)
    n_frames = sum(len(c) for c in codes.values())
    if args.dedup:
        from speechvq.data.codes import dedup
        n_units = sum(len(dedup(c)) for c in codes.values())
        print(f"{args.out}: {len(codes)} utterances, {n_units} units ({n_frames} frames before "
              f"deduplication)")
    else:
        print(f"{args.out}: {len(codes)} utterances, {n_frames} frames")
    if args.format == "km":
        from speechvq.data.codes import manifest_path
        print(f"{manifest_path(args.out)}: their audio files (wav2vec manifest, same order)")
    return 0


def _encode_code_dump(args: argparse.Namespace) -> int:
    from speechvq.encode import encode_to_code_dump
    if args.format != "kaldi" or args.dedup:
        raise ConfigError("--format and --dedup apply to --out units files; a code dump "
                          "(--codes-out) keeps every frame's code")
    if args.nj > 1 or args.utt_list or args.vectors:
        raise ConfigError("--nj, --utt-list and --vectors apply to --out units files; a code "
                          "dump (--codes-out) is written by one process from all of --data")
    dump = encode_to_code_dump(args.model, args.data, args.codes_out,
                               batch_size=args.batch_size, checkpoint=args.checkpoint,
                               device=args.device, progress=progress(args))
    shape = "x".join(map(str, dump.grid)) if dump.grid else \
        f"{dump.meta['frame_rate_hz']:g} Hz"
    print(f"{args.codes_out}: {len(dump)} {dump.modality} items, {dump.codes.shape[0]} codes "
          f"({shape}) of K={dump.codebook_size}")
    return 0


def cmd_evaluate_units(args: argparse.Namespace) -> int:
    if (args.model is None) == (args.units is None):
        raise ConfigError("give either --model M --data DATA, or --units FILE --frame-rate R "
                          "--alignments DATA_OR_CTM")
    with results_claim(args, *(args.data or []), args.fit_on, args.units, args.alignments,
                       args.fit_units, args.fit_alignments):
        return _evaluate_units(args)


def _evaluate_units(args: argparse.Namespace) -> int:
    from speechvq.evaluation.speech import unit_eval
    if args.model is not None:
        if args.data is None:
            raise ConfigError("--model needs --data DATA (a dump or Kaldi dir with phones.ctm)")
        results = unit_eval.evaluate_units_model(
            args.model, args.data, fit_on=args.fit_on, name=args.name, exp_dir=args.exp,
            checkpoint=args.checkpoint, batch_size=args.batch_size,
            abx_max_triplets=args.abx_triplets, abx_items=args.abx_items,
            export_abx=args.export_abx, seed=args.seed, device=args.device,
            progress=progress(args), nj=args.nj, cmd=args.cmd)
    elif args.alignments is None and args.fit_units is None:
        if args.frame_rate is None:
            raise ConfigError("--units needs --frame-rate R (units per second)")
        results = [unit_eval.describe_units_file(
            args.units, args.frame_rate, codebook_size=args.codebook_size, name=args.name,
            exp_dir=args.exp, seed=args.seed)]
    else:
        if args.frame_rate is None or args.alignments is None:
            raise ConfigError("--units needs --frame-rate R and --alignments DATA_OR_CTM")
        results = [unit_eval.evaluate_units_file(
            args.units, args.frame_rate, args.alignments, fit_units=args.fit_units,
            fit_alignments=args.fit_alignments, codebook_size=args.codebook_size,
            name=args.name, exp_dir=args.exp, seed=args.seed, progress=progress(args))]
    print_results(results, unit_eval.format_units_table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``encode`` to ``speechvq <command>``."""
    p = add_command(
        sub, "encode", cmd_encode, help="audio -> discrete units (stage 3); codes for a prior",
        description="Encode every utterance of DATA (a Kaldi dir or a dump, any corpus) into "
                    "codes: code i covers samples [i*hop, (i+1)*hop) at the model's rate.\n\n"
                    "With --codes-out DIR instead of --out, write the code dump a prior trains "
                    "on (codes.npy uint16, index.tsv, conditions.txt, codes.json with K, the "
                    "grid or frame rate and the VQ-VAE checkpoint's path and SHA-256): for a "
                    "speech model one sequence per utterance (condition: its speaker), for an "
                    "image model one h x w grid per image of an image dump (condition: its "
                    "label), for a video model one t x h x w grid per clip of a video dump "
                    "(condition: none).\n\n"
                    "formats:\n  kaldi  `utt c1 c2 ...` per line, sorted by utt\n"
                    "  km     fairseq .km: one line of units per utt, no ids, and beside it\n"
                    "         <stem>.tsv, the wav2vec manifest of the audio files in that order\n"
                    "  gslm   GSLM `utt|c1 c2 ...`\n\nexample:\n  speechvq encode --model "
                    "exp/mini --data dump/test --out exp/mini/units/test.txt\n"
                    "  speechvq encode --model exp/images --data dump/images/train "
                    "--codes-out dump/codes/train")
    add_model_arguments(p)
    p.add_argument("--data", required=True, help="Kaldi data dir or dump (image model: an "
                                                 "image dump; video model: a video dump)")
    p.add_argument("--out", help="units file to write")
    p.add_argument("--codes-out", metavar="DIR", help="code dump to write (for a prior)")
    p.add_argument("--format", choices=("kaldi", "km", "gslm"), default="kaldi")
    p.add_argument("--dedup", action="store_true",
                   help="collapse runs of the same unit (not for unit evaluation)")
    p.add_argument("--utt-list", metavar="FILE",
                   help="encode only the utterances listed in FILE (the first field of each "
                        "line, so a Kaldi utt2spk works), as ESPnet's --key_file")
    p.add_argument("--vectors", metavar="FILE.npz",
                   help="also write the encoder outputs z_e, one (T_codes, D) float32 array "
                        "per utterance named after it (numpy .npz, no pickle)")
    add_batch_size_argument(p, "utterances per batch")
    add_jobs_arguments(p, "each job encodes whole batches, so the codes equal --nj 1's")
    add_progress_argument(p)


def register_evaluate(kinds: argparse._SubParsersAction) -> None:
    """Add ``units`` to ``speechvq evaluate <what>``."""
    u = add_command(
        kinds, "units", cmd_evaluate_units, help="how phone-like the units are",
        description="Mapping accuracy (with and without SIL), phone and cluster purity, PNMI, "
                    "perplexity, codes used, bitrate and ABX within/across speakers, for the "
                    "model beside three baselines on the same frames (majority phone, random "
                    "codes, MFCC+deltas k-means with the same K), each with a 95 %% bootstrap "
                    "interval over utterances (ABX: over items). The code-to-phone mapping is "
                    "fitted on --fit-on (default: the scored data itself). Data without phone "
                    "alignments (and --units without --alignments) gets the label-free "
                    "statistics: codes used, perplexity, bitrate (EXP/eval/"
                    "units_unscored_<name>.json).\n\nexamples:\n"
                    "  speechvq evaluate units --model exp/mini --data dump/test dump/test_unseen "
                    "--fit-on dump/train\n  speechvq evaluate units --units hubert.txt "
                    "--frame-rate 50 --alignments data/test --exp exp/hubert")
    add_model_arguments(u, required=False)
    u.add_argument("--data", nargs="+", metavar="DATA",
                   help="scored data (dumps or Kaldi dirs) with phone alignments; with several, "
                        "everything fitted on --fit-on is computed once")
    u.add_argument("--fit-on", metavar="DATA", help="data the mapping and k-means are fitted on")
    u.add_argument("--units", metavar="FILE", help="units of any system (`utt c1 c2 ...`), "
                                                   "one per frame (not deduplicated)")
    u.add_argument("--frame-rate", type=float_range(0, 1e6, lo_open=True), metavar="R",
                   help="units per second of --units")
    u.add_argument("--alignments", metavar="DATA_OR_CTM",
                   help="for --units: a Kaldi dir / dump with phones.ctm, or a phones.ctm file")
    u.add_argument("--fit-units", metavar="FILE", help="for --units: units to fit the mapping")
    u.add_argument("--fit-alignments", metavar="DATA_OR_CTM", help="alignments of --fit-units")
    u.add_argument("--codebook-size", type=positive_int, default=None,
                   help="for --units: K (default: largest unit + 1)")
    u.add_argument("--name", help="result name (default: the data's folder name)")
    add_results_exp_argument(u)
    u.add_argument("--abx-triplets", type=positive_int, default=5000,
                   help="ABX: every triplet is scored up to this many per condition, else a "
                        "seeded sample whose 95%% interval is under 0.2 points")
    u.add_argument("--abx-items", default="phone", metavar="SPAN",
                   help="ABX items: 'phone', the centre phone in its context (ZeroSpeech ABX2, "
                        "within context), or 'triphone', the three phones (libri-light)")
    u.add_argument("--export-abx", metavar="DIR", help="also write DIR/<name>/: the ZeroSpeech "
                   ".item file, one .npy of features per utterance and the zrc-abx2 commands")
    add_batch_size_argument(u, "utterances per encoder batch")
    add_jobs_arguments(u, "with --model: the encoding; the code-to-phone map, k-means and ABX "
                          "are global and computed once here")
    add_seed_argument(u, "baselines, k-means and ABX sampling")
    add_progress_argument(u)
