"""The root of every config: ``task`` picks the sections, the core adds ``train`` and ``seed``.

    task: speech          # speech (default) | image | video | prior: which task's sections follow
    data: ...             # the task's sections (`speechvq.registry.Task.sections`)
    model: ...
    train: ...            # `TrainConfig`: the same for every task
    seed: 1234

`root_class(task)` makes the root dataclass of a task from the sections it registered, so the
engine checks every key against that task's dataclasses; `load_config` resolves defaults <- YAML
file(s) <- ``key=value`` overrides. Keys that an older speechvq wrote (a checkpoint's or a saved
config's) are rewritten by the task's `migrate`, with a warning naming each change, not refused.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Sequence

from speechvq.config.engine import (COMMAND_LINE, Size, build_section, check_tree, config_to_dict,
                                    merge_trees, param, parse_yaml, section, set_override,
                                    split_override)
from speechvq.errors import ConfigError
from speechvq.fileio import read_text
from speechvq.registry import get_task

DEFAULT_TASK = "speech"  # what a config without `task:` means (every config before tasks)


class Config:
    """Base class of every task's root config (see `root_class`); ``isinstance(cfg, Config)``."""

    task: str
    seed: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Config is the base class of every task's root config; make one with "
                        "default_config(task), load_config(...) or root_class(task)(...)")


@dataclass
class QuantizerConfig:
    """Vector-quantisation bottleneck (paper section 3.1 and appendix A.1 for the EMA update);
    the same section in every task's `model`."""

    codebook_size: int = param(512, "K, number of codes; paper speech: 512 (phone study: 128)",
                               min=1, max=2**20)
    dim: int = param(64, "D, dimension of each code and of the encoder's output", min=1,
                     max=8192)
    update: str = param("ema", "codebook update: 'ema' (paper appendix; steadier) or "
                        "'gradient' (paper main text: codebook loss)", choices=("ema", "gradient"))
    beta: float = param(0.25, "commitment cost beta; paper: 0.25", min=0.0)
    decay: float = param(0.99, "EMA decay gamma; paper: 0.99", min=0.0, max=1.0)
    epsilon: float = param(1e-5, "Laplace smoothing of the EMA counts", min=0.0)
    restart_after: int = param(200, "restart codes unused for this many training steps from "
                               "recent encoder outputs; 0 = never", min=0)
    kmeans_init: bool = param(False, "initialise the codebook by k-means on the first batch")
    kmeans_iters: int = param(10, "Lloyd iterations of the k-means initialisation", min=1,
                         max=10_000)
    chunk_size: int = param(8192, "vectors per distance matmul (bounds memory at chunk x K)",
                            min=1, max=2**24)

    SIZES: ClassVar[tuple[Size, ...]] = (
        Size("the codebook", ("model.quantizer.codebook_size", "model.quantizer.dim")),
        Size("one distance matmul", ("model.quantizer.chunk_size",
                                     "model.quantizer.codebook_size")),
    )


