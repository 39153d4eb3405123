"""``speechvq train``: train or resume the model of the config's task (stage 2). The config is
resolved and validated before any data path is touched; the training itself is `speechvq.train`,
imported by the command (it brings torch) so ``speechvq --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from speechvq.cli.common import (add_command, add_config_arguments, add_progress_argument,
                                 progress, resolve_config)
from speechvq.config import dump_config
from speechvq.errors import ConfigError


def cmd_train(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)  # validated before any data path is touched
    if args.print_config:
        sys.stdout.write(dump_config(cfg))
        return 0
    if args.data is None or args.exp is None:
        raise ConfigError("--data DUMP and --exp EXP are both needed (or --print-config)")
    if args.valid is not None and not cfg.train.valid_every:
        raise ConfigError("--valid is given but train.valid_every is 0 (off); set for example "
                          "train.valid_every=1000, or leave out --valid")
    from speechvq.train import train
    last = train(cfg, args.data, args.exp, valid=args.valid, progress=progress(args),
                 command=["speechvq", *args.argv], optimizer_changes=args.change_optimizer)
    print(last)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to ``speechvq <command>``."""
    p = add_command(
        sub, "train", cmd_train, help="train or resume a model (stage 2)",
        description="Train the model of the config's task (task: speech, the default, is the "
                    "speech VQ-VAE on a dump; task: image the image VQ-VAE on a dump of "
                    "`speechvq prepare-images`) for train.max_steps steps. Rerunning the same "
                    "command on an exp dir with checkpoints/last.pt resumes it exactly; with "
                    "--change-optimizer it may resume with a new train.lr, train.grad_clip or "
                    "train.warmup_steps (after a NaN loss, say). One run per exp dir at a time. "
                    "Multi-GPU: torchrun --nproc_per_node N $(which speechvq) train ...\n\n"
                    "EXP gets config.yaml, cmdline.txt, the task's files (speech: "
                    "speakers.txt, image: classes.txt), checkpoints/ (step_*.pt, last.pt, best.pt with --valid), "
                    "metrics.jsonl, log/ and TensorBoard events when tensorboard is "
                    "installed.\n\nexample:\n  speechvq train --config conf/train.yaml --data "
                    "dump/train --valid dump/dev --exp exp/mini train.valid_every=1000")
    p.add_argument("--data", metavar="DUMP", help="training data (speech: a dump from "
                                                   "`speechvq dump`; image: a split of "
                                                   "`speechvq prepare-images`)")
    p.add_argument("--valid", metavar="DUMP", help="held-out data of the same kind: every "
                   "train.valid_every steps the loss on its first train.valid_max_items items "
                   "is logged (valid_* in metrics.jsonl) and the best checkpoint kept as best.pt")
    p.add_argument("--exp", metavar="EXP", help="experiment dir")
    p.add_argument("--change-optimizer", action="store_true",
                   help="resume although train.lr, train.grad_clip or train.warmup_steps differ "
                        "from the checkpoint's: the new values apply from its step on (logged "
                        "to cmdline.txt and log/train.log)")
    add_config_arguments(p)
    add_progress_argument(p)
