"""What the command modules share: the help formatter, argument types, the option groups that
several commands take (config, model, batch size, seed, progress) and the ways results and
warnings are printed. Parsing and messages only; the work is the library's.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import typing
import warnings
from contextlib import AbstractContextManager
from typing import Callable, Iterable, Mapping

from speechvq.config import Config, load_config


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, ``speechvq <cmd>: error: <what>; run
    `speechvq <cmd> --help` for its options``, exit status 2, like every other user error
    (argparse's own prints the usage block first, 3-9 lines before the error). Sub-command
    parsers made from it (`add_command`) are of this class too."""

    def error(self, message: str) -> "typing.NoReturn":
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message}; run `{self.prog} --help` for its "
                     f"options\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and shows an option's default when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = action.default is None or action.default is False \
            or action.default == argparse.SUPPRESS
        if "default" not in text and not hidden and action.option_strings:
            text += " (default: %(default)s)"
        return text


def add_command(sub: argparse._SubParsersAction, name: str,
                func: Callable[[argparse.Namespace], int] | None, *, help: str,
                description: str) -> argparse.ArgumentParser:
    """Add the sub-command `name` (help formatted by `Formatter`) that runs `func`.

    Args:
        sub: the sub-command group it joins (``speechvq <command>``, ``speechvq evaluate <what>``).
        func: ``func(args) -> exit status``; None for a group whose sub-commands each set theirs.
        help: the one line the group's listing shows.
        description: what ``speechvq <name> --help`` explains.

    Returns:
        The command's parser, for its arguments.
    """
    p = sub.add_parser(name, formatter_class=Formatter, help=help, description=description)
    if func is not None:
        p.set_defaults(func=func)
        p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                       help="CPU threads of each process (torch, BLAS); default: the "
                            "OMP_NUM_THREADS environment variable, else cores / --nj, so "
                            "parallel jobs do not oversubscribe the CPU")
    return p


