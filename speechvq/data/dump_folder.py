"""What the array dumps (images, video clips, codes) share: how the folder is written, and how
an image or video dump is checked when it is opened and when a preparation is run again.

Each dump is a folder of ``.npy`` arrays and text files plus one JSON file saying what made it
and the SHA-256 of every other file (`speechvq.checksums`; ``speechvq validate DUMP``).
`write_dump_folder` builds it in ``OUT.tmp`` and renames it when complete, so a kill leaves no
half dump (DESIGN.md, "Data on disk"). `DumpFormat` holds what a kind of dump's messages say
(its name, the command that makes it) and the rule for a rerun: a complete dump made the same
way is kept, one made from another source or with other options is refused, never mixed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import numpy as np

from speechvq.checksums import file_checksums
from speechvq.errors import DataError
from speechvq.fileio import atomic_save_npy, atomic_write_json, atomic_write_text

__all__ = ["DumpFormat", "is_one_word", "write_dump_folder"]

D = TypeVar("D")


def is_one_word(name: str) -> bool:
    """`name` can be one line of a names file (classes.txt, clips.txt): not empty, no
    whitespace or control characters."""
    return bool(name) and not any(c.isspace() for c in name) and name.isprintable()


def write_dump_folder(out: Path, *, arrays: Mapping[str, np.ndarray], texts: Mapping[str, str],
                      meta_file: str, meta: Mapping[str, Any], replace: bool = False) -> None:
    """Write the dump folder `out`: built as ``OUT.tmp`` (what a killed run left there is
    removed first) and renamed when complete.

    Args:
        arrays: {file name: array} saved as .npy. texts: {file name: content}.
        meta_file: the JSON file written last: `meta` plus ``checksums``, the SHA-256 of every
            file of `arrays` and `texts`.
        replace: remove an existing `out` before the rename (the caller holds its claim);
            otherwise `out` must not exist.
    """
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed run left
    tmp.mkdir(parents=True)
    for name, array in arrays.items():
        atomic_save_npy(tmp / name, array)
    for name, text in texts.items():
        atomic_write_text(tmp / name, text)
    atomic_write_json(tmp / meta_file, {**meta, "checksums": file_checksums(tmp, [*arrays,
                                                                                  *texts])})
    if replace and out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


@dataclass(frozen=True)
class DumpFormat:
    """One kind of dump whose metadata is ``info.json``: its files and how its messages name it.

    Attributes:
        noun: what the messages call it ("image dump").
        command: the sub-command that makes it ("prepare-images").
        example: the arguments of an example of that command ("builtin dump/images").
        files: every file of a complete dump.
        version: the format version info.json records; a rerun refuses a dump of another.
    """

    noun: str
    command: str
    example: str
    files: tuple[str, ...]
    version: int

    def check_folder(self, path: Path) -> None:
        """Refuse a `path` that is not a folder holding every file of a dump (DataError)."""
        maker = f"speechvq {self.command}"
        if not path.is_dir():
            raise DataError(f"{self.noun} '{path}' does not exist; make it with `{maker}` "
                            f"(e.g. {maker} {self.example})")
        missing = [f for f in self.files if not (path / f).is_file()]
        if missing:
            raise DataError(f"'{path}' is not {_article(self.noun)} {self.noun} (no "
                            f"{', '.join(missing)}); make it with `{maker}`, or rerun it if it "
                            f"was stopped")

    def unreadable(self, path: Path, error: Exception) -> DataError:
        """The error for a dump whose files do not load."""
        return DataError(f"{self.noun} '{path}' is unreadable ({error}); remove it and rerun "
                         f"`speechvq {self.command}`")

    def damaged(self, path: Path, why: str) -> DataError:
        """The error for a dump whose files differ from what was written (`why`)."""
        return DataError(f"{self.noun} '{path}': {why}; remove it and rerun "
                         f"`speechvq {self.command}`")

    def existing(self, out: str | Path, open_dump: Callable[[Path], D], wanted: dict[str, Any],
                 holds: str) -> D | None:
        """The complete dump at `out` if it was made as `wanted` says (a rerun skips it); None
        when there is none.

        Args:
            open_dump: opens the dump folder (a dump with its info.json as ``.info``).
            wanted: the info.json entries a rerun must find (the format version is added).
            holds: how the refusal names what `out` holds ("a dump").
        Raises:
            DataError: `out` holds something else (another source, other options, not a dump).
        """
        out = Path(out)
        if not out.exists():
            return None
        dump = open_dump(out)
        info = dump.info  # type: ignore[attr-defined]
        if any(info.get(k) != v for k, v in {"version": self.version, **wanted}.items()):
            made = {k: info.get(k) for k in wanted}
            raise DataError(f"'{out}' already holds {holds} made from {made}, not {wanted}; "
                            f"remove it or give another output folder")
        return dump


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"
