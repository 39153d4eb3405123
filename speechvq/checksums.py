"""Checksums a dump records when it is made, and their check (`speechvq validate DUMP`).

Every dump (speech audio, images, codes, clips) lists the SHA-256 of its data files in its own
metadata file when it is written, before the folder is renamed into place; `verify` compares
them with the files as they are now, so a file changed, truncated or damaged after the dump was
made is found before a training reads it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable, Mapping


def file_checksums(folder: str | Path, names: Iterable[str]) -> dict[str, str]:
    """{name: "sha256:<hex>"} of the files `names` present in `folder`."""
    sums = {}
    for name in names:
        f = Path(folder) / name
        if f.is_file():
            with open(f, "rb") as fh:
                sums[name] = "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()
    return sums


def verify(folder: str | Path, recorded: Mapping[str, str] | None,
           fail: Callable[[str], Exception]) -> bool:
    """Compare the files of `folder` with the checksums `recorded` when it was made.

    Args:
        fail: turns a sentence (what is wrong) into the error to raise, naming the dump.
    Returns:
        True when every file matches; False when nothing was recorded (an older dump).
    Raises:
        what `fail` makes: a recorded file is missing or differs.
    """
    if not isinstance(recorded, Mapping):
        return False
    now = file_checksums(folder, recorded)
    for name, digest in sorted(recorded.items()):
        if name not in now:
            raise fail(f"{name} is missing (it was part of the dump when it was made)")
        if now[name] != digest:
            raise fail(f"{name} differs from the dump that was made (its checksum does not "
                       f"match the one recorded then): it was changed or damaged")
    return True