def apply_threads(args: argparse.Namespace) -> int | None:
    """Set the CPU thread count of this process and its workers before any library starts its
    thread pool: ``--threads`` if given, else ``OMP_NUM_THREADS`` if set, else cores // --nj
    when the command runs parallel jobs (else the libraries' own default, all cores). The
    environment is set too, so worker processes inherit it. Returns the count set, or None."""
    threads = getattr(args, "threads", None)
    if threads is None and "OMP_NUM_THREADS" not in os.environ and getattr(args, "nj", 1) > 1:
        from speechvq.device import cpu_cores
        threads = max(1, cpu_cores() // args.nj)
    if threads is None:
        return None
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:  # already imported (a test calling main in-process)
        sys.modules["torch"].set_num_threads(threads)
    return threads


MAX_COUNT = 2**31 - 1  # the largest count any option takes (a C int: torch, numpy, the OS)


def int_range(lo: int, hi: int = MAX_COUNT) -> Callable[[str], int]:
    """argparse type of a whole number in [lo, hi]; anything else is a one-line usage error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                f"must be at least {lo}, got {value}" if value < lo else
                f"must be at most {hi}, got {value}")
        return value
    parse.__name__ = "whole number"  # argparse names the type in its messages
    return parse


def float_range(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], float]:
    """argparse type of a finite number in [lo, hi] (or (lo, hi] with `lo_open`); NaN and
    infinity are refused."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if value < lo or (lo_open and value == lo) or value > hi:
            low = f"above {lo}" if lo_open else f"at least {lo}"
            raise argparse.ArgumentTypeError(f"must be {low} and at most {hi}, got {value}")
        return value
    parse.__name__ = "number"
    return parse


#: counts that must be at least 1 (batch sizes, jobs, utterances, ...)
positive_int = int_range(1)
#: seeds: numpy and torch take any non-negative 64-bit value
seed_int = int_range(0, 2**63 - 1)


def add_config_arguments(parser: argparse.ArgumentParser, *, print_config: bool = True) -> None:
    """The config options every config-driven command shares."""
    parser.add_argument("--config", metavar="YAML", action="append", default=None,
                        help="config file; keys it omits keep their defaults; give several to "
                             "apply them in order (a later file overrides the keys it sets)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.lr=1e-4 model.encoder.strides=[2,2,2]")
    if print_config:
        parser.add_argument("--print-config", action="store_true",
                            help="print the resolved config as YAML and exit")


def resolve_config(args: argparse.Namespace) -> Config:
    """Load and validate the command's config; first thing every config-driven command does."""
    return load_config(args.config, args.overrides)


def add_model_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    """--model, --checkpoint and --device of every command that loads a trained model."""
    p.add_argument("--model", metavar="M", required=required,
                   help="exp dir (uses checkpoints/last.pt) or a .pt checkpoint")
    p.add_argument("--checkpoint", metavar="NAME", default=None,
                   help="another checkpoint of the exp dir: best (best.pt, the best "
                        "validation loss) or e.g. step_00001000.pt")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda:N")


def add_jobs_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """--nj and --cmd of a command that can run its work as parallel jobs (`speechvq.jobs`);
    `what` says what the jobs share out."""
    p.add_argument("--nj", type=positive_int, default=1, metavar="N",
                   help=f"parallel jobs ({what}; the data split by utterance, contiguous and "
                        f"balanced, as Kaldi's split_data.sh; results merged in order; logs in "
                        f"log/<what>.JOB.log beside the output)")
    p.add_argument("--cmd", default=None, metavar="PREFIX",
                   help="with --nj: run each job as `PREFIX speechvq ...`, e.g. 'srun "
                        "--ntasks=1' (ESPnet's cmd.sh); default: local processes that end with "
                        "this one")


def add_batch_size_argument(p: argparse.ArgumentParser, help: str, default: int = 8) -> None:
    """--batch-size of a command that runs a model; `help` says what one batch holds."""
    p.add_argument("--batch-size", type=positive_int, default=default,
                   help=f"{help} (default {default})")


def add_seed_argument(p: argparse.ArgumentParser, help: str) -> None:
    """--seed of a command with randomness; `help` says what it seeds."""
    p.add_argument("--seed", type=seed_int, default=0, help=help)


#: WaveNet sampling engines (model.decoder.wavenet.engine's choices, and issue 15's spelling
#: cuda-graph of cuda_graph), kept here so that ``--help`` imports no torch
WAVENET_ENGINES = ("auto", "eager", "fused", "fused_bf16", "cuda_graph", "cuda-graph")


def add_engine_argument(p: argparse.ArgumentParser, what: str) -> None:
    """--engine: the WaveNet sampling engine of `what`; None = the model's config."""
    p.add_argument("--engine", default=None, choices=WAVENET_ENGINES,
                   help=f"WaveNet sampling engine of {what}: fused (one compiled CPU kernel, "
                        f"the default on CPU), cuda_graph (alias cuda-graph: the step captured "
                        f"as a CUDA graph, the default on CUDA), eager (PyTorch ops, the "
                        f"reference), fused_bf16 (bf16 weights); default: the model's config "
                        f"(auto)")


def add_results_exp_argument(p: argparse.ArgumentParser) -> None:
    """--exp of an evaluation: where EXP/eval/*.json goes when not beside the model."""
    p.add_argument("--exp", metavar="EXP", help="exp dir for the results (default: --model's)")


def results_claim(args: argparse.Namespace, *inputs: str | os.PathLike | None
                  ) -> AbstractContextManager:
    """The lock and output rules of an evaluation's EXP/eval (`speechvq.evaluation.results.
    claim_results`), EXP from --exp or --model; `inputs` and the checkpoint are its inputs."""
    from speechvq.checkpoint import resolve_checkpoint
    from speechvq.evaluation.results import claim_results, resolve_exp_dir
    ckpt = resolve_checkpoint(args.model, args.checkpoint) if args.model is not None else None
    return claim_results(resolve_exp_dir(args.model, args.exp), [*inputs, ckpt])


def add_progress_argument(p: argparse.ArgumentParser) -> None:
    """--no-progress of every command with a long loop."""
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")


def progress(args: argparse.Namespace) -> bool:
    """Whether the command shows its progress bar."""
    return not getattr(args, "no_progress", False)


def warnings_as_lines(command: str) -> None:
    """Library warnings (e.g. a corpus missing some transcripts) as one line each."""
    warnings.formatwarning = (lambda message, category, *a, **k:
                              f"speechvq {command}: warning: {message}\n")


def print_splits(splits: Mapping[str, object]) -> None:
    """``split<TAB>folder`` per split: what every preparing command prints."""
    for name, path in splits.items():
        print(f"{name}\t{path}")


def prepare_dumps(args: argparse.Namespace, command: str,
                  prepare: Callable[[argparse.Namespace], Mapping[str, object]]) -> int:
    """Run ``speechvq <command>`` (prepare-images, prepare-video): `prepare(args)` -> {split:
    dump folder} under ``output_lock(args.out)``, library warnings as one line each, then
    `print_splits`."""
    warnings_as_lines(command)
    from speechvq.locks import output_lock
    with output_lock(args.out):  # one run per OUT; its dumps refuse folders that are not dumps
        splits = prepare(args)
    print_splits(splits)
    return 0


def add_builtin_dumps_command(sources: argparse._SubParsersAction, *, help: str,
                              description: str, sizes: str, seeds: str) -> None:
    """The ``builtin`` source of prepare-images and prepare-video: OUT, --size tiny|default
    (`sizes` says what each holds), --seed (of `seeds`) and --no-cache."""
    b = add_command(sources, "builtin", None, help=help, description=description)
    b.add_argument("out", help="output folder; OUT/train and OUT/test")
    b.add_argument("--size", choices=("tiny", "default"), default="default", help=sizes)
    add_seed_argument(b, seeds)
    b.add_argument("--no-cache", action="store_true", help="render afresh, no cache")


def print_results(results: Iterable[dict], table: Callable[[dict], str]) -> None:
    """Each evaluation result as its table, then the path of the JSON it was saved to."""
    for result in results:
        print(table(result))
        print(result["output"])
