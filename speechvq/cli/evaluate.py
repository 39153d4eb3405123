"""``speechvq evaluate <what>``: the group that holds ``evaluate units`` (units.py),
``evaluate conversion`` (convert.py), ``evaluate images`` (images.py) and ``evaluate prior``
(prior.py), each registered by the
module of what it scores.
"""

from __future__ import annotations

import argparse

from speechvq.cli import convert, images, prior, units
from speechvq.cli.common import add_command


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` and its kinds to ``speechvq <command>``."""
    p = add_command(
        sub, "evaluate", None, help="unit, conversion, image and prior metrics",
        description="Score discrete units against phone alignments, conversions against "
                    "real recordings, or image reconstructions against the originals. Results "
                    "go to EXP/eval/<what>_<name>.json (EXP = the --model exp dir, or --exp) "
                    "and a table is printed.")
    kinds = p.add_subparsers(dest="what", metavar="<what>", required=True)
    units.register_evaluate(kinds)
    convert.register_evaluate(kinds)
    images.register_evaluate(kinds)
    prior.register_evaluate(kinds)
