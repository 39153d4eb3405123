"""Corpus preparers: speech corpora as distributed -> Kaldi data dirs, one per split.

Lhotse-style functions (``prepare_X(corpus_dir, out_dir, ...) -> {split: Path}``) behind
``speechvq prepare {vctk,librispeech,timit,folder} SRC OUT``. Each scans the whole tree, checks
every id (`kaldi.check_id`) and raises `DataError` before it writes anything, then builds each
split in ``OUT/.SPLIT.tmp`` and renames it to ``OUT/SPLIT``. wav.scp holds absolute paths; every
file is sorted in ``LC_ALL=C`` order; an utterance without a transcript keeps its audio and gets
an empty line in ``text`` (one warning with the count).

Corpora, licences and citations:

- **VCTK** 0.92 (``wav48_silence_trimmed/p225/p225_001_mic1.flac``) and 0.80
  (``wav48/p225/p225_001.wav``), both with ``txt/p225/p225_001.txt``. CC BY 4.0, Centre for Speech
  Technology Research (CSTR), University of Edinburgh. Cite: Yamagishi, Veaux and MacDonald, *CSTR
  VCTK Corpus: English Multi-speaker Corpus for CSTR Voice Cloning Toolkit (version 0.92)*, 2019,
  doi:10.7488/ds/2645. Splits: ``all``; ``test_unseen``: the last `VCTK_UNSEEN_MAX` (8) speakers in
  sorted order (fewer, a quarter, on small trees), reading the parallel sentences; the remaining
  (training) speakers give ``test`` = their parallel sentences (ids <= 024, the elicitation
  paragraph and rainbow passage that every speaker reads, so each test utterance has a parallel
  target in every other speaker), ``dev`` = their first `VCTK_DEV_PER_SPEAKER` (5) non-parallel
  utterances in id order (at most half of them, on a small subset), ``train`` = the rest; a tree
  with only the parallel sentences trains on 013-024 and tests on 001-012, with a warning. The unseen speakers' non-parallel utterances are
  only in ``all``. On the full 0.92 tree (110 speakers) the held-out ones are p360 p361 p362
  p363 p364 p374 p376 s5.
- **LibriSpeech** (``SPLIT/19/198/19-198-0001.flac`` + ``19-198.trans.txt``): CC BY 4.0. Cite:
  Panayotov, Chen, Povey and Khudanpur, *Librispeech: an ASR corpus based on public domain audio
  books*, ICASSP 2015. Each SPLIT folder present becomes a dir named Kaldi-style
  (``train-clean-100`` -> ``train_clean_100``); the speaker is the reader (``19``), not the
  chapter. Phone alignments from Montreal Forced Aligner TextGrids (McAuliffe et al., Interspeech
  2017) become ``phones.ctm`` + ``phones.txt`` (39 ARPAbet phones without stress + SIL).
- **TIMIT** (``TRAIN|TEST/DR1/FCJF0/SI1027.WAV`` + ``.PHN`` + ``.TXT``, upper- or lower-case;
  NIST SPHERE or RIFF): LDC93S1, LDC User Agreement (not free). Cite: Garofolo et al., *TIMIT
  Acoustic-Phonetic Continuous Speech Corpus*, LDC, 1993. Utterance ids ``FCJF0_SI1027`` (upper
  case whatever the tree). Splits: ``train``, ``test`` (every TEST speaker), ``test_core`` (the
  24-speaker core test set, `TIMIT_CORE_TEST`), ``dev`` (the 50 speakers of Kaldi's
  egs/timit/s5/conf/dev_spk.list, `TIMIT_DEV`). SA sentences are left out unless ``include_sa``,
  which adds them to train and test only (dev and test_core keep their standard SI+SX
  definition). Phones folded 61 -> 39 after Lee and Hon (1989), silences and closures as SIL.
- **A plain folder** ``<speaker>/<utt>.wav`` (any format libsndfile reads) with optional
  ``<utt>.txt``/``.lab`` transcripts beside the audio: one dir ``all``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from speechvq.progress import tqdm

from speechvq.data.speech.kaldi import (TIMIT_FOLD, DataDir, Segment, check_id,
                                 read_textgrid_phones, timit_phn_to_segments,
                                 validate_data_dir)
from speechvq.errors import DataError
from speechvq.fileio import read_text
from speechvq.ownership import Claim, claim

log = logging.getLogger(__name__)

VCTK_PARALLEL_LAST = 24    # sentence ids 001-024 are read by every VCTK speaker
VCTK_UNSEEN_MAX = 8        # held-out speakers: the last 8 in sorted order (a quarter if fewer)
VCTK_DEV_PER_SPEAKER = 5   # dev: the first 5 non-parallel utterances of each training speaker

#: The TIMIT core test set: 24 speakers, 2 men and 1 woman per dialect region (SI + SX: 192 utts).
TIMIT_CORE_TEST = (
    "MDAB0", "MWBT0", "FELC0", "MTAS1", "MWEW0", "FPAS0", "MJMP0", "MLNT0", "FPKT0", "MLLL0",
    "MTLS0", "FJLM0", "MBPM0", "MKLT0", "FNLP0", "MCMJ0", "MJDH0", "FMGD0", "MGRT0", "MNJM0",
    "FDHC0", "MJLN0", "MPAM0", "FMLD0")
#: The 50-speaker TIMIT dev set of Kaldi's timit recipe (egs/timit/s5/conf/dev_spk.list).
TIMIT_DEV = (
    "FAKS0", "FDAC1", "FJEM0", "MGWT0", "MJAR0", "MMDB1", "MMDM2", "MPDF0", "FCMH0", "FKMS0",
    "MBDG0", "MBWM0", "MCSH0", "FADG0", "FDMS0", "FEDW0", "MGJF0", "MGLB0", "MRTK0", "MTAA0",
    "MTDT0", "MTHC0", "MWJG0", "FNMR0", "FREW0", "FSEM0", "MBNS0", "MMJR0", "MDLS0", "MDLF0",
    "MDVC0", "MERS0", "FMAH0", "FDRW0", "MRCS0", "MRJM4", "FCAL1", "MMWH0", "FJSJ0", "MAJC0",
    "MJSW0", "MREB0", "FGJD0", "FJMG0", "MROA0", "MTEB0", "MJFC0", "MRJR0", "FMML0", "MRWS1")
#: CMU/MFA ARPAbet phones without stress: the LibriSpeech alignment inventory (plus SIL).
ARPABET = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
           "UH UW V W Y Z ZH").split()
AUDIO_EXTENSIONS = (".wav", ".flac", ".sph", ".nist", ".ogg", ".mp3", ".aiff", ".aif", ".au")


@dataclass(frozen=True)
class _Utt:
    """One utterance found in a corpus tree."""

    utt: str
    spk: str
    path: Path                                # absolute
    text: str | None = None                   # None: no transcript
    segments: tuple[Segment, ...] | None = None


def _utt(utt: str, spk: str, path: Path, text: str | None = None,
         segments: Iterable[Segment] | None = None) -> _Utt:
    """Check the ids (before anything is written) and build an `_Utt`."""
    check_id(spk, "speaker id", str(path))
    check_id(utt, "utterance id", str(path))
    if not utt.startswith(spk):
        raise DataError(f"{path}: utterance id {utt!r} does not start with its speaker {spk!r}; "
                        "Kaldi dirs need speaker-prefixed ids")
    if any(c in str(path) for c in "\n\r"):
        raise DataError(f"{path!r}: audio path contains a line break; rename the file")
    return _Utt(utt, spk, path, text, None if segments is None else tuple(segments))


def _corpus_root(corpus_dir: str | os.PathLike, name: str) -> Path:
    root = Path(corpus_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"{name} corpus folder {root} does not exist or is not a folder: "
                        f"pass the folder the {name} archive unpacked to")
    return root.resolve()


def _read_text(path: Path) -> str:
    """A transcript file as one line, whitespace collapsed (UTF-8, else Latin-1)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return " ".join(text.split())


