"""Where speechvq caches what it generates (the built-in speech corpus, the built-in images):
``$SPEECHVQ_CACHE``, default ``~/.cache/speechvq`` (DESIGN.md, data flow)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$SPEECHVQ_CACHE`` or ``~/.cache/speechvq``."""
    return Path(os.environ.get("SPEECHVQ_CACHE") or Path.home() / ".cache" / "speechvq")
