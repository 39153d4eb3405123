"""The report core: gathers an experiment's results whatever its task, and writes the report.

`gather` reads every ``EXP/eval/<kind>_<name>.json`` (`speechvq.evaluation.results`) by its kind
(a ``kind`` field, else the file name before the first underscore), and the training runs behind
the model (`speechvq.evaluation.report.runs`): the exp's own (``metrics.jsonl``, ``config.yaml``,
``cmdline.txt``) and each run it was initialised from (``train.init_from``). A task's
`Renderer`, registered under the task's name with `register_renderer`, adds blocks of its own and
writes its Markdown sections, figures and tables (`speechvq.evaluation.report.tables`: Markdown,
CSV and LaTeX from one `Table`); a kind of result that no renderer claims is still listed, as a
table of its numeric leaves (`generic_md`). `write_report` writes report.json and report.md, each
to a temp name renamed. Every block's source names the command that made it, the folder it ran
in and the speechvq version and git commit (`speechvq.provenance`); so does the report's own.

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
from speechvq.evaluation.report.runs import (STEPS, WALL_TIME, Run, read_config, read_run,
                                             search_bases, training_chain, training_summary)
from speechvq.evaluation.results import read_result
from speechvq.fileio import atomic_write_text
from speechvq.models.outputs import NOT_AVAILABLE, TRAINER, Metric, by_name
from speechvq.provenance import FIELDS as PROVENANCE
from speechvq.provenance import provenance

__all__ = ["Gathered", "Renderer", "gather", "read_config", "search_bases", "training_summary"]

CHAIN = "training_chain"  # report.json: the runs the model was initialised from, nearest first
RESERVED = ("training", CHAIN, "sources")  # report.json blocks no eval file may claim
RESULT_FIELDS = ("command", "data", "details", "created", "output", "kind", *PROVENANCE)
FigureFn = Callable[[Run, str], "str | None"]  # (run, file stem) -> the PNG drawn, or None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------- gathering


@dataclass
class Gathered:
    """What an exp dir holds, for the renderers; `report` is report.json's content."""

    exp: Path
    config: dict                                      # config.yaml as plain YAML ({} if none)
    report: dict = field(default_factory=lambda: {"training": {}, CHAIN: [], "sources": {}})
    details: dict = field(default_factory=dict)      # kind -> name -> figure inputs (no JSON)
    runs: list[Run] = field(default_factory=list)    # the exp's own run, then its chain

    @property
    def records(self) -> list[dict]:
        """The exp's own metrics.jsonl records."""
        return self.runs[0].records if self.runs else []

    def add(self, kind: str, name: str, block, source: dict, details: dict | None = None) -> None:
        """Put `block` at ``report[kind][name]``, its source at ``sources["kind.name"]``."""
        self.report.setdefault(kind, {})[name] = block
        self.report["sources"][f"{kind}.{name}"] = source
        self.details.setdefault(kind, {})[name] = details or {}

    def empty(self) -> bool:
        return not any(v for k, v in self.report.items() if k != "sources")

    def bases(self, src: dict | None) -> list[Path]:
        """Where the relative paths of a block's command may be relative to: the folder it ran
        in (when recorded), then those of the exp's own run (`search_bases`)."""
        own = search_bases(self.runs[0]) if self.runs else [Path.cwd()]
        return ([Path(src["cwd"])] if src and src.get("cwd") else []) + own

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
    """Every result of `exp` and the training runs behind its model.

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
                                       "created": result.get("created"),
                                       **{k: result.get(k) for k in PROVENANCE}},
                  result.get("details", {}))
    own = read_run(exp, str(exp), g.config)
    g.runs = [own, *training_chain(own)]
    g.report["training"] = own.summary
    if own.records:
        g.report["sources"]["training"] = own.source
    for i, run in enumerate(g.runs[1:]):
        g.report[CHAIN].append({"exp": None if run.exp is None else str(run.exp),
                                "init_from": run.given, "training": run.summary})
        g.report["sources"][f"{CHAIN}.{i}"] = run.source
    return g


# ---------------------------------------------------------------------------------- rendering


def format_number(v) -> str:
    """A logged number as a table cell: integers as they are, floats to 4 significant digits."""
    return NOT_AVAILABLE if v is None else str(v) if isinstance(v, int) else f"{v:.4g}"


def ran_in(src: dict | None) -> str:
    """' in `/folder` (speechvq 0.1.0, git commit 3f2a...)', or what was not recorded."""
    src = src or {}
    if not src.get("cwd"):
        return " (working directory and code version not recorded: an older speechvq wrote it)"
    return (f" in `{src['cwd']}` (speechvq {src.get('speechvq_version') or '?'}, git commit "
            f"{src.get('git_commit') or '?'})")


def source_line(src: dict | None) -> str:
    """'Produced by `command` in `folder` (speechvq ..., git commit ...; inputs: ...).'"""
    if not src or not src.get("command"):
        return ""
    data = src.get("data")
    inputs = ", ".join(f"{k} `{v}`" for k, v in data.items() if isinstance(v, str)) \
        if isinstance(data, dict) else f"data `{data}`" if data else ""
    return f"Produced by `{src.get('command')}`{ran_in(src)}" + \
        (f"; inputs: {inputs}." if inputs else ".")


def figure_links(figures: Iterable[str | None]) -> list[str]:
    """Markdown image lines for the figures drawn (None: not drawn)."""
    return [f"![{f}]({f})" for f in figures if f]


def report_source(exp: Path) -> dict:
    """``sources.report``: the command that writes this report and where it runs."""
    return {"command": f"speechvq report --exp {shlex.quote(str(exp))}",
            "created": time.strftime("%Y-%m-%d %H:%M:%S"), **provenance()}


def header_md(exp: Path, src: dict) -> list[str]:
    return [f"# Report: {exp}", "",
            f"Generated {src['created']} by `{src['command']}`{ran_in(src)}. Every number is "
            "also in report.json, with the command that produced it, the folder it ran in and "
            "the speechvq version and git commit. Relative paths in a command are relative to "
            "the folder it ran in.", ""]


def run_md(run: Run, title: str, intro: list[str], figures: Iterable[str | None] = (),
           metrics: Iterable[Metric] = ()) -> list[str]:
    """One training run as a table: one row per field, labelled by its `Metric` (the task's
    `metrics`, the Trainer's own fields, the summary's) or, for a name defined nowhere, by the
    name itself."""
    lines = [title, "", *intro]
    if not run.records:
        return lines + ["No metrics.jsonl in the exp dir." if run.exp else "", ""]
    labels = by_name(metrics, TRAINER, (STEPS, WALL_TIME))
    lines += ["| metric (last logged) | value |", "|---|---:|"]
    lines += [f"| {labels[k].label if k in labels else k} | {format_number(v)} |"
              for k, v in run.summary.items()]
    return lines + ["", source_line(run.source), ""] + figure_links(figures) + [""]


def training_md(g: Gathered, figure: FigureFn | None = None,
                metrics: Iterable[Metric] = ()) -> list[str]:
    """A section per training run behind the model: the exp's own, then each run it was
    initialised from (``train.init_from``), with what stayed frozen; `figure` draws a run's
    curves (file stems ``training_curves``, ``training_curves_1``, ...)."""
    lines = []
    for i, run in enumerate(g.runs):
        later = g.runs[i - 1] if i else None
        intro = []
        if run.init_from:
            frozen = run.source.get("frozen") or []
            intro.append(f"Initialised from `{run.init_from}` (`train.init_from`; its training "
                         "follows)" + (f", with {', '.join(frozen)} frozen: those weights are "
                                       "that run's." if frozen else "."))
        if later is not None:
            title = f"## Training of `{run.given}`, which `{later.given}` started from"
            intro.append(f"Found at `{run.exp}`." if run.exp else
                         f"Not found (looked for `{run.given}` under "
                         f"{', '.join(f'`{b}`' for b in search_bases(later)[:3])}, ...): its "
                         "training log is not in this report.")
        else:
            title = "## Training"
        stem = "training_curves" + (f"_{i}" if i else "")
        figs = [figure(run, stem)] if figure is not None and run.records else []
        lines += run_md(run, title, intro + ([""] if intro else []), figs, metrics)
    return lines


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
