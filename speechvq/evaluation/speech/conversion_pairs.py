"""A conversion dir read as (converted, source, target, source speaker) pairs, and its sources.

`speechvq convert --data ... --out DIR` writes a Kaldi dir whose ``utt2spk`` is the target
speaker and ``utt2src`` the source utterance (DESIGN.md, stage 4). `read_conversions` turns it
into one `Pair` per converted file and finds the real data that holds each source utterance:
``--src`` when given, else the reference dirs, the training data, then the data dirs beside the
first reference. Every score of `speechvq.evaluation.speech.conversion` is computed over these
`Conversions`; `unique_dirs` drops a reference dir given twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

from speechvq.data.speech.kaldi import DataDir
from speechvq.data.speech.utterances import Utterances
from speechvq.errors import DataError


class Pair(NamedTuple):
    """One converted file and what it was made from."""

    converted: str  # the converted utterance id
    source: str  # the source utterance id (``utt2src``)
    target: str  # the target speaker (``utt2spk``)
    source_speaker: str  # the speaker of the source utterance


class Conversions(NamedTuple):
    """A conversion dir read for scoring."""

    path: str | os.PathLike  # the dir, as the user gave it
    data: Utterances  # its audio
    pairs: list[Pair]  # one per converted utterance, in the dir's order
    sources: dict[str, Utterances]  # source utt -> the real data that holds it

    def source_datas(self) -> list[Utterances]:
        """The distinct data objects of `sources`, in first-seen order."""
        return list({id(d): d for d in self.sources.values()}.values())


def read_conversions(converted: str | os.PathLike, refs: Sequence[str | os.PathLike],
                     train: str | os.PathLike | None, src: str | os.PathLike | None,
                     sample_rate: int) -> Conversions:
    """The pairs of a conversion dir and the data holding their sources.

    Args:
        converted: the conversion data dir (``utt2src`` required).
        refs: the reference dirs (``--ref``); train: ``--train`` or None; src: ``--src`` or None.
        sample_rate: the model's rate (audio is read at it).
    Raises:
        DataError: no ``utt2src``, or a source found in none of the candidate dirs.
    Returns:
        The `Conversions`.
    """
    cdir = DataDir.load(converted)
    if not cdir.utt2src:
        raise DataError(f"'{converted}' has no utt2src, so its sources are unknown; give the "
                        "output dir of `speechvq convert --data ... --out DIR`")
    conv = Utterances(converted, sample_rate)
    given = {Path(r).resolve() for r in refs}
    candidates = [Path(src)] if src is not None else [Path(r) for r in refs] + (
        [Path(train)] if train is not None else []) + sorted(
        p for p in Path(refs[0]).parent.iterdir()
        if p.resolve() not in given and p.resolve() != Path(converted).resolve()
        and ((p / "wav.scp").exists() or (p / "dump.json").exists()))
    sources = _find_sources(set(cdir.utt2src.values()), candidates, sample_rate)
    lost = sorted(set(cdir.utt2src.values()) - set(sources))
    if lost:
        raise DataError(f"source utterance {lost[0]!r} of '{converted}' is in none of "
                        f"{', '.join(map(str, candidates))}; pass --src DATA (the data given to "
                        f"`speechvq convert`)")
    pairs = [Pair(c, cdir.utt2src[c], conv.speaker(c),
                  sources[cdir.utt2src[c]].speaker(cdir.utt2src[c])) for c in conv.utts]
    return Conversions(converted, conv, pairs, sources)


def _find_sources(src_utts: set[str], candidates: list[Path], sample_rate: int
                  ) -> dict[str, Utterances]:
    """Source utt -> the first candidate data (dump or Kaldi dir) that holds it."""
    found: dict[str, Utterances] = {}
    for path in candidates:
        missing = src_utts - set(found)
        if not missing:
            break
        data = Utterances(path, sample_rate, "--src")
        for u in missing & set(data.utts):
            found[u] = data
    return found


def unique_dirs(paths: list) -> list:
    """``paths`` without repeats (by resolved path): a dir given twice would pair each reading
    with itself and fake a 0 dB topline."""
    seen, out = set(), []
    for p in paths:
        key = Path(p).resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
