"""The output rules every writing command follows, checked in one place: `claim`.

1. An output is never one of its inputs: it may not be an input, lie inside an input folder, or
   hold an input (``encode --out DATA/wav.scp``, ``convert --src a.wav -o a.wav`` are refused).
2. Only what speechvq itself made is ever replaced or deleted. Each folder that holds outputs
   has a marker file, ``.speechvq``, with one line ``NAME<TAB>COMMAND`` per entry a command made
   there (``.`` is the folder itself: an exp dir, a dump, a conversion dir, a split dir). An
   existing output is replaced only when its marker names the same command, when it is an empty
   folder, or when it carries the signs of one made before markers existed (a dump's
   ``dump.json``, an exp dir's ``config.yaml``, ...; each command passes its own `ours_if`), so
   reruns and resumes keep working. Anything else is refused with its path and "nothing was
   changed".
3. Writes never follow a link out of the output dir: a folder output is refused while any link
   inside it leads outside it (a ``checkpoints/`` linked to another run's folder). The output
   dir itself may be a link (``exp -> /scratch/exp``).

`claim(OUT, COMMAND, inputs=...)` takes OUT's lock (`speechvq.locks`) and then checks the rules,
so nothing can change between the check and the writes; it marks OUT as made by COMMAND when the
block ends. A command that writes several entries into a folder it does not own (``prepare``
writes split dirs into OUT) claims OUT with ``check=False`` and checks and marks each entry.
``speechvq fix`` edits its data dir in place by design (keeping backups) and claims nothing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from speechvq.errors import OutputError
from speechvq.fileio import check_output_kind
from speechvq.locks import output_lock

__all__ = ["claim", "Claim", "MARKER", "made_here", "check_not_input"]

MARKER = ".speechvq"  # in a folder: the entries speechvq made there, and which command
_HEADER = "# made by speechvq: NAME<TAB>COMMAND; `.` is this folder. Do not edit.\n"
_NOTHING = "nothing was changed"

OursIf = Callable[[Path], bool]
_CLAIMED: dict[str, str] = {}  # output -> command, for the claims this process holds


def made_here(folder: str | os.PathLike) -> dict[str, str]:
    """{entry name: command} recorded in ``folder/.speechvq`` (empty when there is none)."""
    try:
        text = (Path(folder) / MARKER).read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    entries = {}
    for line in text.splitlines():
        name, tab, command = line.partition("\t")
        if tab and not name.startswith("#"):
            entries[name] = command
    return entries


def _mark(path: Path, command: str) -> None:
    """Record that `command` made `path` (a folder: in its own marker; a file: in its folder's)."""
    folder, name = (path, ".") if path.is_dir() else (path.parent, path.name)
    if made_here(folder).get(name) == command:
        return
    marker = folder / MARKER
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o666)
    try:  # one append per line: runs marking two files of one folder at once both keep theirs
        line = f"{name}\t{command}\n"
        os.write(fd, ((_HEADER if os.fstat(fd).st_size == 0 else "") + line).encode("utf-8"))
    finally:
        os.close(fd)


def _related(out: Path, inp: Path) -> str | None:
    """How `out` collides with the input `inp` (both resolved), or None."""
    if out == inp:
        return "is also an input of this command"
    if inp in out.parents:
        return f"is inside the input '{inp}'"
    if out in inp.parents:
        return f"holds the input '{inp}'"
    return None


def check_not_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Rule 1: raise OutputError when `out` is, lies inside or holds one of `inputs` (links
    resolved; None inputs are skipped)."""
    resolved = Path(out).resolve()
    for inp in inputs:
        if inp is None:
            continue
        why = _related(resolved, Path(inp).resolve())
        if why:
            raise OutputError(f"output '{out}' {why}: an output is never one of its inputs; "
                              f"write it elsewhere; {_NOTHING}")


def _escaping_link(root: Path) -> tuple[Path, Path] | None:
    """The first link under the folder `root` that leads outside it, with its target."""
    base = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):  # links to folders are not entered
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                target = p.resolve()
                if not target.is_relative_to(base):
                    return p, target
    return None


class Claim:
    """What a command holding OUT's lock checks and marks (see the module docstring)."""

    def __init__(self, path: Path, command: str, inputs: list) -> None:
        self.path, self.command, self.inputs = path, command, inputs

    def owns(self, p: Path, ours_if: OursIf | None = None) -> bool:
        """True when `p` may be replaced or deleted by this command (rule 2)."""
        if not os.path.lexists(p):
            return True
        if p.is_dir():  # a link to a folder counts as the folder (``exp -> /scratch/exp``)
            if made_here(p).get(".") == self.command:
                return True
            if all(e.name == MARKER for e in p.iterdir()):  # empty
                return True
        else:
            here = made_here(p.parent)
            if self.command in (here.get(p.name), here.get(".")):
                return True
        return bool(ours_if and ours_if(p))

    def check(self, p: str | os.PathLike, ours_if: OursIf | None = None) -> None:
        """Rules 1-3 for the output `p` (OUT itself or an entry this command writes into it).

        Raises:
            OutputError: naming `p`, the rule and "nothing was changed".
        """
        p = Path(p)
        check_not_input(p, self.inputs)
        if not self.owns(p, ours_if):
            where = p / MARKER if p.is_dir() else p.parent / MARKER
            raise OutputError(f"'{p}' exists and was not made by `speechvq {self.command}` "
                              f"(no record of it in {where}); only files the command made are "
                              f"replaced or deleted: remove it yourself or choose another "
                              f"output; {_NOTHING}")
        if p.is_dir():
            link = _escaping_link(p)
            if link is not None:
                raise OutputError(f"'{link[0]}' inside the output '{p}' is a link to "
                                  f"'{link[1]}', outside it; writes never follow a link out of "
                                  f"the output dir: replace the link with a folder or file of "
                                  f"its own (or make '{p}' itself the link); {_NOTHING}")

    def mark(self, p: str | os.PathLike) -> None:
        """Record that this command made `p` (call it once `p` exists)."""
        _mark(Path(p), self.command)


@contextmanager
def claim(path: str | os.PathLike, command: str, *,
          inputs: Iterable[str | os.PathLike | None] = (), ours_if: OursIf | None = None,
          check: bool = True, kind: str | None = None) -> Iterator[Claim]:
    """Hold OUT's lock and check the output rules for it; mark it as this command's at the end.

    Args:
        path: the output (a folder or a file; it need not exist).
        command: the command's name (``dump``, ``train``, ...), recorded in the marker.
        inputs: every path the command reads (files or folders; None is skipped).
        ours_if: recognises an output made by this command before markers existed.
        check: False for a folder the command only writes entries into (it checks each with
            `Claim.check` and marks each with `Claim.mark`).
        kind: ``"file"`` or ``"dir"``: OUT must not exist as the other kind (checked first,
            before the lock, so a folder given as a units file costs nothing;
            `speechvq.fileio.check_output_kind`).
    Yields:
        The `Claim`, to check and mark further entries.
    Raises:
        LockedError: another run holds OUT's lock. OutputError: a rule is broken.
    """
    path = Path(path)
    key = os.path.abspath(path)
    if kind is not None:
        check_output_kind(path, kind)
    with output_lock(path):
        c = Claim(path, command, [i for i in inputs if i is not None])
        if _CLAIMED.get(key) == command:  # nested in this process's own claim: checked there
            yield c
            return
        if check:
            c.check(path, ours_if)
        _CLAIMED[key] = command
        try:
            yield c
        finally:
            del _CLAIMED[key]
            if check and path.exists():
                c.mark(path)
