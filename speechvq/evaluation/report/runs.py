"""The training runs behind an experiment's model: its own, and every run it started from.

A run initialised from another (``train.init_from``: a WaveNet trained on the frozen codes of an
earlier run, say) owes part of its weights to that run, so the report follows the chain
(`training_chain`) and shows each run's training log (`training_summary` of ``metrics.jsonl``),
command, working directory and code version (``cmdline.txt``, `speechvq.provenance.read_runs`),
and which modules stayed frozen (``train.freeze``). ``train.init_from`` is usually relative to
the folder training ran in; `locate` tries the recorded folder, then the exp dir's ancestors (a
recipe's ``exp/mini_codes`` beside ``exp/mini``), then the current one. Task-agnostic: both keys
belong to the shared ``train`` section.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from speechvq.errors import DataError
from speechvq.models.outputs import STEP, STEP_TIME, Metric
from speechvq.provenance import read_runs

STEPS = Metric("steps", "steps")
WALL_TIME = Metric("wall_time_s", "wall time (s, summed step times)")
MAX_CHAIN = 20  # init_from links followed at most (a cycle stops earlier)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_metrics(path: Path) -> list[dict]:
    """The records of ``metrics.jsonl`` (empty when the file is absent)."""
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise DataError(f"{path}:{n}: not a JSON line; remove it or retrain") from None
    return rows


def training_summary(records: list[dict]) -> dict:
    """``training.<metric>``: the last logged value of every numeric field (in the order the log
    first has them), ``steps`` (the last step) and ``wall_time_s`` (the logged mean step times x
    the steps they cover, summed; None when no step time is logged)."""
    if not records:
        return {}
    out = {}
    for r in records:
        out.update((k, v) for k, v in r.items() if k != STEP and _number(v))
    out = {k: out[k] for k in dict.fromkeys(k for r in records for k in r) if k in out}
    out[STEPS.name] = int(records[-1].get(STEP, 0))
    prev, wall = 0, 0.0
    for r in records:
        if STEP_TIME.name in r:
            wall += float(r[STEP_TIME.name]) * (int(r[STEP]) - prev)
        prev = int(r.get(STEP, prev))
    out[WALL_TIME.name] = round(wall, 3) if any(STEP_TIME.name in r for r in records) else None
    return out


@dataclass
class Run:
    """One training run of the chain.

    Attributes:
        given: how it is named: the exp dir as given, or the ``train.init_from`` value that
            points to it.
        exp: its exp dir (None: not found, or a checkpoint file outside an exp dir).
        config: its config.yaml as plain YAML ({} when absent).
        records: its metrics.jsonl records.
        source: report.json's ``sources`` entry: command, data, file, cwd, speechvq_version,
            git_commit (of its last ``cmdline.txt`` block), init_from, frozen, found.
    """

    given: str
    exp: Path | None
    config: dict
    records: list[dict]
    source: dict

    @property
    def summary(self) -> dict:
        return training_summary(self.records)

    @property
    def init_from(self) -> str:
        value = (self.config.get("train") or {}).get("init_from")
        return value if isinstance(value, str) else ""


def read_config(exp: Path) -> dict:
    """``EXP/config.yaml`` as plain YAML (no task's sections are imported); {} when absent."""
    import yaml

    path = exp / "config.yaml"
    if not path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{path} is not YAML ({' '.join(str(e).split())}); retrain or fix it") \
            from None
    return cfg if isinstance(cfg, dict) else {}


def read_run(exp: Path | None, given: str, config: dict | None = None) -> Run:
    """The run recorded in `exp` (an empty one when `exp` is None)."""
    if exp is None:
        return Run(given, None, {}, [], {"found": False})
    config = read_config(exp) if config is None else config
    runs = read_runs(exp / "cmdline.txt")
    last = runs[-1] if runs else {}
    command = last.get("command")
    words = shlex.split(command) if command else []
    data = next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "--data"), None)
    train = config.get("train") or {}
    records = read_metrics(exp / "metrics.jsonl")
    source = {"command": command, "data": data,
              "file": str(exp / "metrics.jsonl") if records else None,
              **{k: last.get(k) for k in ("cwd", "speechvq_version", "git_commit")},
              "init_from": train.get("init_from") or None, "frozen": list(train.get("freeze")
                                                                          or []),
              "found": True}
    return Run(given, exp, config, records, source)


def search_bases(run: Run) -> list[Path]:
    """Where a relative path that `run`'s command was given may be relative to: the folder it
    ran in (when recorded), its exp dir's ancestors (nearest first), the current folder."""
    bases = [Path(run.source["cwd"])] if run.source.get("cwd") else []
    if run.exp is not None:
        bases += list(Path(os.path.abspath(run.exp)).parents)
    return bases + [Path.cwd()]


def locate(value: str, bases: Iterable[Path]) -> Path | None:
    """`value` as an existing path: absolute as is, else the first base it exists under."""
    path = Path(value)
    for candidate in [path] if path.is_absolute() else [b / path for b in bases]:
        if candidate.exists():
            return candidate
    return None


def training_chain(run: Run) -> list[Run]:
    """The runs `run` was initialised from, nearest first (its ``train.init_from``, that run's,
    ...); one that cannot be found ends the chain with ``source.found`` False."""
    chain, seen, current = [], {os.path.abspath(run.exp)} if run.exp else set(), run
    while current.init_from and len(chain) < MAX_CHAIN:
        found = locate(current.init_from, search_bases(current))
        exp = found
        if found is not None and found.is_file():  # a checkpoint: EXP/checkpoints/NAME.pt
            exp = found.parent.parent if found.parent.name == "checkpoints" else None
        if exp is not None and os.path.abspath(exp) in seen:
            break
        chain.append(read_run(exp, current.init_from))
        if exp is None:
            break
        seen.add(os.path.abspath(exp))
        current = chain[-1]
    return chain
