#!/usr/bin/env python
"""Benchmark training the image classifier that scores a prior's samples
(`speechvq.evaluation.image_classifier`): as `evaluate prior` trains it (channels-last memory, bf16
autocast on a CPU with bf16 units) against the baseline of NCHW memory in fp32, measured in the
same run, with both classifiers' accuracy on the test images.

    speechvq prepare-images builtin dump      # dump/train, dump/test (egs/images' stage 0)
    python tools/bench_classifier.py --train dump/train --test dump/test
    python tools/bench_classifier.py --train dump/train --test dump/test --epochs 4 --seeds 0 1 2
    python tools/bench_classifier.py --train dump/train --test dump/test --epochs 1 --threads 1

Prints one line per variant (seconds, test accuracy) and the ratio of their times; with more
than one of --seeds, the baseline runs at the first only and each further seed adds a line of
evaluate prior's classifier (how much its accuracy moves with the seed). Timings depend on the
machine and its load; the ratio is what carries over.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def main(argv=None) -> int:
    from speechvq.data.images.dump import ImageDump
    from speechvq.evaluation import image_classifier as ic

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="image dump the classifier trains on")
    p.add_argument("--test", required=True, help="image dump its accuracy is measured on")
    p.add_argument("--epochs", type=int, default=ic.EPOCHS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default: "
                   "0, the one evaluate prior uses)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    train, test = ImageDump.open(args.train), ImageDump.open(args.test)
    images, labels = np.asarray(train.images), train.labels
    print(f"{len(images)} training images {images.shape[1:]}, {len(train.classes)} classes, "
          f"{args.epochs} epochs, {args.threads} threads; bf16 units: {ic._bf16_autocast()}")
    seconds = {}
    runs = [("baseline (NCHW, fp32)", False, args.seeds[0])]
    runs += [("evaluate prior's", True, seed) for seed in args.seeds]
    for name, fast, seed in runs:
        start = time.perf_counter()
        model = ic.train_classifier(images, labels, len(train.classes), seed=seed,
                                    epochs=args.epochs, fast=fast)
        took = time.perf_counter() - start
        seconds.setdefault(fast, took)
        acc = ic.accuracy(model, np.asarray(test.images), test.labels)
        print(f"{name:24s} seed {seed}  {took:7.1f} s   test accuracy {100 * acc:.2f} %",
              flush=True)
    print(f"ratio (seed {args.seeds[0]}): {seconds[False] / seconds[True]:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
