"""Phone alignments: CTM, phones.txt, TIMIT .PHN, Praat TextGrid phone tiers, frame labels.

Every reader returns segments ``(start_s, dur_s, phone)`` in time order, silence spelled ``SIL``.

- CTM (NIST sclite's time-marked conversation format, as Kaldi's ``ali-to-phones --ctm-output``
  writes it): ``utt channel start dur phone [confidence]``, seconds.
- phones.txt: ``PHONE INDEX``, indices 0..N-1 in order, ``SIL`` = 0.
- TIMIT .PHN (Garofolo et al., *TIMIT Acoustic-Phonetic Continuous Speech Corpus*, LDC93S1, 1993):
  ``start_sample end_sample label``, 16 kHz sample indices, 61 labels. Folded onto 39 classes by
  `TIMIT_FOLD`, the table of K.-F. Lee and H.-W. Hon, *Speaker-independent phone recognition using
  hidden Markov models*, IEEE Trans. ASSP 37(11), 1989, as written in Kaldi's TIMIT recipe
  (egs/timit/s5/conf/phones.60-48-39.map, third column). Lee & Hon's ``sil`` class (closures
  bcl dcl gcl pcl tcl kcl, pauses pau epi, and h#) is ``SIL`` here. The glottal stop ``q`` has no
  class (Kaldi's recipe deletes it); its interval is given to the preceding phone (the following
  one at the start) so the timeline keeps no holes. Consecutive ``SIL`` segments are merged.
- Praat TextGrid (Boersma and Weenink, Praat), long and short text formats, as Montreal Forced
  Aligner (McAuliffe et al., Interspeech 2017) writes them: ``empty, sil, sp, spn -> SIL`` and
  ARPAbet stress digits are stripped (``AH0 -> AH``).
- `frame_labels`: DESIGN.md's timing convention; frame i is labelled with the phone whose interval
  ``[start, start + dur)`` holds its centre ``(i + 0.5) * hop_s``.
"""

from __future__ import annotations

import bisect
import math
import os
import re
import warnings
from pathlib import Path
from typing import Mapping, Sequence

from speechvq.data.speech.tables import atomic_write_text, check_id, read_lines
from speechvq.errors import DataError

SIL = "SIL"
Segment = tuple[float, float, str]  # (start_s, dur_s, phone)

# Lee & Hon (1989) 61 -> 39 folding; Kaldi egs/timit/s5/conf/phones.60-48-39.map, column 3.
TIMIT_FOLD: dict[str, str] = {
    "aa": "AA", "ao": "AA", "ae": "AE", "ah": "AH", "ax": "AH", "ax-h": "AH", "aw": "AW",
    "ay": "AY", "b": "B", "ch": "CH", "d": "D", "dh": "DH", "dx": "DX", "eh": "EH",
    "er": "ER", "axr": "ER", "ey": "EY", "f": "F", "g": "G", "hh": "HH", "hv": "HH",
    "ih": "IH", "ix": "IH", "iy": "IY", "jh": "JH", "k": "K", "l": "L", "el": "L",
    "m": "M", "em": "M", "n": "N", "en": "N", "nx": "N", "ng": "NG", "eng": "NG",
    "ow": "OW", "oy": "OY", "p": "P", "r": "R", "s": "S", "sh": "SH", "zh": "SH", "t": "T",
    "th": "TH", "uh": "UH", "uw": "UW", "ux": "UW", "v": "V", "w": "W", "y": "Y", "z": "Z",
    "bcl": SIL, "dcl": SIL, "gcl": SIL, "pcl": SIL, "tcl": SIL, "kcl": SIL,
    "h#": SIL, "pau": SIL, "epi": SIL,
}
TIMIT_DELETED = frozenset({"q"})  # the 61st label: no class in Lee & Hon, absorbed (see above)
TIMIT_SILENCES = frozenset({"h#", "pau", "epi"})  # SIL even with fold=False
TEXTGRID_SILENCES = frozenset({"", "sil", "sp", "spn", "<eps>"})
_TIE_S = 1e-7  # frame_labels: boundary ties go to the later phone
#: phones overlapping by less than this are rounding (a CTM written in seconds from sample-based
#: labels): the earlier one is clipped and the count logged; a larger overlap is refused
OVERLAP_CLIP_S = 1e-3
_FLOAT_NOISE_S = 1e-6  # an overlap below this is float rounding (0.15 - 0.1), left as it is


def _natural(text: str) -> int | None:
    """A non-negative integer written in ASCII digits (at most 15 of them), else None
    (``str.isdigit`` also accepts ``²`` and other digits `int` refuses)."""
    return int(text) if re.fullmatch(r"[0-9]{1,15}", text) else None


