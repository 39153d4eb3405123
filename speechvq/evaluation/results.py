"""Where evaluation results go and how they say what produced them.

Every ``speechvq evaluate`` run writes one JSON file, ``EXP/eval/<what>_<name>.json`` (DESIGN.md,
stage 4), holding its numbers under DESIGN.md's keys (``units.<name>.<system>.<metric>`` or
``conversion.<name>.<metric>``) beside ``command`` (the command line that reproduces them, in
`shlex` quoting), ``data`` (the paths it read) and where it ran (``cwd``, ``speechvq_version``,
``git_commit``). `speechvq.evaluation.report` gathers them.
Files are written to a temp name in the same folder and renamed, so a reader never sees half a
file; ``EXP/eval`` is claimed by `claim_results` (its lock, the output rules of
`speechvq.ownership`) for the whole of an evaluation, and by `write_result` for each write.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from speechvq.errors import ConfigError, DataError
from speechvq.fileio import atomic_write_json
from speechvq.ownership import claim
from speechvq.provenance import provenance

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def resolve_exp_dir(model: str | os.PathLike | None, exp: str | os.PathLike | None) -> Path:
    """The exp dir results go to: ``exp`` when given, else the ``--model`` exp dir.

    A ``.pt`` file inside ``EXP/checkpoints/`` counts as belonging to EXP.

    Raises:
        ConfigError: neither names an exp dir.
    """
    if exp is not None:
        return Path(exp)
    if model is not None:
        m = Path(model)
        if m.is_dir():
            return m
        if m.parent.name == "checkpoints":
            return m.parent.parent
    raise ConfigError(f"no exp dir to write the results to (--model {model} is not an exp dir); "
                      "pass --exp EXP")


def check_name(name: str, what: str = "--name") -> str:
    """Refuse a result name that cannot be part of a file name (``units_<name>.json``)."""
    if not _NAME.match(name or ""):
        raise ConfigError(f"{what} {name!r} must be letters, digits, '_', '.', '+' or '-' "
                          "(it becomes part of a file name), e.g. --name test")
    return name


def default_name(path: str | os.PathLike) -> str:
    """A result name from a data path: its folder or file stem (``dump/test`` -> ``test``)."""
    p = Path(path)
    name = p.stem if p.is_file() else p.name
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", name).lstrip("._-")
    return name or "data"


def command_line(parts: Iterable[Any]) -> str:
    """A shell-quoted command line from its words; None and False words (and the option that
    precedes a None value) are left out, True options are kept as bare flags."""
    words: list[str] = []
    items = list(parts)
    for k, w in enumerate(items):
        nxt = items[k + 1] if k + 1 < len(items) else ""
        if w is None or w is False:
            continue
        if isinstance(w, str) and w.startswith("--") and (nxt is None or nxt is False):
            continue
        words.append(str(w) if w is not True else "")
    return shlex.join([w for w in words if w != ""])


def _is_results_dir(path: Path) -> bool:
    """An ``EXP/eval`` written before it carried the ownership marker: results and their
    figures only."""
    return path.is_dir() and all(p.suffix in (".json", ".png") and p.is_file()
                                 for p in path.iterdir())


@contextmanager
def claim_results(exp_dir: str | os.PathLike,
                  inputs: Iterable[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """Hold ``EXP/eval``'s lock for an evaluation that reads `inputs` (None skipped), checking
    the output rules first (`speechvq.ownership.claim`). Yields: the eval folder."""
    folder = Path(exp_dir) / "eval"
    with claim(folder, "evaluate", inputs=inputs, ours_if=_is_results_dir, kind="dir"):
        yield folder


def write_result(exp_dir: str | os.PathLike, kind: str, name: str, result: dict) -> Path:
    """Write ``EXP/eval/<kind>_<name>.json`` atomically, under `claim_results`; adds
    ``created``, ``output`` (the file's path) and the `speechvq.provenance.provenance` fields
    (``cwd``: the folder the command's relative paths are relative to, ``speechvq_version``,
    ``git_commit``) to `result` in place, so the caller's dict equals the file. Returns: the
    path."""
    path = Path(exp_dir) / "eval" / f"{kind}_{check_name(name)}.json"
    with claim_results(exp_dir):
        result.update(created=time.strftime("%Y-%m-%d %H:%M:%S"), output=str(path),
                      **provenance())
        atomic_write_json(path, result)
    return path


def read_result(path: str | os.PathLike) -> dict:
    """Read one evaluation JSON (DataError naming the file when it is not one)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable JSON file ({e}); rerun the `speechvq "
                        "evaluate` command that writes it") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} does not hold a JSON object; rerun `speechvq evaluate`")
    return obj
