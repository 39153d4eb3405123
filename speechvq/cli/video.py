"""``speechvq prepare-video`` and ``speechvq evaluate video``: clips -> one dump per split, and
how well a video VQ-VAE reconstructs them and (with a prior) continues them beside the
repeat-last-frame and blank-frame baselines. The work is in `speechvq.data.video` and
`speechvq.evaluation.video`, imported by the commands so ``speechvq --help`` stays fast.
"""

from __future__ import annotations

import argparse

from speechvq.cli.common import (add_batch_size_argument, add_builtin_dumps_command,
                                 add_command, add_model_arguments, add_progress_argument,
                                 add_results_exp_argument, add_seed_argument, positive_int,
                                 prepare_dumps, print_results, progress, results_claim)


def cmd_prepare_video(args: argparse.Namespace) -> int:
    return prepare_dumps(args, "prepare-video", _prepare_video)


def _prepare_video(args: argparse.Namespace) -> dict:
    """The preparer of ``args.source``: {split: dump folder}."""
    if args.source == "builtin":
        from speechvq.data.video.builtin import prepare_builtin_video
        return prepare_builtin_video(args.out, size=args.size, seed=args.seed,
                                     use_cache=not args.no_cache)
    if args.source == "moving-mnist":
        from speechvq.data.video.sources import parse_clip_range, prepare_moving_mnist
        ranges = [parse_clip_range(s) for s in args.split] if args.split else None
        return prepare_moving_mnist(args.src, args.out, ranges)
    from speechvq.data.video.sources import prepare_frame_folders
    return prepare_frame_folders(args.src, args.out, frames=args.frames,
                                 image_size=args.image_size, channels=args.channels)


def cmd_evaluate_video(args: argparse.Namespace) -> int:
    from speechvq.evaluation.video import evaluate_video, format_video_table
    with results_claim(args, args.data, args.prior):
        result = evaluate_video(
            args.model, args.data, prior=args.prior, prompt_frames=args.prompt_frames,
            name=args.name, exp_dir=args.exp, checkpoint=args.checkpoint,
            batch_size=args.batch_size, max_clips=args.max_clips, examples=args.examples,
            seed=args.seed, device=args.device, progress=progress(args))
    print_results([result], format_video_table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``prepare-video`` to ``speechvq <command>``."""
    p = add_command(
        sub, "prepare-video", cmd_prepare_video,
        help="clips -> one dump per split (video task, stage 0)",
        description="Write one dump per split under OUT (OUT/<split>/clips.npy: (N, T, H, W, "
                    "C) uint8 in one contiguous array, memory-mapped when training; "
                    "clips.txt; info.json), built as OUT/<split>.tmp and renamed; a complete "
                    "dump is skipped on a rerun. Prints `split<TAB>dump` per split.\n\n"
                    "examples:\n"
                    "  speechvq prepare-video builtin dump\n"
                    "  speechvq prepare-video moving-mnist mnist_test_seq.npy dump/mmnist\n"
                    "  speechvq prepare-video frames /data/clips dump/clips --frames 20")
    sources = p.add_subparsers(dest="source", metavar="<source>", required=True)
    add_builtin_dumps_command(
        sources, help="the built-in moving glyphs (no download)",
        description="Render the built-in moving glyphs (Moving-MNIST style: two blurred digits "
                    "bouncing in 20 grey 64x64 frames; train 1,000, test 128 clips), "
                    "deterministic from --seed. Cached under $SPEECHVQ_CACHE (default "
                    "~/.cache/speechvq).",
        sizes="tiny: 32 + 8 clips (tests); default: 1,000 + 128", seeds="the clips")
    m = add_command(sources, "moving-mnist", None, help="Moving MNIST's published .npy",
                    description="mnist_test_seq.npy (uint8, 20 x 10000 x 64 x 64, time first) "
                                "-> clips cut into splits by index ranges.")
    m.add_argument("src", help="the .npy file")
    m.add_argument("out", help="output folder; one dump per split")
    m.add_argument("--split", action="append", metavar="NAME=START-END",
                   help="an output split: clips START..END (both included); repeat for each "
                        "split (default: train=0-8999 test=9000-9999)")
    f = add_command(sources, "frames", None, help="SRC/<clip>/000001.png ... (numbered frames)",
                    description="Clip folders of numbered frames in SRC (one split, train) or "
                                "SRC/<split>/ (one dump per split); each folder is cut into "
                                "clips of --frames consecutive frames, each frame resized "
                                "(shorter side) and centre-cropped to --image-size.")
    f.add_argument("src", help="the folder of clip folders")
    f.add_argument("out", help="output folder; one dump per split")
    f.add_argument("--frames", type=positive_int, default=20, help="frames per clip")
    f.add_argument("--image-size", type=positive_int, default=64, help="side of the frames")
    f.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1 grey, 3 RGB")


def register_evaluate(kinds: argparse._SubParsersAction) -> None:
    """Add ``video`` to ``speechvq evaluate <what>``."""
    e = add_command(
        kinds, "video", cmd_evaluate_video,
        help="video reconstruction, and continuation vs repeat-last / blank frames",
        description="Reconstruction PSNR of a video VQ-VAE over all pixels of DATA; with "
                    "--prior, greedy continuations of each clip from its first "
                    "--prompt-frames frames (decoded from the prior's latent frames) scored "
                    "per predicted frame and over predicted frames 2-5, beside repeating the "
                    "last given frame and a blank frame (the prior's bits per code: `speechvq "
                    "evaluate prior`). Writes EXP/eval/video_<name>.json, a GIF and a PNG strip "
                    "per example and a PSNR-per-frame plot.\n\nexample:\n"
                    "  speechvq evaluate video --model exp/video --prior exp/video_prior "
                    "--data dump/test")
    add_model_arguments(e)
    e.add_argument("--data", required=True, metavar="DUMP", help="the scored dump (test split)")
    e.add_argument("--prior", metavar="PRIOR", help="exp dir or checkpoint of a video prior "
                                                    "trained on this model's codes")
    e.add_argument("--prompt-frames", type=positive_int, default=10,
                   help="given frames of each continued clip (a multiple of the time stride)")
    e.add_argument("--max-clips", type=positive_int, default=64,
                   help="clips that are continued (the first of DATA; reconstruction scores "
                        "them all)")
    e.add_argument("--examples", type=int, default=4, help="clips drawn as GIF and PNG strip")
    e.add_argument("--name", help="result name (default: the dump's folder name)")
    add_results_exp_argument(e)
    add_batch_size_argument(e, "clips per model batch")
    add_seed_argument(e, "the bootstrap intervals")
    add_progress_argument(e)
