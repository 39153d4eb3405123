"""Atomic file writes: every output goes to a temp name in its folder and is renamed.

A kill at any moment leaves the old file or the new one, never half of one. Temp files made by
`tempfile.mkstemp` are private (0600); `readable_tempfile` gives them the permissions a plain
``open(path, "w")`` would (0666 minus the umask), so outputs stay readable by others.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # os.umask can only be read by setting it


def readable_tempfile(folder: str | os.PathLike, prefix: str, suffix: str = ".tmp") -> str:
    """Create an empty temp file in `folder` with ordinary permissions; returns its path."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)
    return tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text (``\\n`` line ends) to `path` atomically; parents are made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = readable_tempfile(path.parent, f".{path.name}.")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