def format_time(seconds: float) -> str:
    """Seconds with at least 3 and at most 7 decimals (exact for 16 kHz sample times)."""
    s = f"{seconds:.7f}".rstrip("0")
    head, _, frac = s.partition(".")
    return f"{head}.{frac:0<3}"


def _merge_sil(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for start, dur, ph in segments:
        if out and ph == SIL and out[-1][2] == SIL and abs(out[-1][0] + out[-1][1] - start) < 1e-6:
            out[-1] = (out[-1][0], start + dur - out[-1][0], SIL)
        else:
            out.append((start, dur, ph))
    return out


# ------------------------------------------------------------------------------ CTM, phones.txt


def read_ctm(path: str | os.PathLike) -> dict[str, list[Segment]]:
    """Read a phone CTM.

    Returns:
        {utt: [(start_s, dur_s, phone), ...] in time order}, utts in file order.
    Raises:
        DataError: a malformed line, a negative time, or overlapping phones (naming FILE:LINE).
    """
    path = Path(path)
    ctm: dict[str, list[tuple[float, float, str, int]]] = {}
    for n, line in enumerate(read_lines(path, "phones.ctm"), start=1):
        where = f"{path}:{n}"
        f = line.split()
        try:
            start, dur = float(f[2]), float(f[3])
            ok = len(f) in (5, 6) and math.isfinite(start + dur) and start >= 0 and dur >= 0
        except (IndexError, ValueError):
            ok = False
        if not ok:
            raise DataError(f"{where}: expected `utt channel start dur phone [conf]` with "
                            f"times >= 0 in seconds, found {line[:80]!r}; fix or remove the "
                            f"line")
        check_id(f[0], "utterance id", where)
        ctm.setdefault(f[0], []).append((start, dur, f[4], n))
    out: dict[str, list[Segment]] = {}
    clipped = 0
    for utt, segs in ctm.items():
        segs.sort(key=lambda s: s[0])
        kept, n = _clip_overlaps(segs, lambda a, b: (
            f"{path}:{b[3]}: phone {b[2]!r} of {utt} starts at {b[0]} s, before the phone on "
            f"line {a[3]} ends ({a[0] + a[1]:.4f} s)"))
        clipped += n
        out[utt] = kept
    _log_clipped(path, clipped)
    return out


def _clip_overlaps(segs: Sequence[tuple], where) -> tuple[list[Segment], int]:
    """Segments ``(start, dur, phone, ...)`` sorted by start, with overlaps under
    `OVERLAP_CLIP_S` clipped off the earlier phone. Returns: (segments, how many clipped).

    Raises:
        DataError: a larger overlap; ``where(a, b)`` says where, for the message.
    """
    out: list[Segment] = []
    clipped = 0
    for i, seg in enumerate(segs):
        start, dur, phone = seg[0], seg[1], seg[2]
        nxt = segs[i + 1] if i + 1 < len(segs) else None
        if nxt is not None and nxt[0] < start + dur - _FLOAT_NOISE_S:
            if start + dur - nxt[0] >= OVERLAP_CLIP_S or nxt[0] <= start:
                raise DataError(f"{where(seg, nxt)}; phones of an utterance must not overlap "
                                f"(by {OVERLAP_CLIP_S * 1000:g} ms or more): fix the alignment")
            dur, clipped = nxt[0] - start, clipped + 1
        out.append((start, dur, phone))
    return out, clipped


def _log_clipped(path: Path, clipped: int) -> None:
    if clipped:
        warnings.warn(f"{path}: {clipped} phone boundaries overlapped by under "
                      f"{OVERLAP_CLIP_S * 1000:g} ms (rounding) and were clipped", stacklevel=3)


def write_ctm(path: str | os.PathLike, ctm: Mapping[str, Sequence[Segment]]) -> None:
    """Write a phone CTM (utts sorted, phones in time order, channel 1), atomically."""
    lines = []
    for utt in sorted(ctm):
        check_id(utt, "utterance id", f"writing {path}")
        for start, dur, phone in sorted(ctm[utt], key=lambda s: s[0]):
            lines.append(f"{utt} 1 {format_time(start)} {format_time(dur)} {phone}\n")
    atomic_write_text(path, "".join(lines))


def read_phones_txt(path: str | os.PathLike) -> list[str]:
    """Read ``PHONE INDEX`` lines. Returns: phones in index order (indices 0..N-1, SIL = 0)."""
    path = Path(path)
    by_index: dict[int, tuple[str, int]] = {}
    for n, line in enumerate(read_lines(path, "phones.txt"), start=1):
        f = line.split()
        i = _natural(f[1]) if len(f) == 2 else None
        if i is None:
            raise DataError(f"{path}:{n}: expected `PHONE INDEX`, found {line[:80]!r}; fix the "
                            f"line")
        if i in by_index:
            raise DataError(f"{path}:{n}: index {i} already used on line {by_index[i][1]}; "
                            f"give every phone its own index 0..N-1")
        by_index[i] = (f[0], n)
    phones = [by_index[i][0] for i in sorted(by_index)]
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"{path}: indices must be 0..{len(by_index) - 1} without gaps; renumber")
    if len(set(phones)) != len(phones):
        dup = next(p for p in phones if phones.count(p) > 1)
        raise DataError(f"{path}: phone {dup!r} is listed twice; keep one")
    if phones and phones[0] != SIL:
        raise DataError(f"{path}:{by_index[0][1]}: index 0 must be {SIL}, found {phones[0]!r}; "
                        f"silence is always {SIL} with index 0 (rewrite with write_phones_txt)")
    return phones


