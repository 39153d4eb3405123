"""Repair a Kaldi data dir, as Kaldi's ``utils/fix_data_dir.sh``: sort, drop what is inconsistent,
re-derive spk2utt, keeping the originals in ``DIR/.backup/`` (`speechvq fix DATA`).

Reading and validating a data dir is `speechvq.data.speech.kaldi`; this module is its lenient
counterpart, which repairs instead of refusing.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

from speechvq.data.speech.alignments import (SIL, Segment, read_phones_txt, write_ctm,
                                             write_phones_txt)
from speechvq.data.speech.kaldi import OPTIONAL_FILES, PER_UTT_FILES, is_pipe, resolve_audio_path
from speechvq.data.speech.tables import check_id, parse_table, write_table
from speechvq.errors import DataError

__all__ = ["fix_data_dir"]


def _lenient_ctm(path: Path, keep: set[str], counts: Counter) -> dict[str, list[Segment]]:
    ctm: dict[str, list[Segment]] = {}
    for line in (path / "phones.ctm").read_text("utf-8", errors="replace").split("\n"):
        f = line.split()
        if not f:
            continue
        try:
            seg = (float(f[2]), float(f[3]), f[4])
            ok = len(f) in (5, 6) and seg[0] >= 0 and seg[1] >= 0
        except (IndexError, ValueError):
            ok = False
        if not ok:
            counts["malformed"] += 1
        elif f[0] in keep:
            ctm.setdefault(f[0], []).append(seg)
        else:
            counts["dropped_ctm_lines"] += 1
    return ctm


def fix_data_dir(path: str | os.PathLike) -> dict[str, int]:
    """Repair a data dir as Kaldi's ``utils/fix_data_dir.sh``: sort every table, drop blank,
    malformed and repeated lines (keeping the first), keep only utterances present in utt2spk,
    wav.scp (or segments with a known recording), text and utt2src, drop unused recordings and
    CTM lines of dropped utterances, drop recordings whose audio file does not exist (and their
    utterances), derive spk2utt, write phones.txt from the CTM when missing (appending unknown
    phones otherwise). Originals are copied to ``DIR/.backup/`` first (``.backup.1/``, ... on
    later runs, so no backup is overwritten). Refused, with nothing changed, when no audio file
    of wav.scp exists (relative paths resolved from the wrong directory) or no utterance would
    remain.

    Not repaired (validate reports them): invalid ids (rename them), pipes, segment times,
    utterance ids without their speaker prefix.

    Returns:
        counts: utterances, speakers, dropped_utterances, dropped_recordings, missing_audio,
        duplicates, malformed, blank, repaired, unsorted, dropped_ctm_lines, phones_added.
    """
    path = Path(path)
    for name in ("wav.scp", "utt2spk"):
        if not (path / name).is_file():
            raise DataError(f"{path / name}: missing; cannot fix a data dir without wav.scp "
                            f"and utt2spk: run the preparer again")
    counts: Counter = Counter()
    tables: dict[str, dict[str, str]] = {}
    for name in ("wav.scp", "utt2spk", *OPTIONAL_FILES):
        if (path / name).is_file():
            entries, problems = parse_table(path / name, allow_empty=(name == "text"),
                                            strict=False)
            counts.update(problems)
            tables[name] = {k: v for k, (_, v) in entries.items()}
            if name == "utt2spk":
                for n, spk in entries.values():
                    check_id(spk, "speaker id", f"{path / name}:{n}")
    present = {rec: v for rec, v in tables["wav.scp"].items()
                if is_pipe(v) or resolve_audio_path(v, path).is_file()}  # pipes: validate refuses
    if tables["wav.scp"] and not present:
        rec, value = next(iter(tables["wav.scp"].items()))
        raise DataError(f"{path / 'wav.scp'}: none of its {len(tables['wav.scp'])} audio files "
                        f"exists (e.g. '{value}' of {rec}); relative paths are resolved against "
                        f"the current directory, then the data dir: run fix from the directory "
                        f"they are relative to, or correct the paths (nothing was changed)")
    counts["missing_audio"] = len(tables["wav.scp"]) - len(present)
    tables["wav.scp"] = present
    u2s = tables["utt2spk"]
    seen = set(u2s)
    keep = set(u2s)
    if "segments" in tables:
        segs = {}
        for utt, value in tables["segments"].items():
            f = value.split()
            try:
                ok = len(f) == 3 and 0 <= float(f[1]) < float(f[2])
            except ValueError:
                ok = False
            if not ok:
                counts["malformed"] += 1
            elif f[0] in tables["wav.scp"]:
                segs[utt] = value
        tables["segments"] = segs
        seen |= set(segs)
        keep &= set(segs)
    else:
        seen |= set(tables["wav.scp"])
        keep &= set(tables["wav.scp"])
    for name in PER_UTT_FILES:
        if name in tables:
            seen |= set(tables[name])
            keep &= set(tables[name])
    for name in ("utt2spk", *OPTIONAL_FILES):
        if name in tables:
            tables[name] = {k: v for k, v in tables[name].items() if k in keep}
    n_rec = len(tables["wav.scp"])
    if "segments" in tables:
        used = {v.split()[0] for v in tables["segments"].values()}
        tables["wav.scp"] = {k: v for k, v in tables["wav.scp"].items() if k in used}
    else:
        tables["wav.scp"] = {k: v for k, v in tables["wav.scp"].items() if k in keep}
    counts["dropped_recordings"] = n_rec - len(tables["wav.scp"])
    ctm = _lenient_ctm(path, keep, counts) if (path / "phones.ctm").is_file() else None
    phones = None
    if ctm is not None:
        try:
            phones = read_phones_txt(path / "phones.txt")
        except DataError:
            phones = [SIL]
        found = sorted({p for segs in ctm.values() for _, _, p in segs} - set(phones))
        counts["phones_added"] = len(found)
        phones = phones + found
    if not tables["utt2spk"]:
        raise DataError(f"{path}: fixing would leave no utterance (every one lacks audio, a "
                        f"speaker, a transcript or a segment); nothing was changed")
    backup = path / ".backup"  # the originals; a later fix keeps them and backs up to .backup.N
    n = 1
    while backup.exists():
        backup, n = path / f".backup.{n}", n + 1
    backup.mkdir()
    for name in ("wav.scp", "utt2spk", "spk2utt", *OPTIONAL_FILES, "phones.ctm", "phones.txt"):
        if (path / name).is_file():
            shutil.copy2(path / name, backup / name)
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(tables["utt2spk"]):
        spk2utt.setdefault(tables["utt2spk"][utt], []).append(utt)
    for name, rows in tables.items():
        write_table(path / name, rows)
    write_table(path / "spk2utt", {s: " ".join(u) for s, u in spk2utt.items()})
    if ctm is not None:
        write_ctm(path / "phones.ctm", ctm)
        write_phones_txt(path / "phones.txt", phones)
    counts.update(utterances=len(tables["utt2spk"]), speakers=len(spk2utt),
                  dropped_utterances=len(seen - keep))
    keys = ("utterances", "speakers", "dropped_utterances", "dropped_recordings", "missing_audio",
            "duplicates", "malformed", "blank", "repaired", "unsorted", "dropped_ctm_lines",
            "phones_added")
    return {k: int(counts[k]) for k in keys}
