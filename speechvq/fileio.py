"""The one atomic writer: every output goes to a temp file in its folder and is renamed.

A kill at any moment leaves the old file or the new one, never half of one (DESIGN.md,
conventions). `atomic_path` is the mechanism: it yields a temp path beside the target, with the
permissions a plain ``open(path, "w")`` would give (0666 minus the umask; ``tempfile.mkstemp``
alone makes private 0600 files), fsyncs the finished file, renames it onto the target with
`os.replace`, and removes it when the writing fails. Anything that writes to a path (numpy,
torch, soundfile, matplotlib) writes through it; the helpers below cover text, JSON and arrays::

    with atomic_path(out / "figure.png") as tmp:
        fig.savefig(tmp, format="png")
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "atomic_save_npy"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # os.umask can only be read by setting it


def _replace(src: str, dst: str) -> None:
    """`os.replace`, kept as one name so a test can inject a crash between write and rename."""
    os.replace(src, dst)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", *,
                stable_name: bool = False) -> Iterator[Path]:
    """Write `path` atomically: yield a temp path in the same folder, rename it onto `path` when
    the block ends without error (after an fsync of the file), remove it when the block raises.

    Args:
        path: the file to make; its parents are made.
        suffix: end of the temp name; writers that pick the format from the extension
            (soundfile) need ``path.suffix``.
        stable_name: the temp is ``.NAME<suffix>`` instead of a unique name, so a rerun
            overwrites the temp a killed run left (for large files such as checkpoints; only
            one writer per target may use it).
    Yields:
        The temp path (an empty file, unless `stable_name` and a killed run left one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if stable_name:
        tmp = str(path.with_name(f".{path.name}{suffix}"))
    else:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        _fsync(tmp)
        _replace(tmp, str(path))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text (``\\n`` line ends) to `path` atomically; parents are made."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write `obj` as JSON with sorted keys, `indent` spaces and a final newline, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray, *,
                    stable_name: bool = False) -> None:
    """Write `array` as a ``.npy`` file (no pickle) at exactly `path`, atomically
    (`stable_name` as `atomic_path`'s)."""
    with atomic_path(path, stable_name=stable_name) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
