"""Progress bars that suit where they are written: tqdm's redrawn bar on a terminal, plain lines
in a log file.

A bar redrawn with carriage returns is what a terminal wants and what a recipe's ``run.log``
cannot take (one run.log had a single 155 KB line of bars). When the stream is not a terminal,
`tqdm` here writes one ordinary line at most every `LOG_INTERVAL_S` seconds (and at the end), so
a redirected log stays readable with ``less`` or ``grep``. Every long loop in speechvq uses it in
place of ``tqdm.tqdm``; the interval can be set with ``SPEECHVQ_PROGRESS_INTERVAL`` (seconds).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm as _tqdm

__all__ = ["LOG_INTERVAL_S", "tqdm"]

LOG_INTERVAL_S = float(os.environ.get("SPEECHVQ_PROGRESS_INTERVAL", "60"))


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class tqdm(_tqdm):  # noqa: N801 - a drop-in for tqdm.tqdm
    """``tqdm.tqdm`` with plain lines (no ``\\r`` redraws) when its stream is not a terminal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        stream = kwargs.get("file") or sys.stderr
        self._as_lines = not _is_terminal(stream)
        if self._as_lines:
            kwargs["mininterval"] = max(float(kwargs.get("mininterval", 0)), LOG_INTERVAL_S)
            kwargs["dynamic_ncols"] = False
            kwargs.setdefault("ncols", 100)
        super().__init__(*args, **kwargs)

    def status_printer(self, file: Any):  # noqa: D102 - tqdm calls it as self.status_printer(fp)
        if not getattr(self, "_as_lines", False):
            return _tqdm.status_printer(file)

        def print_line(text: str) -> None:
            text = text.strip()
            if text:
                file.write(text + "\n")
                getattr(file, "flush", lambda: None)()
        return print_line