def _warn_missing(what: str, examples: list[str], consequence: str) -> None:
    """One warning for a whole preparation, with the count and a few examples."""
    if examples:
        shown = ", ".join(sorted(examples)[:3]) + (", ..." if len(examples) > 3 else "")
        warnings.warn(f"{len(examples)} {what} ({shown}): {consequence}", stacklevel=3)


def _listdir(path: Path) -> list[str]:
    return sorted(n for n in os.listdir(path) if not n.startswith("."))


def _subdirs(path: Path) -> list[Path]:
    return [path / n for n in _listdir(path) if (path / n).is_dir()]


# ---------------------------------------------------------------------------------- writing


def _write_splits(out_dir: str | os.PathLike, splits: dict[str, list[_Utt]],
                  phones: list[str] | None = None, *, source: Path) -> dict[str, Path]:
    """Write each non-empty split as a Kaldi dir OUT/SPLIT (built in OUT/.SPLIT.tmp, renamed),
    holding OUT's lock; a split dir that `speechvq prepare` did not make, or one that is, holds
    or lies inside the corpus `source`, is refused before anything is written.

    Every id has been checked when this runs; duplicates are found here, before any write.
    """
    for name, utts in splits.items():
        check_id(name, "split name", str(out_dir))
        seen: dict[str, Path] = {}
        for u in utts:
            if u.utt in seen:
                raise DataError(f"utterance id {u.utt!r} comes from both {seen[u.utt]} and "
                                f"{u.path}; rename one of them")
            seen[u.utt] = u.path
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} exists and is not a folder; pass a folder path")
    with claim(out, "prepare", inputs=[source], check=False) as c:
        for name, utts in splits.items():
            if utts:
                c.check(out / name)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        for name, utts in splits.items():
            if utts:
                written[name] = _write_split(c, out.resolve(), name, utts, phones)
            else:
                log.info("split %s is empty in this corpus: not written", name)
        return written