def write_phones_txt(path: str | os.PathLike, phones: Sequence[str]) -> None:
    """Write phones.txt with SIL = 0 (added if absent) and the others in the given order."""
    rest = [p for p in phones if p != SIL]
    if len(set(rest)) != len(rest) or any(not p or any(c.isspace() for c in p) for p in rest):
        raise DataError(f"writing {path}: phones must be unique and without whitespace")
    atomic_write_text(path, "".join(f"{p} {i}\n" for i, p in enumerate([SIL, *rest])))


# --------------------------------------------------------------------------------- TIMIT .PHN


def timit_phn_to_segments(phn_path: str | os.PathLike, sample_rate: int = 16000,
                          fold: bool = True) -> list[Segment]:
    """Read a TIMIT .PHN file.

    Args:
        phn_path: ``.PHN``/``.phn`` file (``start end label`` in samples).
        sample_rate: rate of the sample indices (TIMIT: 16 kHz).
        fold: map the 61 labels to Lee & Hon's 39 (`TIMIT_FOLD`); otherwise keep them upper-cased
            (h#, pau, epi still become SIL).
    Returns:
        [(start_s, dur_s, phone)] in time order, consecutive SILs merged.
    """
    path = Path(phn_path)
    raw: list[tuple[int, int, str]] = []
    for n, line in enumerate(read_lines(path, ".PHN"), start=1):
        f = line.split()
        if not f:
            continue
        start, end = (_natural(f[0]), _natural(f[1])) if len(f) == 3 else (None, None)
        if start is None or end is None or end <= start:
            raise DataError(f"{path}:{n}: expected `start_sample end_sample label` with start < "
                            f"end, found {line[:80]!r}")
        label = f[2].lower()
        if label not in TIMIT_FOLD and label not in TIMIT_DELETED:
            raise DataError(f"{path}:{n}: unknown TIMIT phone {f[2]!r}; the 61 TIMIT labels "
                            f"are: {' '.join(sorted([*TIMIT_FOLD, *TIMIT_DELETED]))}")
        if raw and start < raw[-1][1]:
            raise DataError(f"{path}:{n}: starts at sample {start}, before the previous phone "
                            f"ends ({raw[-1][1]}); TIMIT phones must be in time order")
        raw.append((start, end, label))
    merged: list[list] = []
    for start, end, label in raw:
        if fold and label in TIMIT_DELETED:
            if merged:
                merged[-1][1] = end  # absorbed by the preceding phone
            else:
                merged.append([start, end, None])  # given to the next phone below
            continue
        phone = TIMIT_FOLD[label] if fold else (SIL if label in TIMIT_SILENCES else label.upper())
        if merged and merged[-1][2] is None:
            merged[-1][1:] = [end, phone]
        else:
            merged.append([start, end, phone])
    segs = [(s / sample_rate, (e - s) / sample_rate, p if p is not None else SIL)
            for s, e, p in merged]
    return _merge_sil(segs)


# ------------------------------------------------------------------------------------ TextGrid

_TOKEN = re.compile(r'"((?:[^"]|"")*)"'                 # 1: string ("" escapes a quote)
                    r'|\[[^\]"]*\]'                      # [n] in the long format: skipped
                    r'|(<[A-Za-z]+>)'                    # 2: <exists> / <absent>
                    r'|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?=\s|$)'  # 3: number
                    r'|[^\s"]+')                         # labels (xmin =, item, ...): skipped


def _textgrid_tokens(text: str) -> list:
    out: list = []
    for m in _TOKEN.finditer(text):
        if m.group(1) is not None:
            out.append(m.group(1).replace('""', '"'))
        elif m.group(2) is not None:
            out.append(m.group(2))
        elif m.group(3) is not None:
            out.append(float(m.group(3)))
    return out


