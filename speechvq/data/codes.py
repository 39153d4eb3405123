"""Units files: read, write (Kaldi text, fairseq ``.km``, GSLM ``name|units``), refuse deduplicated.

Formats (one utterance per line, units are integers separated by single spaces):

- ``kaldi`` (speechvq's own, like a Kaldi ``text`` file): ``utt c1 c2 c3 ...``, lines sorted by
  utterance id in byte order (``LC_ALL=C``).
- ``km`` (fairseq ``examples/hubert/simple_kmeans/dump_km_label.py``): ``c1 c2 c3 ...`` with no
  id; line n belongs to the n-th utterance of the manifest (``.tsv``), so the order is the order
  of the mapping given to `write_units` (pass the manifest's order). `write_manifest` writes that
  manifest, wav2vec style (fairseq ``examples/wav2vec/wav2vec_manifest.py``): the root folder on
  the first line, then ``relative/path.wav<TAB>n_samples`` per file; `manifest_path` puts it
  beside the units (``units/train.km`` -> ``units/train.tsv``).
- ``gslm`` (fairseq ``examples/textless_nlp/gslm/speech2unit``): ``name|c1 c2 c3 ...`` where
  name is the audio file's base name (here the utterance id), in the given order.

Metrics that compare units with frame labels (mapping accuracy, purity, PNMI, ABX) need one unit
per frame. Units written with ``--dedup`` (runs of equal units collapsed, as GSLM's unit language
models use them) have lost their timing; `check_frame_level` refuses them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from speechvq.errors import DataError
from speechvq.data.speech.tables import check_id
from speechvq.fileio import atomic_write_text, read_text

FORMATS = ("kaldi", "km", "gslm")


def read_units(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a units file in ``kaldi`` (``utt c1 c2 ...``) or ``gslm`` (``name|c1 c2 ...``) format.

    Args:
        path: the file; a ``.km`` file has no ids and cannot be read without its manifest.
    Returns:
        utt -> (T,) int64 units, in file order.
    Raises:
        DataError naming the file and line on a malformed line, a negative or non-integer unit
        or a repeated utterance id.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"units file {path} does not exist; write it with `speechvq encode`")
    if path.suffix == ".km":
        raise DataError(f"{path}: a fairseq .km file has one line of units per utterance and no "
                        f"ids; write the units with ids (`speechvq encode --format kaldi` or "
                        f"gslm) to score them")
    units: dict[str, np.ndarray] = {}
    # one decode of the whole file: invalid UTF-8 is a DataError naming the line
    for n, line in enumerate(read_text(path, "units file").split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        if "|" in line:
            utt, _, rest = line.partition("|")
            fields = rest.split()
        else:
            utt, *fields = line.split()
        check_id(utt, "utterance id", f"{path}:{n}")
        try:
            codes = np.array([int(x) for x in fields], dtype=np.int64)  # (T,)
        except (ValueError, OverflowError):
            raise DataError(f"{path}:{n}: expected `utt c1 c2 ...` with integer units, got "
                            f"{line[:80]!r}; a fairseq .km file has no ids: convert it "
                            "with its manifest") from None
        if codes.size and codes.min() < 0:
            raise DataError(f"{path}:{n}: negative unit {codes.min()} for {utt!r}")
        if utt in units:
            raise DataError(f"{path}:{n}: utterance {utt!r} appears twice; keep one line")
        units[utt] = codes
    if not units:
        raise DataError(f"units file {path} is empty")
    return units


def dedup(codes: np.ndarray) -> np.ndarray:
    """Collapse runs of equal units: [3 3 5 5 5 3] -> [3 5 3] (GSLM's deduplicated units)."""
    codes = np.asarray(codes)
    if codes.size == 0:
        return codes
    return codes[np.r_[True, codes[1:] != codes[:-1]]]


def write_units(path: str | os.PathLike, units: Mapping[str, np.ndarray], format: str = "kaldi",
                dedup: bool = False) -> None:
    """Write units atomically (temp file + ``os.replace``) in one of `FORMATS` (module docstring).

    Args:
        path: output file (parent folders are created).
        units: utt -> (T,) integer units; ``km`` and ``gslm`` keep this mapping's order,
            ``kaldi`` sorts by utterance id in byte order.
        format: ``kaldi``, ``km`` or ``gslm``.
        dedup: collapse runs of equal units first (the result cannot be scored against frames).
    """
    if format not in FORMATS:
        raise DataError(f"unknown units format {format!r}; choose one of {', '.join(FORMATS)}")
    utts: Iterable[str] = units
    if format == "kaldi":
        utts = sorted(units, key=lambda u: u.encode("utf-8"))
    lines = []
    for utt in utts:
        codes = np.asarray(units[utt]).astype(np.int64)  # (T,)
        text = " ".join(map(str, (_dedup(codes) if dedup else codes).tolist()))
        lines.append({"kaldi": f"{utt} {text}".rstrip(), "km": text,
                      "gslm": f"{utt}|{text}"}[format])
    atomic_write_text(path, "".join(line + "\n" for line in lines))


_dedup = dedup  # `write_units` has a parameter of the same name


def manifest_path(units_path: str | os.PathLike) -> Path:
    """Where the manifest of a ``.km`` file goes: the same stem with ``.tsv``."""
    path = Path(units_path)
    if path.suffix == ".tsv":
        raise DataError(f"{path}: a .km file's manifest is <stem>.tsv beside it; give the units "
                        f"another name (e.g. {path.with_suffix('.km')})")
    return path.with_suffix(".tsv")


def write_manifest(path: str | os.PathLike, files: Sequence[tuple[os.PathLike, int]]) -> Path:
    """Write a wav2vec-style manifest atomically: the files' deepest common folder on the first
    line, then ``relative_path<TAB>n_samples`` per file, in the given order (the ``.km`` order).

    Args:
        path: the ``.tsv`` to write.
        files: (audio file, its number of samples) per utterance; relative paths are taken
            against the current directory.
    Returns:
        `path`.
    Raises:
        DataError: no files, or a path with a tab or a line break (a manifest cannot hold it).
    """
    if not files:
        raise DataError(f"{path}: a manifest needs at least one audio file")
    absolute = [Path(os.path.abspath(f)) for f, _ in files]
    for f in absolute:
        if any(c in str(f) for c in "\t\n\r"):
            raise DataError(f"audio path {str(f)!r} holds a tab or a line break, which a "
                            f"manifest ({path}) cannot hold; rename the file")
    root = Path(os.path.commonpath([f.parent for f in absolute]))
    lines = [str(root)] + [f"{f.relative_to(root).as_posix()}\t{int(n)}"
                           for f, (_, n) in zip(absolute, files)]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return Path(path)


def _as_list(units) -> list[np.ndarray]:
    if isinstance(units, Mapping):
        return [np.asarray(units[u]) for u in units]
    return [np.asarray(u) for u in units]


def looks_deduplicated(units: Mapping[str, np.ndarray] | Sequence[np.ndarray],
                       min_expected_repeats: float = 10.0) -> bool:
    """Whether units look run-length deduplicated: no equal neighbours where chance predicts many.

    Frame-level units repeat (speech is slower than the frame rate) and even independent draws
    from the units' own distribution would repeat ``n_pairs * sum_k p_k^2`` times on average.
    Seeing no repeat at all where that expectation is at least ``min_expected_repeats``
    (probability about exp(-10) for independent units, far less for speech) means the runs were
    collapsed. With too little data to tell, the answer is False.

    Args:
        units: utt -> (T,) units, or a sequence of (T,) arrays.
        min_expected_repeats: the evidence required.
    Returns:
        True when the units are almost surely deduplicated.
    """
    seqs = _as_list(units)
    repeats = sum(int(np.count_nonzero(s[1:] == s[:-1])) for s in seqs if s.size > 1)
    if repeats:
        return False
    n_pairs = sum(max(s.size - 1, 0) for s in seqs)
    if n_pairs == 0:
        return False
    _, counts = np.unique(np.concatenate(seqs), return_counts=True)
    p = counts / counts.sum()
    return bool(n_pairs * np.sum(p * p) >= min_expected_repeats)


def check_frame_level(units: Mapping[str, np.ndarray] | Sequence[np.ndarray], *,
                      durations_s: Sequence[float] | None = None,
                      frame_rate_hz: float | None = None, source: str = "the units") -> None:
    """Refuse units that are not one per frame (deduplicated, or read at the wrong frame rate).

    Args:
        units: utt -> (T,) units, or a sequence of (T,) arrays.
        durations_s: the utterances' durations (same order), to compare counts with
            ``duration * frame_rate_hz``; skipped when None.
        frame_rate_hz: units per second claimed for the units.
        source: what to name in the message (a file name).
    Raises:
        DataError telling the user to encode without ``--dedup`` or to fix ``--frame-rate``.
    """
    if looks_deduplicated(units):
        raise DataError(f"{source} look run-length deduplicated (no unit ever repeats on the "
                        "next frame): frame-level metrics need one unit per frame; encode again "
                        "without --dedup")
    if durations_s is None or frame_rate_hz is None:
        return
    n_units = sum(s.size for s in _as_list(units))
    expected = float(np.sum(np.asarray(durations_s, dtype=np.float64))) * frame_rate_hz
    n_utts = len(durations_s)
    if abs(n_units - expected) > 0.05 * expected + 2 * n_utts:
        raise DataError(f"{source} holds {n_units} units but the audio lasts "
                        f"{expected / frame_rate_hz:.2f} s, i.e. {expected:.0f} frames at "
                        f"{frame_rate_hz:g} Hz: the units are deduplicated (encode without "
                        "--dedup) or the frame rate is wrong (fix --frame-rate)")