def _write_split(c: Claim, out: Path, name: str, utts: list[_Utt],
                 phones: list[str] | None) -> Path:
    """OUT/NAME from `utts`, built in OUT/.NAME.tmp (marked as prepare's) and renamed."""
    tmp, final, old = out / f".{name}.tmp", out / name, out / f".{name}.old"
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    ctm = {u.utt: list(u.segments) for u in utts if u.segments}
    has_text = any(u.text is not None for u in utts)
    DataDir(path=tmp, wav_scp={u.utt: str(u.path) for u in utts},
            utt2spk={u.utt: u.spk for u in utts},
            text={u.utt: u.text or "" for u in utts} if has_text else None,
            ctm=ctm or None, phones=phones if ctm else None).save(tmp)
    try:  # what prepare writes passes its own validate (alignments inside the audio, ...)
        validate_data_dir(tmp)
    except DataError as e:
        shutil.rmtree(tmp)
        raise DataError(f"the {name} split of the corpus is inconsistent: "
                        f"{str(e).replace(str(tmp), str(final))}; nothing was written") from None
    c.mark(tmp)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    log.info("wrote %s: %d utterances, %d speakers", final, len(utts),
             len({u.spk for u in utts}))
    return final


# ------------------------------------------------------------------------------------- VCTK


