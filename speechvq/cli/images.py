"""``speechvq prepare-images`` and ``speechvq evaluate images``: image datasets -> one dump per
split, and how well an image VQ-VAE reconstructs them beside patch k-means. The work is in
`speechvq.data.images` and `speechvq.evaluation.image`, imported by the commands (they bring
numpy, Pillow, torch) so ``speechvq --help`` stays fast.
"""

from __future__ import annotations

import argparse

from speechvq.cli.common import (add_batch_size_argument, add_builtin_dumps_command,
                                 add_command, add_model_arguments, add_progress_argument,
                                 add_results_exp_argument, add_seed_argument, positive_int,
                                 prepare_dumps, print_results, progress, results_claim)


def cmd_prepare_images(args: argparse.Namespace) -> int:
    return prepare_dumps(args, "prepare-images", _prepare_images)


def _prepare_images(args: argparse.Namespace) -> dict:
    """The preparer of ``args.source``: {split: dump folder}."""
    if args.source == "builtin":
        from speechvq.data.images.builtin import prepare_builtin_images
        splits = prepare_builtin_images(args.out, size=args.size, seed=args.seed,
                                        use_cache=not args.no_cache)
    elif args.source == "mnist":
        from speechvq.data.images.sources import parse_mnist_split, prepare_mnist
        kwargs = {"splits": [parse_mnist_split(s) for s in args.split]} if args.split else {}
        splits = prepare_mnist(args.src, args.out, **kwargs)
    elif args.source == "cifar10":
        from speechvq.data.images.sources import prepare_cifar10
        splits = prepare_cifar10(args.src, args.out)
    else:
        from speechvq.data.images.sources import prepare_folder
        splits = prepare_folder(args.src, args.out, image_size=args.image_size,
                                channels=args.channels, progress=progress(args))
    return splits


def cmd_evaluate_images(args: argparse.Namespace) -> int:
    from speechvq.evaluation.image import evaluate_images, format_images_table
    with results_claim(args, args.data, args.fit_on):
        result = evaluate_images(
            args.model, args.data, fit_on=args.fit_on, name=args.name, exp_dir=args.exp,
            checkpoint=args.checkpoint, batch_size=args.batch_size,
            kmeans_patches=args.kmeans_patches, kmeans_iters=args.kmeans_iters, seed=args.seed,
            device=args.device, progress=progress(args))
    print_results([result], format_images_table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``prepare-images`` to ``speechvq <command>``."""
    p = add_command(
        sub, "prepare-images", cmd_prepare_images,
        help="image dataset -> one dump per split (image task, stage 0)",
        description="Write one dump per split under OUT (OUT/<split>/images.npy: NHWC uint8, "
                    "memory-mapped when training; labels.npy; classes.txt; info.json), built "
                    "as OUT/<split>.tmp and renamed; a complete dump is skipped on a rerun. "
                    "Prints `split<TAB>dump` per split.\n\nexamples:\n"
                    "  speechvq prepare-images builtin dump/images\n"
                    "  speechvq prepare-images mnist ../shared/data/real/mnist dump/mnist "
                    "--split train=t10k:0-6999 --split test=t10k:7000-7999\n"
                    "  speechvq prepare-images cifar10 /data/cifar-10-batches-bin dump/cifar10\n"
                    "  speechvq prepare-images folder /data/imagenet dump/imagenet32 "
                    "--image-size 32")
    sources = p.add_subparsers(dest="source", metavar="<source>", required=True)
    add_builtin_dumps_command(
        sources, help="the built-in digits over photos and noise (no download)",
        description="Render the built-in 32x32 RGB digit images (train 20,000, test 5,000; "
                    "classes 0-9) from matplotlib's fonts and scikit-learn's sample photos, "
                    "deterministic from --seed. Cached under $SPEECHVQ_CACHE (default "
                    "~/.cache/speechvq).",
        sizes="tiny: 512 + 128 images (tests); default: 20,000 + 5,000", seeds="the images")
    m = add_command(sources, "mnist", None, help="MNIST from its IDX files (gzipped or not)",
                    description="MNIST from {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] "
                                "in SRC: 28x28x1 images, classes 0-9.")
    m.add_argument("src", help="folder holding the IDX files")
    m.add_argument("out", help="output folder; one dump per split")
    m.add_argument("--split", action="append", metavar="NAME=SET[:START-END]",
                   help="an output split: images START..END (both included) of SET (train or "
                        "t10k); repeat for each split (default: train=train test=t10k)")
    c = add_command(sources, "cifar10", None, help="CIFAR-10, binary version",
                    description="CIFAR-10 from data_batch_1.bin ... data_batch_5.bin (train) "
                                "and test_batch.bin (test) in SRC or SRC/cifar-10-batches-bin; "
                                "the python (pickle) version is not read.")
    c.add_argument("src", help="the unpacked cifar-10-binary.tar.gz")
    c.add_argument("out", help="output folder; OUT/train and OUT/test")
    f = add_command(sources, "folder", None, help="SRC/<class>/<image> (ImageNet layout)",
                    description="Images in SRC/<class>/ (one split, train) or "
                                "SRC/<split>/<class>/ (one dump per split), read with Pillow: "
                                "shorter side resized to --image-size (bicubic), centre crop, "
                                "grey -> RGB (or RGB -> grey with --channels 1), alpha dropped.")
    f.add_argument("src", help="the image folder")
    f.add_argument("out", help="output folder; one dump per split")
    f.add_argument("--image-size", type=positive_int, default=32, help="side of the square "
                                                                       "images")
    f.add_argument("--channels", type=int, choices=(1, 3), default=3, help="3 RGB, 1 grey")
    add_progress_argument(f)


def register_evaluate(kinds: argparse._SubParsersAction) -> None:
    """Add ``images`` to ``speechvq evaluate <what>``."""
    e = add_command(
        kinds, "images", cmd_evaluate_images, help="image reconstruction vs patch k-means",
        description="MSE and PSNR (over all pixels of the uint8 reconstructions), bits per "
                    "image, codes used, perplexity and, for the categorical decoder, bits/dim "
                    "of an image VQ-VAE on DATA, beside k-means with the same K on patches of "
                    "one latent's footprint (same bits per image), fitted on --fit-on. Writes "
                    "EXP/eval/images_<name>.json and PNG figures beside it.\n\nexample:\n"
                    "  speechvq evaluate images --model exp/images --data dump/images/test "
                    "--fit-on dump/images/train")
    add_model_arguments(e)
    e.add_argument("--data", required=True, metavar="DUMP", help="the scored dump (test split)")
    e.add_argument("--fit-on", metavar="DUMP", help="dump the baseline is fitted on (the "
                                                    "training split; default: --data itself)")
    e.add_argument("--name", help="result name (default: the dump's folder name)")
    add_results_exp_argument(e)
    e.add_argument("--kmeans-patches", type=positive_int, default=100000,
                   help="training patches the k-means baseline is fitted on")
    e.add_argument("--kmeans-iters", type=positive_int, default=100,
                   help="most Lloyd iterations of the k-means baseline")
    add_batch_size_argument(e, "images per model batch")
    add_seed_argument(e, "patch sampling, k-means++ and the bootstrap intervals")
    add_progress_argument(e)
