"""``speechvq <command>``: a thin argparse layer over the library.

Each command parses its arguments, resolves and validates its config (before it touches any data
path), and calls one library function. Errors a user can cause arrive as `SpeechVQError` and are
printed as one line, ``speechvq <command>: error: <message>``, with exit status 2; any other
exception is a bug and keeps its traceback. Commands whose library part is not built yet are not
registered (``speechvq --help`` lists what works).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from speechvq import __version__
from speechvq.config import Config, dump_config, load_config
from speechvq.errors import SpeechVQError

EPILOG = ("Run `speechvq <command> --help` for a command's options. Config keys are set with "
          "key=value overrides, e.g. model.quantizer.codebook_size=128; `speechvq config` lists "
          "them all with their defaults.")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the descriptions' line breaks and shows every option's default."""


def add_config_arguments(parser: argparse.ArgumentParser, *, print_config: bool = True) -> None:
    """The config options every config-driven command shares."""
    parser.add_argument("--config", metavar="YAML", default=None,
                        help="config file; keys it omits keep their defaults")
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


# Each entry adds one sub-command; a command is registered only once its library part exists.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