def prepare_vctk(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                 mic: str = "mic1", progress: bool = True) -> dict[str, Path]:
    """VCTK 0.92 or 0.80 (detected from the tree) -> Kaldi dirs all/train/dev/test/test_unseen.

    Args:
        corpus_dir: the unpacked corpus, holding ``wav48_silence_trimmed/`` (0.92) or ``wav48/``
            (0.80) and ``txt/``.
        out_dir: where the split dirs go (created).
        mic: ``mic1`` or ``mic2`` (0.92 only; 0.80 has one microphone). Utterances without a
            file for that microphone are skipped, with one warning.
        progress: show a progress bar over speakers.

    Returns:
        split name -> Kaldi dir (splits: see the module docstring; empty ones are not written).
    """
    if mic not in ("mic1", "mic2"):
        raise DataError(f"VCTK microphone {mic!r} does not exist: use mic1 or mic2")
    root = _corpus_root(corpus_dir, "VCTK")
    if (root / "wav48_silence_trimmed").is_dir():
        audio_dir = root / "wav48_silence_trimmed"
        pattern = r"(?P<utt>{spk}_\w+?)_(?P<mic>mic[12])\.flac"
    elif (root / "wav48").is_dir():
        if mic != "mic1":
            raise DataError(f"{root} is VCTK 0.80 (wav48/), recorded with one microphone: "
                            "use mic1, or VCTK 0.92 for mic2")
        audio_dir, pattern = root / "wav48", r"(?P<utt>{spk}_\w+)\.wav"
    else:
        raise DataError(f"no wav48_silence_trimmed/ or wav48/ under {root}: is this VCTK? Pass "
                        "the folder holding them (VCTK-Corpus-0.92/ or VCTK-Corpus/); for "
                        "recordings in another layout (SPEAKER/UTT.wav folders) use `speechvq "
                        "prepare folder`")
    utts: list[_Utt] = []
    no_mic, no_text = [], []
    for spk_dir in tqdm(_subdirs(audio_dir), desc="vctk", unit="spk", disable=not progress):
        spk = spk_dir.name
        regex = re.compile(pattern.format(spk=re.escape(spk)))
        found: dict[str, dict[str, str]] = {}  # utt -> mic -> file name
        for name in _listdir(spk_dir):
            m = regex.fullmatch(name)
            if m:
                found.setdefault(m["utt"], {})[m.groupdict().get("mic") or "mic1"] = name
        for utt, mics in sorted(found.items()):
            if mic not in mics:
                no_mic.append(utt)
                continue
            txt = root / "txt" / spk / f"{utt}.txt"
            text = _read_text(txt) if txt.is_file() else None
            if text is None:
                no_text.append(utt)
            utts.append(_utt(utt, spk, spk_dir / mics[mic], text))
    if not utts:
        example = f"p225_001_{mic}.flac" if audio_dir.name != "wav48" else "p225_001.wav"
        raise DataError(f"no {mic} recordings like p225/{example} under {audio_dir}: is this "
                        "an unpacked VCTK corpus? (for another layout use `speechvq prepare "
                        "folder`)")
    _warn_missing(f"VCTK utterances have no {mic} recording", no_mic,
                  "skipped" + ("; mic1 has them" if mic == "mic2" else ""))
    _warn_missing("VCTK utterances have no transcript under txt/", no_text,
                  "audio kept, with an empty line in text")
    return _write_splits(out_dir, _vctk_splits(utts), source=root)


def _vctk_sentence(utt: _Utt) -> int | None:
    """The sentence number of ``p225_001`` (None when the id has no number)."""
    tail = utt.utt[len(utt.spk):].lstrip("_")
    return int(tail) if tail.isdigit() else None


