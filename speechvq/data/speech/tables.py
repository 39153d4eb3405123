"""Kaldi table files (``key rest-of-line``): id checks, strict reading, sorted atomic writing.

The format of Kaldi's data dirs (Povey et al., *The Kaldi Speech Recognition Toolkit*, ASRU 2011;
https://kaldi-asr.org/doc/data_prep.html): one entry per line, the key, a space, the value; UTF-8;
sorted by key in ``LC_ALL=C`` (byte) order; unique keys. Python's `str` order is code-point order,
which for UTF-8 is byte order, so ``sorted()`` is exactly ``LC_ALL=C sort -k1,1``.

Every problem is a `DataError` reading ``FILE:LINE: what is wrong; how to fix it``. The same parser
runs leniently for `speechvq fix` (`parse_table(..., strict=False)`): blank lines, Windows line
endings, stray whitespace, malformed lines and repeated keys are dropped or repaired and counted,
while invalid ids still raise, since renaming them is the user's call.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

from speechvq.errors import DataError
from speechvq.fileio import atomic_write_text, read_text  # noqa: F401  (re-exported)

_SEP = re.compile(r"[ \t]+")
#: UTF-8 bytes an id may take: it becomes a file name (at most 255 bytes on common file systems)
#: inside a temp name (``.ID.wav.<8 random characters>.wav``, 18 bytes more) or beside a lock
#: file
MAX_ID_BYTES = 200
#: Unicode categories an id may not hold: control (Cc), format (Cf: U+200B zero width space,
#: U+202E right-to-left override, which makes a name display unlike its bytes), surrogate (Cs),
#: private use (Co) and unassigned (Cn)
_INVISIBLE = {"Cc": "a control character", "Cf": "an invisible format character",
              "Cs": "a surrogate", "Co": "a private-use character",
              "Cn": "an unassigned code point"}
KEY_NAMES = {"wav.scp": "recording id", "spk2utt": "speaker id", "utt2spk": "utterance id",
             "text": "utterance id", "segments": "utterance id", "utt2src": "utterance id"}


def check_id(value: str, what: str, where: str) -> None:
    """Refuse an id that cannot safely become a file name.

    Args:
        value: the id (utterance, speaker, recording).
        what: what it is, for the message ("utterance id").
        where: where it came from ("data/train/utt2spk:12", a corpus file, ...).
    Raises:
        DataError: empty, ".", longer than `MAX_ID_BYTES`, or containing "/", "..",
            whitespace, or control, format, surrogate, private-use or unassigned characters.
    """
    reason = None
    if not value:
        reason = "it is empty"
    elif value == ".":
        reason = "'.' names the current directory"
    elif "/" in value:
        reason = "it contains '/'"
    elif ".." in value:
        reason = "it contains '..'"
    elif any(c.isspace() for c in value):
        reason = "it contains whitespace"
    elif (bad := next((c for c in value if unicodedata.category(c) in _INVISIBLE), None)):
        reason = f"it contains {_INVISIBLE[unicodedata.category(bad)]}, U+{ord(bad):04X}"
    elif len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        reason = (f"it is {len(value.encode('utf-8', 'surrogatepass'))} bytes long, more than "
                  f"the {MAX_ID_BYTES} a file name built from it may take")
    if reason is not None:
        value = value if len(value) <= 60 else value[:57] + "..."
        raise DataError(f"{where}: {what} {value!r} is not a valid id ({reason}); ids become file "
                        f"names: use letters, digits, '_', '-' and '.' only, and rename it at "
                        f"the source")


def _fix_hint(path: Path) -> str:
    return f"run `speechvq fix {path.parent}`"


def read_lines(path: str | os.PathLike, what: str | None = None) -> list[str]:
    """The lines of a UTF-8 text file (no trailing newlines).

    Raises:
        DataError: missing file or invalid UTF-8 (naming the line).
    """
    path = Path(path)
    what = what or path.name
    if not path.is_file():
        raise DataError(f"{path}: {what} file does not exist; create it (or run "
                        f"`speechvq fix {path.parent}` if it can be derived)")
    lines = read_text(path, what).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_table(path: str | os.PathLike, *, what: str | None = None, allow_empty: bool = False,
                strict: bool = True) -> tuple[dict[str, tuple[int, str]], Counter]:
    """Parse a ``key value`` table, keeping each entry's line number.

    Args:
        path: the file.
        what: its role, for messages (default: the file name).
        allow_empty: a key without a value is valid (a ``text`` line with no words).
        strict: raise on every problem; False drops or repairs them (for `fix_data_dir`) and
            counts them under "blank", "malformed", "duplicates", "unsorted", "repaired".
    Returns:
        ({key: (line number, value)} in file order, problem counts).
    """
    path = Path(path)
    what = what or path.name
    out: dict[str, tuple[int, str]] = {}
    problems: Counter = Counter()
    prev = None
    for n, raw in enumerate(read_lines(path, what), start=1):
        where = f"{path}:{n}"
        line = raw.rstrip(" \t")  # trailing blanks are harmless
        if "\r" in line or line != line.lstrip(" \t"):
            if strict:
                kind = "a Windows line ending (\\r)" if "\r" in line else "leading whitespace"
                raise DataError(f"{where}: line has {kind}; {_fix_hint(path)}")
            line = line.replace("\r", "").strip(" \t")
            problems["repaired"] += 1
        if not line:
            if strict:
                raise DataError(f"{where}: empty line in {what}; remove it or {_fix_hint(path)}")
            problems["blank"] += 1
            continue
        parts = _SEP.split(line, maxsplit=1)
        key, value = parts[0], (parts[1] if len(parts) > 1 else "")
        check_id(key, KEY_NAMES.get(path.name, f"{what} key"), where)
        if not value and not allow_empty:
            if strict:
                raise DataError(f"{where}: expected `KEY VALUE`, found only {key!r}; complete "
                                f"the line or {_fix_hint(path)} to drop it")
            problems["malformed"] += 1
            continue
        if key in out:
            if strict:
                raise DataError(f"{where}: duplicate key {key!r} (first on line {out[key][0]}) "
                                f"in {what}; {_fix_hint(path)} (keeps the first)")
            problems["duplicates"] += 1
            continue
        if prev is not None and key < prev:
            if strict:
                raise DataError(f"{where}: {what} is not sorted in LC_ALL=C (byte) order: "
                                f"{key!r} comes after {prev!r}; {_fix_hint(path)} (or "
                                f"`LC_ALL=C sort -k1,1 -o {path} {path}`)")
            problems["unsorted"] += 1
        prev = key if prev is None or key > prev else prev
        out[key] = (n, value)
    return out, problems


def read_table(path: str | os.PathLike, *, what: str | None = None,
               allow_empty: bool = False) -> dict[str, str]:
    """Read a Kaldi table strictly (sorted, unique, well-formed, valid ids).

    Args:
        path: e.g. ``data/train/utt2spk``.
        what: its role, for messages (default: the file name).
        allow_empty: accept keys without a value (``text``).
    Returns:
        {key: rest of the line}, in file (= sorted) order.
    Raises:
        DataError: naming ``FILE:LINE``, the problem and the fix (``speechvq fix DIR``).
    """
    entries, _ = parse_table(path, what=what, allow_empty=allow_empty, strict=True)
    return {k: v for k, (_, v) in entries.items()}



def write_table(path: str | os.PathLike,
                rows: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
    """Write a Kaldi table sorted in ``LC_ALL=C`` order, atomically.

    Args:
        path: output file (parents made).
        rows: {key: value} or (key, value) pairs; keys must pass `check_id`, values are one line.
    Raises:
        DataError: an invalid or repeated key, or a value with a line break (nothing is written).
    """
    path = Path(path)
    pairs = list(rows.items()) if isinstance(rows, Mapping) else [tuple(r) for r in rows]
    seen: set[str] = set()
    for key, value in pairs:
        check_id(key, "key", f"writing {path}")
        if key in seen:
            raise DataError(f"writing {path}: key {key!r} occurs twice; keys must be unique")
        seen.add(key)
        if "\n" in str(value) or "\r" in str(value):
            raise DataError(f"writing {path}: the value of {key!r} contains a line break")
    lines = [f"{k} {v}".rstrip(" ") + "\n" for k, v in sorted(pairs, key=lambda kv: kv[0])]
    atomic_write_text(path, "".join(lines))