@dataclass
class TrainConfig:
    """Optimisation, checkpointing and validation; a fixed step budget, never wall-clock."""

    batch_size: int = param(16, "items (windows, images, clips) per step, over all GPUs", min=1,
                         max=2**20)
    lr: float = param(2e-4, "peak learning rate; paper: 2e-4 (Adam)", min=0.0)
    betas: list[float] = param([0.9, 0.999], "AdamW betas")
    weight_decay: float = param(0.0, "AdamW weight decay", min=0.0)
    schedule: str = param("constant", "learning-rate schedule after warm-up",
                          choices=("constant", "cosine", "linear"))
    warmup_steps: int = param(0, "linear warm-up steps", min=0)
    max_steps: int = param(250000, "total optimiser steps; paper: 250k", min=1)
    grad_clip: float = param(1.0, "clip the global gradient norm to this; 0 = off", min=0.0)
    amp: str = param("auto", "mixed precision: on CUDA 'auto' (bf16 if supported, else "
                     "fp16), 'bf16', 'fp16' or 'none'; on CPU only 'bf16' turns it on (for "
                     "CPUs with bf16 units: AVX-512 BF16, AMX)",
                     choices=("auto", "bf16", "fp16", "none"))
    device: str = param("auto", "'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'")
    num_workers: int = param(0, "DataLoader worker processes (0 = read in the main process)",
                             min=0)
    threads: int = param(0, "CPU threads of torch in each training process; 0 = the command's "
                         "--threads, else all cores (divided among torchrun's processes)", min=0)
    checkpoint_every: int = param(1000, "steps between checkpoints", min=1)
    keep_checkpoints: int = param(5, "step-numbered checkpoints kept besides last.pt", min=1,
                                max=100_000)
    log_every: int = param(50, "steps between metrics.jsonl lines", min=1)
    valid_every: int = param(0, "steps between validation passes on the held-out data given "
                             "to `speechvq train --valid`; the best is kept as best.pt; 0 = "
                             "off", min=0)
    valid_max_items: int = param(64, "held-out items (utterances, images, clips) a validation "
                                 "pass reads, the first ones in the held-out data", min=1)
    init_from: str = param("", "exp dir or checkpoint whose weights start a new run (tensors "
                           "with matching names and shapes); '' = random initialisation")
    freeze: list[str] = param([], "modules kept fixed (the task names them; speech: encoder, "
                              "quantizer, speaker_embedding, wavenet, mel_decoder; [encoder, "
                              "quantizer] trains a decoder head on frozen codes)")

    def check(self, root: Any) -> None:
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"config key 'train.betas' must be two numbers in [0, 1), got "
                              f"{self.betas}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"config key 'train.device' must be auto, cpu, cuda or cuda:N, got "
                              f"{dev!r}")


_SECTION_DOCS = {"data": "the data and its features", "model": "the model",
                 "eval": "evaluation"}


@functools.cache
def root_class(task: str) -> type:
    """The root config dataclass of `task`: task, its sections, train, seed.

    Raises:
        ConfigError: no task of that name is registered.
    """
    sections = get_task(task).sections
    fields: list[Any] = [("task", str, param(task, "which task this config trains: speech, "
                                                   "image, video or prior"))]
    for name in ("data", "model"):
        if name in sections:
            fields.append((name, sections[name], section(sections[name], _SECTION_DOCS[name])))
    fields.append(("train", TrainConfig, section(TrainConfig, "optimisation, checkpoints and "
                                                              "validation")))
    for name, cls in sections.items():
        if name not in ("data", "model"):
            fields.append((name, cls, section(cls, _SECTION_DOCS.get(name, name))))
    fields.append(("seed", int, param(1234, "seed of every random generator (data sampling, "
                                            "init, sampling)", min=0, max=2**32 - 1)))
    title = task.capitalize()
    cls = dataclasses.make_dataclass(f"{title}Config", fields, bases=(Config,))
    cls.__doc__ = f"The root config of the {task} task."
    cls.__module__ = __name__
    return cls


def default_config(task: str = DEFAULT_TASK) -> Config:
    """Every key at its default, for `task`."""
    cfg = root_class(task)()
    _check(cfg)
    return cfg


def _task_of(tree: Any, where: str) -> str:
    name = tree.get("task", DEFAULT_TASK) if isinstance(tree, dict) else DEFAULT_TASK
    if not isinstance(name, str):
        raise ConfigError(f"config key 'task'{where} expects str, got {name!r}; one of: speech, "
                          f"image, video, prior")
    return name


def _where(source: str) -> str:
    if not source:
        return ""
    return " (on the command line)" if source == COMMAND_LINE else f" (in {source})"


def _check(cfg: Config) -> None:
    check_tree(cfg, cfg)
    get_task(cfg.task).check(cfg)