def _vctk_splits(utts: list[_Utt]) -> dict[str, list[_Utt]]:
    speakers = sorted({u.spk for u in utts})
    n_unseen = min(VCTK_UNSEEN_MAX, len(speakers) // 4)
    unseen = set(speakers[len(speakers) - n_unseen:])
    splits: dict[str, list[_Utt]] = {"all": list(utts), "train": [], "dev": [], "test": [],
                                     "test_unseen": []}
    ordered = sorted(utts, key=lambda u: u.utt)
    parallel = {u.utt for u in ordered if (n := _vctk_sentence(u)) is not None
                and n <= VCTK_PARALLEL_LAST}
    own = {s: sum(1 for u in ordered if u.spk == s and u.utt not in parallel) for s in speakers}
    dev_count: dict[str, int] = {}
    for u in ordered:
        if u.spk in unseen:
            if u.utt in parallel:
                splits["test_unseen"].append(u)
        elif u.utt in parallel:
            splits["test"].append(u)
        # dev never takes more than half of a speaker's own sentences: a subset of the corpus
        # keeps a train split
        elif dev_count.get(u.spk, 0) < min(VCTK_DEV_PER_SPEAKER, own[u.spk] // 2):
            dev_count[u.spk] = dev_count.get(u.spk, 0) + 1
            splits["dev"].append(u)
        else:
            splits["train"].append(u)
    if not splits["train"] and splits["test"]:
        # only the parallel sentences are here (e.g. a 001-024 subset): train on their second
        # half, keep the first half for test, rather than leave no training data at all
        half = VCTK_PARALLEL_LAST // 2
        splits["train"] = [u for u in splits["test"] if (_vctk_sentence(u) or 0) > half]
        splits["test"] = [u for u in splits["test"] if (_vctk_sentence(u) or 0) <= half]
        warnings.warn(f"this VCTK tree has only the parallel sentences (001-{VCTK_PARALLEL_LAST:03d})"
                      f" for its training speakers: train = their sentences {half + 1:03d}-"
                      f"{VCTK_PARALLEL_LAST:03d}, test = 001-{half:03d}, no dev", stacklevel=3)
    return splits


# ------------------------------------------------------------------------------ LibriSpeech


def _is_librispeech_split(path: Path) -> bool:
    return next(path.glob("*/*/*.trans.txt"), None) is not None


def prepare_librispeech(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                        alignments: str | os.PathLike | None = None,
                        progress: bool = True) -> dict[str, Path]:
    """LibriSpeech -> one Kaldi dir per SPLIT folder present (``dev-clean`` -> ``dev_clean``).

    Args:
        corpus_dir: the ``LibriSpeech/`` folder holding SPLIT folders (or one SPLIT folder).
        out_dir: where the split dirs go (created).
        alignments: optional folder of Montreal Forced Aligner TextGrids, ``<spk>/<utt>.TextGrid``
            or flat (searched recursively): adds ``phones.ctm`` and ``phones.txt`` to each split
            with aligned utterances (stress stripped, silences as SIL).
        progress: show a progress bar over chapters.

    Returns:
        split name -> Kaldi dir.
    """
    root = _corpus_root(corpus_dir, "LibriSpeech")
    split_dirs = [d for d in _subdirs(root) if _is_librispeech_split(d)]
    if not split_dirs and _is_librispeech_split(root):
        split_dirs = [root]
    if not split_dirs:
        raise DataError(f"no SPLIT/SPK/CHAPTER/SPK-CHAPTER.trans.txt under {root}: is this "
                        "LibriSpeech? Pass the LibriSpeech/ folder holding dev-clean/, ...")
    textgrids = _index_textgrids(Path(alignments)) if alignments is not None else {}
    splits: dict[str, list[_Utt]] = {}
    no_audio, no_text, no_align = [], [], []
    for split_dir in split_dirs:
        name = split_dir.name.replace("-", "_")
        check_id(name, "split folder name", str(split_dir))
        utts = splits[name] = []
        trans_files = sorted(split_dir.glob("*/*/*.trans.txt"))
        for trans in tqdm(trans_files, desc=f"librispeech {name}", unit="chapter",
                          disable=not progress):
            chapter_dir, spk = trans.parent, trans.parent.parent.name
            texts = {}
            for line in read_text(trans, "LibriSpeech transcript").splitlines():
                if line.strip():
                    utt, _, text = line.strip().partition(" ")
                    texts[utt] = " ".join(text.split())
            flacs = {n[:-5] for n in _listdir(chapter_dir) if n.endswith(".flac")}
            no_audio += sorted(set(texts) - flacs)
            for utt in sorted(flacs):
                text = texts.get(utt)
                if text is None:
                    no_text.append(utt)
                segments = None
                if textgrids:
                    if utt in textgrids:
                        segments = read_textgrid_phones(textgrids[utt])
                    else:
                        no_align.append(utt)
                utts.append(_utt(utt, spk, chapter_dir / f"{utt}.flac", text, segments))
    if not any(splits.values()):
        raise DataError(f"no .flac files beside the trans.txt files under {root}: is the "
                        "LibriSpeech archive fully unpacked?")
    _warn_missing("LibriSpeech transcript lines have no .flac file", no_audio, "skipped")
    _warn_missing("LibriSpeech .flac files have no transcript line", no_text,
                  "audio kept, with an empty line in text")
    phones = None
    if textgrids:
        aligned = {s for us in splits.values() for u in us if u.segments for s in u.segments}
        if not aligned:
            raise DataError(f"no TextGrid under {alignments} is named after a LibriSpeech "
                            "utterance (19-198-0001.TextGrid): are these the alignments of "
                            f"{root}?")
        phones = _phone_inventory({p for _, _, p in aligned})
        _warn_missing("LibriSpeech utterances have no TextGrid", no_align,
                      "kept without alignments (left out of phones.ctm)")
    return _write_splits(out_dir, splits, phones, source=root)


def _index_textgrids(folder: Path) -> dict[str, Path]:
    """utterance id -> TextGrid path, from a folder searched recursively."""
    if not folder.is_dir():
        raise DataError(f"alignments folder {folder} does not exist: pass the Montreal Forced "
                        "Aligner output folder (<spk>/<utt>.TextGrid)")
    found: dict[str, Path] = {}
    for path in sorted(folder.resolve().rglob("*")):
        if path.suffix.lower() == ".textgrid" and path.is_file():
            if path.stem in found:
                raise DataError(f"two TextGrids for utterance {path.stem}: {found[path.stem]} "
                                f"and {path}; keep one")
            found[path.stem] = path
    if not found:
        raise DataError(f"no .TextGrid files under {folder}: pass the Montreal Forced Aligner "
                        "output folder")
    return found


def _phone_inventory(observed: set[str]) -> list[str]:
    """SIL + the 39 ARPAbet phones; other phone sets (MFA's IPA models) are kept as found."""
    if observed <= set(ARPABET) | {"SIL"}:
        return ["SIL", *ARPABET]
    extra = sorted(observed - set(ARPABET) - {"SIL"})
    warnings.warn(f"alignments use phones outside the 39 ARPAbet set ({' '.join(extra[:10])}"
                  f"{' ...' if len(extra) > 10 else ''}): phones.txt lists the phones found",
                  stacklevel=3)
    return ["SIL", *sorted(observed - {"SIL"})]


# ------------------------------------------------------------------------------------ TIMIT


def _timit_parts(root: Path) -> dict[str, Path]:
    """{'train': .../TRAIN, 'test': .../TEST} under root or one folder below (TIMIT/, data/)."""
    for base in (root, *_subdirs(root)):
        parts = {d.name.lower(): d for d in _subdirs(base) if d.name.lower() in ("train", "test")}
        if len(parts) == 2:
            return parts
    raise DataError(f"no TRAIN/ and TEST/ folders (DR1/FCJF0/SI1027.WAV + .PHN) under {root}: "
                    "is this TIMIT? Pass the folder holding TRAIN/ and TEST/")


def prepare_timit(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                  include_sa: bool = False, progress: bool = True) -> dict[str, Path]:
    """TIMIT -> Kaldi dirs train, test, test_core, dev, each with phones.ctm (39 phones + SIL).

    Args:
        corpus_dir: the folder holding ``TRAIN/`` and ``TEST/`` (any case; or one level above).
        out_dir: where the split dirs go (created).
        include_sa: keep the two dialect sentences SA1/SA2 (read by every speaker) in train and
            test; dev and test_core never have them.
        progress: show a progress bar over speakers.

    Returns:
        split name -> Kaldi dir (dev/test_core are not written when none of their speakers is
        in the tree).
    """
    root = _corpus_root(corpus_dir, "TIMIT")
    sentence = re.compile(r"(s[aix]\d+)\.wav", re.IGNORECASE)
    core, dev = set(TIMIT_CORE_TEST), set(TIMIT_DEV)
    splits: dict[str, list[_Utt]] = {"train": [], "test": [], "test_core": [], "dev": []}
    no_phn, no_text = [], []
    for part, part_dir in sorted(_timit_parts(root).items()):
        spk_dirs = [s for d in _subdirs(part_dir) if re.fullmatch(r"dr\d", d.name, re.I)
                    for s in _subdirs(d)]
        for spk_dir in tqdm(spk_dirs, desc=f"timit {part}", unit="spk", disable=not progress):
            spk = spk_dir.name.upper()
            names = {n.lower(): n for n in _listdir(spk_dir)}
            for low, name in sorted(names.items()):
                m = sentence.fullmatch(low)
                if not m:
                    continue
                sent = m[1].upper()
                utt = f"{spk}_{sent}"
                phn, txt = names.get(f"{m[1]}.phn"), names.get(f"{m[1]}.txt")
                segments = timit_phn_to_segments(spk_dir / phn, 16000, True) if phn else None
                text = _timit_text(spk_dir / txt) if txt else None
                if phn is None:
                    no_phn.append(utt)
                if txt is None:
                    no_text.append(utt)
                u = _utt(utt, spk, spk_dir / name, text, segments)
                if sent.startswith("SA"):
                    if include_sa:
                        splits[part].append(u)
                    continue
                splits[part].append(u)
                if part == "test" and spk in core:
                    splits["test_core"].append(u)
                if part == "test" and spk in dev:
                    splits["dev"].append(u)
    if not splits["train"] and not splits["test"]:
        raise DataError(f"no DR*/SPEAKER/SI*.WAV files under the TRAIN/ and TEST/ folders of "
                        f"{root}: is the TIMIT tree complete?")
    _warn_missing("TIMIT utterances have no .PHN file", no_phn,
                  "kept without alignments (left out of phones.ctm)")
    _warn_missing("TIMIT utterances have no .TXT file", no_text,
                  "audio kept, with an empty line in text")
    phones = ["SIL", *sorted({p for p in TIMIT_FOLD.values() if p and p != "SIL"})]
    return _write_splits(out_dir, splits, phones, source=root)


def _timit_text(path: Path) -> str:
    """The words of a TIMIT .TXT file (``0 46797 She had your dark suit ...``)."""
    parts = _read_text(path).split(" ", 2)
    return parts[2] if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() else ""


# ----------------------------------------------------------------------------- plain folder


def prepare_folder(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                   progress: bool = True) -> dict[str, Path]:
    """A folder ``<speaker>/<utt>.<wav|flac|...>`` -> one Kaldi dir ``all``.

    Utterance ids are ``<speaker>_<stem>``, or the stem itself when it already starts with the
    speaker followed by ``_``, ``-`` or ``.`` (``p225/p225_001.wav`` -> ``p225_001``). A
    ``<utt>.txt`` or ``<utt>.lab`` beside the audio becomes its transcript.

    Args:
        corpus_dir: the folder holding one sub-folder per speaker.
        out_dir: where ``all/`` goes (created).
        progress: show a progress bar over speakers.

    Returns:
        ``{"all": Path}``.
    """
    root = _corpus_root(corpus_dir, "audio")
    loose = [n for n in _listdir(root) if n.lower().endswith(AUDIO_EXTENSIONS)]
    if loose:
        raise DataError(f"audio files directly under {root} ({loose[0]}, ...): the folder "
                        "layout is <speaker>/<utt>.wav; move each file into its speaker's folder")
    utts: list[_Utt] = []
    no_text = []
    for spk_dir in tqdm(_subdirs(root), desc="folder", unit="spk", disable=not progress):
        spk = spk_dir.name
        names = _listdir(spk_dir)
        stems: dict[str, str] = {}
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTENSIONS:
                continue
            if stem in stems:
                raise DataError(f"{spk_dir}: {stems[stem]} and {name} are the same utterance; "
                                "keep one")
            stems[stem] = name
        lower = {n.lower(): n for n in names}
        for stem, name in stems.items():
            own = stem == spk or (stem.startswith(spk) and stem[len(spk)] in "_-.")
            utt = stem if own else f"{spk}_{stem}"
            tr = lower.get(f"{stem.lower()}.txt") or lower.get(f"{stem.lower()}.lab")
            text = _read_text(spk_dir / tr) if tr else None
            if text is None:
                no_text.append(utt)
            utts.append(_utt(utt, spk, spk_dir / name, text))
    if not utts:
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in the speaker "
                        f"folders of {root}: the layout is <speaker>/<utt>.wav")
    if len(no_text) < len(utts):
        _warn_missing("utterances have no .txt/.lab transcript", no_text,
                      "audio kept, with an empty line in text")
    return _write_splits(out_dir, {"all": utts}, source=root)


#: The preparers the CLI offers, by corpus name (``speechvq prepare NAME SRC OUT``).
PREPARERS: dict[str, Callable[..., dict[str, Path]]] = {
    "vctk": prepare_vctk,
    "librispeech": prepare_librispeech,
    "timit": prepare_timit,
    "folder": prepare_folder,
}
