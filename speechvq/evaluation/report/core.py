"""The report core: gathers an experiment's results whatever its task, and writes the report.

`gather` reads every ``EXP/eval/<kind>_<name>.json`` (`speechvq.evaluation.results`) by its kind
(a ``kind`` field, else the file name before the first underscore), every numeric field of
``metrics.jsonl`` (`training_summary`), ``config.yaml`` (plain YAML) and ``cmdline.txt`` (the
training command, for ``sources.training``). A task's `Renderer`, registered under the task's name
with `register_renderer`, adds blocks of its own and writes its Markdown sections and figures;
a kind of result that no renderer claims is still listed, as a table of its numeric leaves
(`generic_md`). `write_report` writes report.json and report.md, each to a temp name renamed.

Every number in report.json is copied unchanged from its source. This module imports no task.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from speechvq.errors import DataError
from speechvq.evaluation.results import read_result
from speechvq.fileio import atomic_write_text
from speechvq.models.outputs import STEP, STEP_TIME, TRAINER, Metric, by_name

RESERVED = ("training", "sources")  # report.json blocks no eval file may claim
RESULT_FIELDS = ("command", "data", "details", "created", "output", "kind")  # not its numbers
STEPS = Metric("steps", "steps")
WALL_TIME = Metric("wall_time_s", "wall time (s, summed step times)")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------------------------------ training


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


def training_command(exp: Path) -> tuple[str | None, str | None]:
    """(last command line of cmdline.txt, its --data value)."""
    path = exp / "cmdline.txt"
    if not path.is_file():
        return None, None
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    if not lines:
        return None, None
    words = shlex.split(lines[-1])
    data = next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "--data"), None)
    return lines[-1], data


# ---------------------------------------------------------------------------------- gathering


@dataclass
class Gathered:
    """What an exp dir holds, for the renderers; `report` is report.json's content."""

    exp: Path
    config: dict                                      # config.yaml as plain YAML ({} if none)
    report: dict = field(default_factory=lambda: {"training": {}, "sources": {}})
    details: dict = field(default_factory=dict)      # kind -> name -> figure inputs (no JSON)
    records: list = field(default_factory=list)      # metrics.jsonl

    def add(self, kind: str, name: str, block, source: dict, details: dict | None = None) -> None:
        """Put `block` at ``report[kind][name]``, its source at ``sources["kind.name"]``."""
        self.report.setdefault(kind, {})[name] = block
        self.report["sources"][f"{kind}.{name}"] = source
        self.details.setdefault(kind, {})[name] = details or {}

    def empty(self) -> bool:
        return not any(v for k, v in self.report.items() if k != "sources")


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


def result_kind(path: Path, result: dict) -> tuple[str, str]:
    """(kind, name) of ``eval/<kind>_<name>.json``: the ``kind`` field when the file has one."""
    head, _, rest = path.stem.partition("_")
    kind = result.get("kind") if isinstance(result.get("kind"), str) else head
    return kind, (rest if kind == head and rest else path.stem)


def _blocks(path: Path, result: dict, kind: str, name: str, strict: bool) -> dict:
    """name -> block of one result: its ``<kind>`` mapping of names to blocks; for a kind no
    renderer claims, a block that is not such a mapping (or the file's numbers) under `name`."""
    value = result.get(kind)
    if strict:
        if not isinstance(value, dict):
            raise DataError(f"{path} has no '{kind}' block; rerun `speechvq evaluate {kind}`")
        return value
    if isinstance(value, dict) and value and all(isinstance(b, dict) for b in value.values()):
        return value
    if value is None:
        value = {k: v for k, v in result.items() if k not in RESULT_FIELDS}
    return {name: value}


def gather(exp: Path, kinds: Iterable[str] = (), config: dict | None = None) -> Gathered:
    """Every result and the training log of `exp`.

    Args:
        exp: the exp dir.
        kinds: the kinds the task's renderer owns: always in report.json (empty when absent),
            and a file of such a kind without its ``<kind>`` block is an error.
        config: config.yaml's content (default: read it).
    Raises:
        DataError: a result file that cannot be read, lacks its block, or claims a reserved kind.
    """
    kinds = tuple(kinds)
    g = Gathered(exp, read_config(exp) if config is None else config)
    g.report.update({k: {} for k in kinds})
    for path in sorted((exp / "eval").glob("*.json")):
        if path.name.startswith("."):
            continue
        result = read_result(path)
        kind, name = result_kind(path, result)
        if kind in RESERVED:
            raise DataError(f"{path}: '{kind}' is the report's own block; rename the file "
                            "(eval/<kind>_<name>.json)")
        for split, block in _blocks(path, result, kind, name, kind in kinds).items():
            g.add(kind, split, block, {"command": result.get("command"),
                                       "data": result.get("data"), "file": str(path),
                                       "created": result.get("created")},
                  result.get("details", {}))
    g.records = read_metrics(exp / "metrics.jsonl")
    g.report["training"] = training_summary(g.records)
    if g.records:
        command, data = training_command(exp)
        g.report["sources"]["training"] = {"command": command, "data": data,
                                           "file": str(exp / "metrics.jsonl")}
    return g


