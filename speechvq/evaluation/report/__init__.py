"""`speechvq report --exp EXP`: one report of an experiment, in Markdown, JSON and figures.

Writes ``EXP/report/``:

- ``report.json``: every ``eval/<kind>_<name>.json`` block under ``<kind>.<name>`` (DESIGN.md's
  keys: ``units.<split>.<system>.<metric>``, ``conversion.<split>.<metric>``, ...), each number
  copied unchanged from its source; ``training.<metric>``, the last logged value of every
  numeric field of ``metrics.jsonl`` with ``steps`` and ``wall_time_s``; ``training_chain``, a
  list of the runs the model was initialised from (``train.init_from``, nearest first: ``exp``,
  ``init_from``, ``training``); ``sources.<block>``, the command, data, working directory,
  speechvq version and git commit behind each block (``units.test``, ``conversion.test_mel``,
  ``training``, ``training_chain.0``, ``report``); and what the task's renderer adds (speech:
  ``units_unscored.<split>``, the data's descriptions, the convert commands).
- ``report.md``: the same as tables, with the figures embedded (PNG, matplotlib Agg); the main
  tables also as CSV and LaTeX under ``tables/``.

``EXP/report`` is claimed while it is written (`speechvq.ownership.claim`: its lock; it is not
``eval/``, and holds only what `speechvq report` made).

The task-agnostic part is `core` (gathering, the training table, a generic table for results of a
kind no renderer knows, the atomic writes); each task's part is a renderer registered under its
name (`speech`), imported here when an exp of that task (config.yaml's ``task``, default
``speech``) is reported.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from speechvq.errors import DataError
from speechvq.ownership import claim
from speechvq.evaluation.report.core import (CHAIN, GENERIC, RENDERERS, Renderer, gather,
                                             generic_md, header_md, read_config,
                                             register_renderer, report_source,
                                             training_summary, write_report)

__all__ = ["make_report", "Renderer", "register_renderer", "renderer_for", "training_summary"]


def renderer_for(task: str) -> Renderer:
    """The renderer registered for `task`, importing ``speechvq.evaluation.report.<task>`` (which
    registers itself) the first time; the generic one when the task has no renderer."""
    if not isinstance(task, str):
        return GENERIC
    if task not in RENDERERS and task.isidentifier():
        module = f"{__name__}.{task}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
    return RENDERERS.get(task, GENERIC)


def make_report(exp_dir: str | os.PathLike) -> Path:
    """`speechvq report --exp EXP`: write ``EXP/report/{report.md, report.json, *.png}``.

    Args:
        exp_dir: the experiment dir (``eval/*.json``, ``metrics.jsonl``, ``config.yaml``).
    Returns:
        The path of ``report.md``.
    Raises:
        DataError: EXP is not a folder, or holds neither evaluations nor training metrics.
    """
    exp = Path(exp_dir)
    if not exp.is_dir():
        raise DataError(f"--exp '{exp}' is not a folder; give the exp dir of `speechvq train`")
    out = exp / "report"
    with claim(out, "report", inputs=[exp / "eval", exp / "metrics.jsonl", exp / "config.yaml"],
               ours_if=lambda p: (p / "report.json").is_file(), kind="dir"):
        config = read_config(exp)
        renderer = renderer_for(config.get("task", "speech"))
        g = gather(exp, renderer.kinds, config)
        renderer.extend(g)
        if g.empty():
            raise DataError(f"nothing to report in '{exp}': no eval/*.json and no "
                            "metrics.jsonl; run `speechvq train` and `speechvq evaluate` first")
        out.mkdir(parents=True, exist_ok=True)
        g.report["sources"]["report"] = report_source(exp)
        others = [k for k in g.report if k not in (*renderer.kinds, "training", CHAIN, "sources")]
        md = header_md(exp, g.report["sources"]["report"]) + renderer.render(g, out) + \
            generic_md(g, others)
        return write_report(out, g.report, md)
