"""Kaldi data dirs: read, write, validate (as validate_data_dir.sh) and repair (as fix_data_dir.sh).

A data dir (https://kaldi-asr.org/doc/data_prep.html; Povey et al., ASRU 2011) holds ``wav.scp``
(recording or utterance -> audio file), ``utt2spk``, ``spk2utt``, optional ``text``, ``segments``
(``utt rec start end`` in seconds), ``utt2src`` (source utterance of a converted one),
``phones.ctm`` and ``phones.txt`` (see `speechvq.data.speech.alignments`). `validate_data_dir` checks what
Kaldi's ``utils/validate_data_dir.sh`` checks, plus what speechvq needs before a file name is built
from an id: every file ``LC_ALL=C`` sorted with unique, valid ids (`check_id`); utterance ids
prefixed by their speaker; utt2spk, wav.scp/segments, text and utt2src covering the same
utterances; spk2utt equal to the one derived from utt2spk; audio files present; segments inside
their recording (duration from the file header); CTM utterances and phones known. ``cmd |`` pipes
are refused: speechvq never runs a shell command from a data file. Every error names the file, the
line and the fix. `speechvq.data.speech.fix.fix_data_dir` sorts, drops inconsistent entries and
re-derives spk2utt, keeping the originals in ``DIR/.backup/``.

Relative audio paths in wav.scp are resolved against the current directory first, then the data dir.
All table, CTM and TIMIT/TextGrid helpers are importable from here too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from speechvq.audio import audio_info
from speechvq.data.speech.alignments import (SIL, TIMIT_DELETED, TIMIT_FOLD, Segment,
                                      format_time, frame_labels, read_ctm, read_phones_txt,
                                      read_textgrid_phones, timit_phn_to_segments, write_ctm,
                                      write_phones_txt)
from speechvq.data.speech.tables import (atomic_write_text, check_id, parse_table,
                                  read_table, write_table)
from speechvq.errors import AudioError, DataError

__all__ = ["SIL", "TIMIT_DELETED", "TIMIT_FOLD", "Segment", "DataDir", "atomic_write_text",
           "check_id", "format_time", "frame_labels", "parse_table",
           "read_ctm", "read_phones_txt", "read_table", "read_textgrid_phones",
           "resolve_audio_path", "timit_phn_to_segments", "validate_data_dir", "write_ctm",
           "write_phones_txt", "write_table"]

SEGMENT_TOLERANCE_S = 0.02  # a segment may end this far past its recording (rounded times)
OPTIONAL_FILES = ("text", "segments", "utt2src")
PER_UTT_FILES = ("text", "utt2src")  # optional files keyed by exactly the utterances


def resolve_audio_path(value: str, data_dir: str | os.PathLike) -> Path:
    """A wav.scp path: absolute as is; relative against the current directory, else the data dir."""
    p = Path(value)
    if p.is_absolute() or p.exists():
        return p
    return Path(data_dir) / p


def is_pipe(value: str) -> bool:
    return value.rstrip().endswith("|") or value.lstrip().startswith("|")


@dataclass
class DataDir:
    """A Kaldi data dir in memory. Times in seconds; spk2utt is derived from utt2spk."""

    path: Path | None
    wav_scp: dict[str, str]                     # recording (or utterance) -> audio path
    utt2spk: dict[str, str]                     # utterance -> speaker
    text: dict[str, str] | None = None          # utterance -> transcript
    segments: dict[str, tuple[str, float, float]] | None = None  # utt -> (rec, start_s, end_s)
    ctm: dict[str, list[Segment]] | None = None  # utt -> [(start_s, dur_s, phone)]
    phones: list[str] | None = None             # phone inventory, SIL first
    utt2src: dict[str, str] | None = None       # converted utt -> source utterance

    def __post_init__(self) -> None:
        if self.path is not None:
            self.path = Path(self.path)

    @classmethod
    def load(cls, path: str | os.PathLike, validate: bool = True) -> "DataDir":
        """Read a data dir; with ``validate`` run every check of `validate_data_dir` (without it,
        only each file's own format is checked: no cross-file or audio checks)."""
        return validate_data_dir(path) if validate else _read(Path(path))[0]

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write every present file (and spk2utt) to `path` (default: ``self.path``), atomically
        file by file; all ids are checked before anything is written. Audio paths relative to
        ``self.path`` are made absolute when saving elsewhere. Returns: the dir."""
        out = Path(path if path is not None else self.path)
        for utt, spk in self.utt2spk.items():
            check_id(utt, "utterance id", f"writing {out / 'utt2spk'}")
            check_id(spk, "speaker id", f"writing {out / 'utt2spk'} ({utt})")
        for utt, (rec, _, _) in (self.segments or {}).items():
            check_id(rec, "recording id", f"writing {out / 'segments'} ({utt})")
        for key in self.wav_scp:
            check_id(key, "recording id", f"writing {out / 'wav.scp'}")
        wav_scp = self.wav_scp
        if self.path is not None and out.resolve() != Path(self.path).resolve():
            # paths that only resolve against the old dir would break in the new one
            wav_scp = {k: str(p.absolute()) if (p := resolve_audio_path(v, self.path)) != Path(v)
                       else v for k, v in wav_scp.items()}
        out.mkdir(parents=True, exist_ok=True)
        write_table(out / "wav.scp", wav_scp)
        write_table(out / "utt2spk", self.utt2spk)
        write_table(out / "spk2utt", {s: " ".join(u) for s, u in self.spk2utt().items()})
        if self.text is not None:
            write_table(out / "text", self.text)
        if self.segments is not None:
            write_table(out / "segments", {u: f"{r} {format_time(a)} {format_time(b)}"
                                           for u, (r, a, b) in self.segments.items()})
        if self.utt2src is not None:
            write_table(out / "utt2src", self.utt2src)
        if self.ctm is not None:
            write_ctm(out / "phones.ctm", self.ctm)
        if self.phones is not None:
            write_phones_txt(out / "phones.txt", self.phones)
        return out

    def utterances(self) -> list[str]:
        """Utterance ids, sorted."""
        return sorted(self.utt2spk)

    def speakers(self) -> list[str]:
        """Speaker ids, sorted."""
        return sorted(set(self.utt2spk.values()))

    def spk2utt(self) -> dict[str, list[str]]:
        """{speaker: sorted utterances}, speakers sorted."""
        out: dict[str, list[str]] = {}
        for utt in sorted(self.utt2spk):
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return dict(sorted(out.items()))

    def audio_source(self, utt: str) -> tuple[Path, float | None, float | None]:
        """Where an utterance's audio is. Returns: (file, start_s, end_s); times are None
        without segments (the whole file)."""
        if utt not in self.utt2spk:
            raise DataError(f"utterance {utt!r} is not in {self.path}/utt2spk")
        base = self.path if self.path is not None else Path(".")
        seg = self.segments.get(utt) if self.segments is not None else (utt, None, None)
        if seg is None or seg[0] not in self.wav_scp or is_pipe(self.wav_scp[seg[0]]):
            raise DataError(f"{base}: no audio file for {utt} (no segment, no wav.scp entry, or "
                            f"a shell pipe); run `speechvq validate {base}`")
        return resolve_audio_path(self.wav_scp[seg[0]], base), seg[1], seg[2]


# ------------------------------------------------------------------------------------ reading


def _read(path: Path) -> tuple[DataDir, dict[str, dict[str, int]]]:
    """Parse each file strictly on its own. Returns: (the dir, {file: {key: line}})."""
    if not path.is_dir():
        raise DataError(f"data dir '{path}' does not exist; prepare it first "
                        f"(`speechvq prepare ...`)")
    for name in ("wav.scp", "utt2spk"):
        if not (path / name).is_file():
            raise DataError(f"{path / name}: missing; every data dir needs wav.scp and utt2spk: "
                            f"run the preparer again")
    lines: dict[str, dict[str, int]] = {}
    tables: dict[str, dict[str, str] | None] = {}
    for name in ("wav.scp", "utt2spk", *OPTIONAL_FILES):
        if (path / name).is_file():
            entries, _ = parse_table(path / name, allow_empty=(name == "text"))
            lines[name] = {k: n for k, (n, _) in entries.items()}
            tables[name] = {k: v for k, (_, v) in entries.items()}
        else:
            tables[name] = None
    for utt, spk in tables["utt2spk"].items():
        check_id(spk, "speaker id", f"{path / 'utt2spk'}:{lines['utt2spk'][utt]}")
    segments = None
    if tables["segments"] is not None:
        segments = {}
        for utt, value in tables["segments"].items():
            where = f"{path / 'segments'}:{lines['segments'][utt]}"
            f = value.split()
            try:
                rec, start, end = f[0], float(f[1]), float(f[2])
                ok = len(f) == 3 and 0 <= start < end
            except (IndexError, ValueError):
                ok = False
            if not ok:
                raise DataError(f"{where}: expected `utt recording start end` with 0 <= start < "
                                f"end (seconds), found {utt} {value!r}; fix the line")
            check_id(rec, "recording id", where)
            segments[utt] = (rec, start, end)
    ctm = read_ctm(path / "phones.ctm") if (path / "phones.ctm").is_file() else None
    phones = read_phones_txt(path / "phones.txt") if (path / "phones.txt").is_file() else None
    d = DataDir(path=path, wav_scp=tables["wav.scp"], utt2spk=tables["utt2spk"],
                text=tables["text"], segments=segments, ctm=ctm, phones=phones,
                utt2src=tables["utt2src"])
    return d, lines


# --------------------------------------------------------------------------------- validation


def _fix(path: Path) -> str:
    return f"run `speechvq fix {path}`"


def _same_keys(path: Path, lines: dict[str, dict[str, int]], a: str, b: str, what: str) -> None:
    """Every key of file `a` is in file `b` and back, else an error naming the first stray."""
    for x, y in ((a, b), (b, a)):
        missing = [k for k in lines[x] if k not in lines[y]]
        if missing:
            k = missing[0]
            raise DataError(f"{path / x}:{lines[x][k]}: {what} {k!r} has no entry in {y} "
                            f"({len(missing)} in {x} lack one); add it to {y} or {_fix(path)} "
                            f"to drop it")


def validate_data_dir(path: str | os.PathLike) -> DataDir:
    """Check a data dir as Kaldi's ``utils/validate_data_dir.sh`` does (see the module docstring).

    Returns:
        the loaded `DataDir`.
    Raises:
        DataError: the first problem, naming ``FILE:LINE`` and the fix.
    """
    path = Path(path)
    d, lines = _read(path)
    if not d.utt2spk:
        raise DataError(f"data dir '{path}' holds no utterances (utt2spk is empty); prepare it "
                        f"again, or check that the corpus path held audio")
    for utt, spk in d.utt2spk.items():
        if not utt.startswith(spk):
            raise DataError(f"{path / 'utt2spk'}:{lines['utt2spk'][utt]}: utterance id {utt!r} "
                            f"does not start with its speaker id {spk!r}; Kaldi needs "
                            f"speaker-prefixed utterance ids (so utt2spk and spk2utt sort "
                            f"alike): rename it, e.g. {spk}-{utt}")
    for utt, value in d.wav_scp.items():
        if is_pipe(value):
            raise DataError(f"{path / 'wav.scp'}:{lines['wav.scp'][utt]}: {utt!r} is a shell "
                            f"pipe ({value!r}); speechvq never runs a shell command from a data "
                            f"file: convert the audio to files first (e.g. `sph2pipe -f wav IN "
                            f"OUT.wav`) and list their paths in wav.scp")
    if d.segments is not None:
        _same_keys(path, lines, "utt2spk", "segments", "utterance")
        for utt, (rec, _, _) in d.segments.items():
            if rec not in d.wav_scp:
                raise DataError(f"{path / 'segments'}:{lines['segments'][utt]}: recording "
                                f"{rec!r} of {utt} has no entry in wav.scp; add it or "
                                f"{_fix(path)} to drop the segment")
    else:
        _same_keys(path, lines, "utt2spk", "wav.scp", "utterance")
    for name in PER_UTT_FILES:  # text, utt2src
        if name in lines:
            _same_keys(path, lines, "utt2spk", name, "utterance")
    _check_spk2utt(path, d, lines)
    # headers are read where a duration is needed (segments, alignments); an unreadable or
    # truncated file elsewhere is left to `dump` (which aborts naming it, or skips it with
    # --skip-bad) and to `load_audio`
    timed = {rec for rec, _, _ in d.segments.values()} if d.segments is not None else set()
    if d.ctm is not None:
        timed |= {d.segments[u][0] if d.segments is not None and u in d.segments else u
                  for u in d.ctm}
    durations: dict[str, float] = {}
    for rec in d.wav_scp:
        where = f"{path / 'wav.scp'}:{lines['wav.scp'][rec]}"
        audio = resolve_audio_path(d.wav_scp[rec], path)
        if not audio.is_file():
            raise DataError(f"{where}: audio file {d.wav_scp[rec]!r} of {rec} does not exist "
                            f"(looked in the current directory and in {path}); fix the path")
        if rec not in timed:
            continue
        try:  # the header only: a truncated WAV or a corrupt header is refused here
            frames, rate = audio_info(audio)
        except AudioError as e:
            raise DataError(f"{where}: {e}; or remove its entries") from None
        durations[rec] = frames / rate
    for utt, (rec, start, end) in (d.segments or {}).items():
        if end > durations[rec] + SEGMENT_TOLERANCE_S:
            raise DataError(f"{path / 'segments'}:{lines['segments'][utt]}: segment {utt} ends "
                            f"at {end} s, past the end of recording {rec} ({durations[rec]:.3f} "
                            f"s, wav.scp:{lines['wav.scp'][rec]}); fix the segment times")
    _check_alignments(path, d, durations)
    return d


def _check_spk2utt(path: Path, d: DataDir, lines: dict[str, dict[str, int]]) -> None:
    if not (path / "spk2utt").is_file():
        raise DataError(f"{path / 'spk2utt'}: missing; {_fix(path)} to derive it from utt2spk")
    entries, _ = parse_table(path / "spk2utt")
    derived = d.spk2utt()
    for spk, (n, value) in entries.items():
        if value.split() != derived.get(spk):
            raise DataError(f"{path / 'spk2utt'}:{n}: the utterances of speaker {spk!r} do not "
                            f"match utt2spk; {_fix(path)} (derives spk2utt from utt2spk)")
    for spk, utts in derived.items():
        if spk not in entries:
            raise DataError(f"{path / 'utt2spk'}:{lines['utt2spk'][utts[0]]}: speaker {spk!r} "
                            f"is missing from spk2utt; {_fix(path)} (derives spk2utt)")


def _ctm_line(path: Path, utt: str, phone: str | None = None) -> int:
    for n, line in enumerate((path / "phones.ctm").read_text("utf-8").split("\n"), start=1):
        f = line.split()
        if f and f[0] == utt and (phone is None or f[4:5] == [phone]):
            return n
    return 0


def _check_alignments(path: Path, d: DataDir, durations: dict[str, float]) -> None:
    if d.ctm is None:
        return
    if d.phones is None:
        raise DataError(f"{path / 'phones.txt'}: missing while phones.ctm exists; "
                        f"{_fix(path)} to write it from the CTM's phones")
    known = set(d.phones)
    for utt, segs in d.ctm.items():
        if utt not in d.utt2spk:
            raise DataError(f"{path / 'phones.ctm'}:{_ctm_line(path, utt)}: utterance {utt!r} "
                            f"has no entry in utt2spk; {_fix(path)} to drop its phones")
        seg = d.segments.get(utt) if d.segments is not None else (utt, None, None)
        length = (seg[2] - seg[1]) if seg[1] is not None else durations.get(seg[0])
        end = max((s + du for s, du, _ in segs), default=0.0)
        if length is not None and end > length + SEGMENT_TOLERANCE_S:
            last = max(segs, key=lambda s: s[0] + s[1])
            raise DataError(f"{path / 'phones.ctm'}:{_ctm_line(path, utt, last[2])}: the phones "
                            f"of {utt} run to {end:.3f} s, past the end of its audio "
                            f"({length:.3f} s); the alignment belongs to another recording or "
                            f"is in other units: fix it, or drop the utterance's phones")
        for _, _, phone in segs:
            if phone not in known:
                raise DataError(f"{path / 'phones.ctm'}:{_ctm_line(path, utt, phone)}: phone "
                                f"{phone!r} is not in phones.txt; add it there (or "
                                f"{_fix(path)}, which appends unknown phones)")
