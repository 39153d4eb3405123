"""The task registry: what a task (speech, image, video, prior) gives the shared core.

The core (config engine, Trainer, checkpoints, report) reaches a task only through the `Task` it
registered here, so it never imports a task module. A task module calls `register_task` when it
is imported; `get_task` imports the built-in task package on first use, the way a plugin system
discovers its plugins by name, so the core still names no task.

    register_task(Task(name="speech", sections={"data": ..., "model": ..., "eval": ...},
                       setup=setup_speech, load=load_speech_model))
    task = get_task(cfg.task)
    run = task.setup(cfg, "dump/train", valid="dump/dev")   # -> TaskRun
    loss, metrics = run.step_fn(run.model, run.batches[0])
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from speechvq.errors import ConfigError
from speechvq.models.outputs import StepFn

BUILTIN_TASKS = "speechvq.tasks"  # the package whose import registers the built-in tasks


@dataclass
class TaskRun:
    """Everything the Trainer needs for one run, as a task's `setup` builds it.

    Attributes:
        model: the nn.Module to train (initialised, frozen parts frozen).
        batches: map-style dataset; ``batches[step]`` is this rank's batch for that step, a pure
            function of (seed, step) so a resumed run sees the same batches.
        step_fn: ``(model, batch) -> (loss, metrics)``.
        extra_state: plain data saved in every checkpoint beside the weights (e.g. speakers).
        exp_files: file name -> text, written into the exp dir when training starts.
        valid_batches: a fixed list of held-out batches for the validation pass (None = off).
        lr_scales: parameter name -> its learning rate as a multiple of ``train.lr``.
    """

    model: Any
    batches: Any
    step_fn: StepFn
    extra_state: dict[str, Any] = field(default_factory=dict)
    exp_files: dict[str, str] = field(default_factory=dict)
    valid_batches: Sequence[Mapping[str, Any]] | None = None
    lr_scales: dict[str, float] = field(default_factory=dict)


def _no_check(cfg: Any) -> None:
    return None


def _no_migration(tree: dict[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class Task:
    """What one task supplies to the core.

    Attributes:
        name: the value of the config root's ``task`` key, and the checkpoints' ``kind``.
        sections: root section name (``data``, ``model``, ``eval``) -> its config dataclass.
        setup: ``(cfg, data, *, valid=None, rank=0, world_size=1) -> TaskRun``.
        load: ``(state, path) -> model`` in eval mode on the CPU, from a loaded checkpoint dict.
        check: cross-key checks on the resolved root config (each section checks itself too).
        migrate: rewrites an older config tree in place to today's keys; returns one note per
            change (a removed key, a moved key) for the user.
        doc: one line for ``speechvq config`` and errors.
        holds_out: without ``--valid`` data, `setup` validates on a held-out part of the
            training data (so the Trainer does not warn that there is no validation).
    """

    name: str
    sections: Mapping[str, type]
    setup: Callable[..., TaskRun]
    load: Callable[[dict, Path], Any]
    check: Callable[[Any], None] = _no_check
    migrate: Callable[[dict[str, Any]], list[str]] = _no_migration
    doc: str = ""
    holds_out: bool = False


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Make `task` known to the core under `task.name` (registering a name twice replaces it:
    reloading a module during development must not fail)."""
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task called `name`.

    Raises:
        ConfigError: no such task; the message lists the registered ones.
    """
    if name not in _TASKS:
        importlib.import_module(BUILTIN_TASKS)
    try:
        return _TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; this speechvq has: {', '.join(task_names())} "
                          f"(set `task:` at the root of the config)") from None


def task_names() -> list[str]:
    """Names of every registered task (the built-in ones included)."""
    importlib.import_module(BUILTIN_TASKS)
    return sorted(_TASKS)
