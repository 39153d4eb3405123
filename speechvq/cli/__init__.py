"""``speechvq <command>``: a thin argparse layer over the library.

One module per command group registers its sub-commands (`data`: prepare, validate, fix, dump;
`images`: prepare-images, evaluate images; `video`: prepare-video, evaluate video; `train`;
`units`: encode, evaluate units; `prior`: sample, evaluate prior; `convert`: convert, evaluate
conversion; `evaluate`: the group of the evaluations; `report`; `config`), with the options
they share in `common`. Each command
parses its arguments, resolves and validates its config (before it touches any data path), and
calls one library function; library modules are imported inside the commands, so
``speechvq --help`` stays fast. Errors a user can cause arrive as `SpeechVQError` and are printed
as one line, ``speechvq <command>: error: <message>``, with exit status 2; any other exception is
a bug and keeps its traceback. Commands whose library part is not built yet are not registered
(``speechvq --help`` lists what works).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Callable, Sequence

from speechvq import __version__
from speechvq.cli import (config, convert, data, evaluate, images, prior, report, train, units,
                          video)
from speechvq.cli.common import Formatter, Parser, apply_threads
from speechvq.errors import SpeechVQError
from speechvq.jobs import PARENT_ENV
from speechvq.workers import die_with_parent

EPILOG = ("Run `speechvq <command> --help` for a command's options. Config keys are set with "
          "key=value overrides, e.g. model.quantizer.codebook_size=128; `speechvq config` lists "
          "them all with their defaults.")

# Each entry adds its group's sub-commands, in the order `speechvq --help` lists them (the
# pipeline's); a command is registered only once its library part exists.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    data.register,
    images.register,
    video.register,
    train.register,
    units.register,
    convert.register,
    prior.register,
    evaluate.register,
    report.register,
    config.register,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``speechvq`` parser with every command of `COMMANDS`."""
    parser = Parser(
        prog="speechvq", formatter_class=Formatter, epilog=EPILOG,
        description="Discrete speech units and voice conversion with VQ-VAEs "
                    "(van den Oord et al., 2017).")
    parser.add_argument("--version", action="version", version=f"speechvq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``speechvq`` console script; returns the exit status."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent and parent.isdigit():  # a local job of `--nj`: end when the parent command ends
        die_with_parent(int(parent))
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
        apply_threads(args)
        return int(args.func(args) or 0)
    except SpeechVQError as e:
        message = " ".join(str(e).split())  # always one line
        print(f"speechvq {args.command}: error: {message}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # a write outside the atomic writers (those raise DiskFullError, with the space needed)
        where = f" writing '{e.filename}'" if e.filename else ""
        print(f"speechvq {args.command}: error: no space left on the device{where}; free some "
              f"space or write elsewhere, then rerun", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"speechvq {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`speechvq ... | head`): stop quietly, as cat or ls would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
