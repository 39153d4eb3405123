"""``speechvq train``: train or resume a VQ-VAE on a dump (stage 2). The config is resolved and
validated before any data path is touched; the training itself is `speechvq.train`, imported by
the command (it brings torch) so ``speechvq --help`` stays fast.
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
    from speechvq.train import train_speech
    last = train_speech(cfg, args.data, args.exp, progress=progress(args),
                        command=["speechvq", *args.argv])
    print(last)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to ``speechvq <command>``."""
    p = add_command(
        sub, "train", cmd_train, help="train or resume a VQ-VAE (stage 2)",
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
    add_progress_argument(p)