def migrate_tree(tree: dict[str, Any], source: str) -> dict[str, Any]:
    """`tree` with an older speechvq's keys rewritten by its task (a warning per change)."""
    if not isinstance(tree, dict):
        return tree
    tree = merge_trees({}, tree)  # a copy: the caller's dict stays as it was
    for note in get_task(_task_of(tree, _where(source))).migrate(tree):
        warnings.warn(f"config{_where(source)}: {note}", stacklevel=3)
    return tree


def config_from_dict(values: dict[str, Any], *, source: str = "") -> Config:
    """Build a root config from nested dicts (its `task` picks the sections); `source` names
    where they came from in errors. Older keys are migrated (see `migrate_tree`)."""
    values = migrate_tree(values, source)
    where = _where(source)
    cfg = build_section(root_class(_task_of(values, where)), values, "", where)
    _check(cfg)
    return cfg


def load_config(path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                overrides: Iterable[str] = ()) -> Config:
    """Defaults <- YAML file(s) at `path` <- ``key=value`` overrides, validated.

    Several files are applied in order, a later one overriding the keys it sets (a recipe's base
    config, then a file with what one stage changes). A ``task=...`` override is applied first,
    since it decides which sections the other keys belong to.

    Raises:
        ConfigError: missing or unreadable file, YAML syntax error, unknown key or task, wrong
            type or out-of-range value; the message names the key, its section and the fix.
    """
    paths = [] if path is None else [path] if isinstance(path, (str, os.PathLike)) else list(path)
    overrides = list(overrides)
    task_overrides = [o for o in overrides if split_override(o)[0] == "task"]
    tree: dict[str, Any] = {}
    for source in map(os.fspath, paths):
        if not os.path.isfile(source):
            raise ConfigError(f"config file '{source}' does not exist; pass an existing YAML "
                              f"file to --config (see `speechvq config` for the defaults)")
        layer = migrate_tree(parse_yaml(read_text(source, "config file", ConfigError), source),
                             source)
        # each file's unknown keys and wrong types name that file; cross-key checks wait for
        # the merged config (a file may hold half of a valid pair, e.g. input and hop)
        task = _task_of(merge_trees(tree, layer), f" (in {source})")
        build_section(root_class(task), layer, "", f" (in {source})")
        tree = merge_trees(tree, layer)
    for override in task_overrides:
        tree["task"] = split_override(override)[1].strip()
    cfg = config_from_dict(tree, source=", ".join(map(os.fspath, paths)))
    rest = _migrate_overrides([o for o in overrides if o not in task_overrides], cfg.task)
    if rest:
        tree = config_to_dict(cfg)
        for override in rest:
            set_override(tree, override, type(cfg))
        cfg = config_from_dict(tree, source=COMMAND_LINE)
    return cfg


def _migrate_overrides(overrides: list[str], task: str) -> list[str]:
    """``key=value`` overrides with an older speechvq's keys renamed (or dropped) by the task's
    migration, a warning naming each: scripts written for it keep working."""
    out = []
    for override in overrides:
        key, raw = split_override(override)
        probe: dict[str, Any] = {}
        node = probe
        *heads, leaf = key.split(".")
        for head in heads:
            node = node.setdefault(head, {})
        node[leaf] = raw
        notes = get_task(task).migrate(probe)
        if not notes:
            out.append(override)
            continue
        for note in notes:
            warnings.warn(f"config (on the command line): {note}", stacklevel=3)
        path, node = [], probe
        while isinstance(node, dict) and len(node) == 1:
            (name, node), = node.items()
            path.append(name)
        if path and not isinstance(node, dict):
            out.append(f"{'.'.join(path)}={raw}")
    return out


def load_config_text(text: str, source: str = "<string>") -> Config:
    """Parse a YAML config given as text (for example one saved in an exp dir)."""
    return config_from_dict(parse_yaml(text, source), source=source)
