"""What produced a file: the speechvq version, the git commit of its code, the working directory.

Every record a command leaves carries it, so a number can be traced to the code and the folder its
command ran in (relative paths in a command are relative to that folder): `provenance()` goes
into ``eval/*.json``, a conversion dir's ``conversion.json`` and the report; a training run
appends a `run_info` block to ``EXP/cmdline.txt``, which `read_runs` reads back::

    # 2025-01-01 12:00:00
    speechvq train --config conf/train.yaml --data dump/train --exp exp/mini
    # cwd /home/me/speechvq/recipes/mini
    # speechvq 0.1.0, git commit 3f2a..., python 3.11.7
    # torch==2.13.0+cpu numpy==2.4.6 ...

Blocks written before the ``# cwd`` line existed read back with ``cwd`` None.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from speechvq import __version__

UNKNOWN = "unknown"  # the commit of code that is not a git checkout (an installed wheel)
FIELDS = ("cwd", "speechvq_version", "git_commit")  # the keys `provenance` adds to a record
PACKAGES = ("torch", "numpy", "soundfile", "soxr", "librosa", "scikit-learn", "pyyaml")
_VERSION_LINE = re.compile(r"^# speechvq (\S+), git commit (\S+)")


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the checkout speechvq's code lives in (``-dirty`` when its tracked files
    have uncommitted changes), or ``unknown``."""
    here = Path(__file__).resolve().parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return UNKNOWN
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                str(here)], cwd=here, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    return UNKNOWN


def provenance() -> dict[str, str]:
    """``{"cwd", "speechvq_version", "git_commit"}`` of this process."""
    return {"cwd": os.getcwd(), "speechvq_version": __version__, "git_commit": git_commit()}


def run_info(command: Sequence[str] | None = None) -> str:
    """One cmdline.txt block (module docstring): the command (default: this process's argv),
    the folder it ran in, the speechvq version and git commit, package versions."""
    where = provenance()
    versions = []
    for pkg in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{pkg}=={importlib.metadata.version(pkg)}")
    argv = list(command) if command is not None else \
        ([Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else [])
    return (f"# {time.strftime('%Y-%m-%d %H:%M:%S')}\n{shlex.join(argv)}\n"
            f"# cwd {where['cwd']}\n"
            f"# speechvq {where['speechvq_version']}, git commit {where['git_commit']}, python "
            f"{platform.python_version()}\n# {' '.join(versions)}\n")


def read_runs(path: str | os.PathLike) -> list[dict]:
    """The runs a cmdline.txt records, oldest first: ``{"command", "cwd", "speechvq_version",
    "git_commit"}`` each (None where the block does not say); [] when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return []
    runs: list[dict] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        if not line.startswith("#"):
            runs.append({"command": line, **dict.fromkeys(FIELDS)})
        elif runs and line.startswith("# cwd "):
            runs[-1]["cwd"] = line[len("# cwd "):]
        elif runs and (m := _VERSION_LINE.match(line)):
            runs[-1].update(speechvq_version=m.group(1), git_commit=m.group(2).rstrip(","))
    return runs
