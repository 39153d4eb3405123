"""``speechvq report``: an exp dir's results and training logs -> report.md, report.json and
figures (the recipes' last stage). The work is `speechvq.evaluation.report`, imported by the
command (it brings matplotlib) so ``speechvq --help`` stays fast.
"""

from __future__ import annotations

import argparse

from speechvq.cli.common import add_command, warnings_as_lines


def cmd_report(args: argparse.Namespace) -> int:
    warnings_as_lines("report")
    from speechvq.evaluation.report import make_report
    print(make_report(args.exp))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``report`` to ``speechvq <command>``."""
    p = add_command(
        sub, "report", cmd_report,
        help="report.md, report.json and figures (the recipes' last stage)",
        description="Gather EXP/eval/*.json, metrics.jsonl and config.yaml into "
                    "EXP/report/report.md, report.json (every number with the command and data "
                    "that produced it) and PNG figures: training curves, code usage, code-phone "
                    "co-occurrence, spectrograms of conversions.\n\nexample:\n"
                    "  speechvq report --exp exp/mini")
    p.add_argument("--exp", required=True, metavar="EXP", help="experiment dir")