def _phone_label(text: str) -> str:
    label = text.strip()
    if label.lower() in TEXTGRID_SILENCES:
        return SIL
    m = re.fullmatch(r"([A-Za-z]+)[0-2]", label)  # ARPAbet stress: AH0 -> AH
    return m.group(1) if m else label


def read_textgrid_phones(path: str | os.PathLike, tier: str = "phones") -> list[Segment]:
    """Read a phone tier of a Praat TextGrid (long or short text format; UTF-8 or UTF-16).

    Args:
        path: the .TextGrid file.
        tier: the interval tier's name; MFA's multi-speaker ``"SPEAKER - phones"`` tiers match
            too when the name is not found exactly.
    Returns:
        [(start_s, dur_s, phone)] in time order; silences SIL (consecutive ones merged), stress
        digits stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"TextGrid '{path}' does not exist; check the alignments directory")
    data = path.read_bytes()
    if data.startswith(b"ooBinaryFile"):
        raise DataError(f"{path}: binary TextGrid; save it as a text file in Praat")
    enc = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        tokens = _textgrid_tokens(data.decode(enc))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 or UTF-16 text; re-save it from Praat") from None
    try:
        pos = 2
        if not str(tokens[0]).startswith("ooTextFile") or tokens[1] != "TextGrid":
            raise ValueError("header")
        pos += 2  # xmin, xmax of the grid
        n_tiers = 0 if tokens[pos] == "<absent>" else int(tokens[pos + 1])
        pos += 1 if tokens[pos] == "<absent>" else 2
        tiers: dict[str, list[Segment]] = {}
        for _ in range(n_tiers):
            cls, name, count = tokens[pos], tokens[pos + 1], int(tokens[pos + 4])
            pos += 5
            width = 3 if cls == "IntervalTier" else 2
            items = tokens[pos:pos + width * count]
            pos += width * count
            if len(items) != width * count or not all(
                    isinstance(v, float) and math.isfinite(v) for v in items[0::width]):
                raise ValueError(f"tier {name!r}")
            if cls == "IntervalTier":
                if not all(isinstance(v, float) and math.isfinite(v) and v >= 0
                           for v in items[1::3]) or not all(v >= 0 for v in items[0::3]):
                    raise ValueError(f"tier {name!r}: interval times must be numbers >= 0")
                tiers[name] = [(float(items[i]), float(items[i + 1]) - float(items[i]),
                                _phone_label(str(items[i + 2])))
                               for i in range(0, len(items), 3)
                               if float(items[i + 1]) > float(items[i])]
    except (IndexError, ValueError, TypeError, OverflowError) as e:
        raise DataError(f"{path}: not a valid Praat TextGrid text file ({e}); re-export it from "
                        f"Praat or the aligner") from None
    found = tier if tier in tiers else None
    if found is None:
        cands = [t for t in tiers if t.endswith(f" - {tier}")]
        found = cands[0] if len(cands) == 1 else None
    if found is None:
        raise DataError(f"{path}: no interval tier named {tier!r} (tiers: "
                        f"{', '.join(map(repr, tiers)) or 'none'}); pass the phone tier's name")
    segs, clipped = _clip_overlaps(sorted(tiers[found], key=lambda s: s[0]), lambda a, b: (
        f"{path}: tier {found!r}: interval {b[2]!r} at {b[0]} s starts before interval "
        f"{a[2]!r} ends ({a[0] + a[1]:.4f} s)"))
    _log_clipped(path, clipped)
    return _merge_sil(segs)


# ------------------------------------------------------------------------------ frame labels


def frame_labels(segments: Sequence[Segment], n_frames: int, hop_s: float,
                 default: str = SIL) -> list[str]:
    """Label frames by the timing convention: frame i gets the phone whose interval
    ``[start, start + dur)`` holds its centre ``(i + 0.5) * hop_s``.

    Args:
        segments: [(start_s, dur_s, phone)], any order, not overlapping.
        n_frames: frames to label (e.g. ``ceil(T / hop)``).
        hop_s: frame hop in seconds (``hop / sample_rate``).
        default: label of frames whose centre lies in no segment.
    Returns:
        n_frames labels. A centre that falls exactly on a boundary belongs to the phone that
        starts there (times are compared with a 0.1 us margin, far below one sample, so
        sample-exact boundaries tie the same way whatever the float rounding).
    """
    segs = sorted(segments, key=lambda s: s[0])
    starts = [s[0] for s in segs]
    out = []
    for i in range(n_frames):
        c = (i + 0.5) * hop_s + _TIE_S
        k = bisect.bisect_right(starts, c) - 1
        out.append(segs[k][2] if k >= 0 and c < segs[k][0] + segs[k][1] else default)
    return out