# ---------------------------------------------------------------------------------- rendering


def format_number(v) -> str:
    """A logged number as a table cell: integers as they are, floats to 4 significant digits."""
    return "-" if v is None else str(v) if isinstance(v, int) else f"{v:.4g}"


def source_line(src: dict | None) -> str:
    """'Produced by `command` (inputs: ...).' for a block's source."""
    if not src or not src.get("command"):
        return ""
    data = src.get("data")
    inputs = ", ".join(f"{k} `{v}`" for k, v in data.items() if isinstance(v, str)) \
        if isinstance(data, dict) else f"data `{data}`" if data else ""
    return f"Produced by `{src.get('command')}`" + (f" (inputs: {inputs})." if inputs else ".")


def figure_links(figures: Iterable[str | None]) -> list[str]:
    """Markdown image lines for the figures drawn (None: not drawn)."""
    return [f"![{f}]({f})" for f in figures if f]


def header_md(exp: Path) -> list[str]:
    return [f"# Report: {exp}", "",
            f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `speechvq report --exp {exp}`. "
            "Every number is also in report.json, with the command and data that produced it.", ""]


def training_md(g: Gathered, figures: Iterable[str | None] = (),
                metrics: Iterable[Metric] = ()) -> list[str]:
    """The training summary as a table: one row per field, labelled by its `Metric` (the task's
    `metrics`, the Trainer's own fields, the summary's) or, for a name defined nowhere, by the
    name itself."""
    t = g.report["training"]
    if not t:
        return ["## Training", "", "No metrics.jsonl in the exp dir.", ""]
    labels = by_name(metrics, TRAINER, (STEPS, WALL_TIME))
    lines = ["## Training", "", "| metric (last logged) | value |", "|---|---:|"]
    lines += [f"| {labels[k].label if k in labels else k} | {format_number(v)} |"
              for k, v in t.items()]
    return lines + ["", source_line(g.report["sources"].get("training")), ""] + \
        figure_links(figures) + [""]


def numeric_leaves(obj, prefix: str = "") -> list[tuple[str, float]]:
    """(dotted path, number) for every number in nested dicts and lists, in order."""
    if _number(obj):
        return [(prefix, obj)]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, list) else ()
    return [leaf for k, v in items for leaf in numeric_leaves(v, f"{prefix}.{k}" if prefix
                                                               else str(k))]


def generic_md(g: Gathered, kinds: Iterable[str]) -> list[str]:
    """Sections for every block of a kind in `kinds`: a table of its numeric leaves."""
    lines = []
    for kind in kinds:
        for name, block in g.report.get(kind, {}).items():
            leaves = numeric_leaves(block)
            rows = [f"| {k or kind} | {format_number(v)} |" for k, v in leaves]
            table = ["| field | value |", "|---|---:|", *rows] if rows else ["No numbers."]
            lines += [f"## {kind}: {name}", "", *table, "",
                      source_line(g.report["sources"].get(f"{kind}.{name}")), ""]
    return lines


def write_report(out: Path, report: dict, md: list[str]) -> Path:
    """Write ``out/report.json`` and ``out/report.md`` atomically; returns report.md's path."""
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / "report.md", "\n".join(md).rstrip() + "\n")
    return out / "report.md"


# ---------------------------------------------------------------------------------- renderers


@dataclass(frozen=True)
class Renderer:
    """How one task's results are reported."""

    kinds: tuple[str, ...]                            # report.json blocks it owns and renders
    render: Callable[[Gathered, Path], list[str]]     # its Markdown lines; draws figures in out
    extend: Callable[[Gathered], None] = lambda g: None  # adds blocks of its own after `gather`


def _generic(g: Gathered, out: Path) -> list[str]:
    return training_md(g)


GENERIC = Renderer((), _generic)  # a task without a renderer: training table, numeric leaves
RENDERERS: dict[str, Renderer] = {}


def register_renderer(task: str, renderer: Renderer) -> None:
    """Report exps of `task` (config.yaml's ``task``) with `renderer`."""
    RENDERERS[task] = renderer
