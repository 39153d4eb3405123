"""``speechvq config``: resolve a config as ``speechvq train`` would, validate it and print it
as YAML with each key's meaning (the config engine is `speechvq.config`).
"""

from __future__ import annotations

import argparse
import sys

from speechvq.cli.common import add_command, add_config_arguments, resolve_config
from speechvq.config import dump_config


def cmd_config(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    sys.stdout.write(dump_config(cfg, comments=not args.no_comments))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``config`` to ``speechvq <command>``."""
    p = add_command(
        sub, "config", cmd_config,
        help="print the resolved config (defaults <- --config <- overrides) and check it",
        description="Resolve a config exactly as `speechvq train` would (defaults, then the "
                    "YAML file, then key=value overrides), validate it, and print it as YAML with "
                    "each key's meaning and the paper's default. Exit status 2 names the first "
                    "bad key.\n\nexample:\n  speechvq config --config conf/train.yaml "
                    "model.quantizer.codebook_size=128")
    add_config_arguments(p, print_config=False)
    p.add_argument("--no-comments", action="store_true", help="plain YAML without the key docs")
