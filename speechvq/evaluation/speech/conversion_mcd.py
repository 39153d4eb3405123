"""Quality of converted audio: mel-cepstral distortion to the target's real reading.

Mel-cepstral distortion (`speechvq.evaluation.speech.mcd`, Kubichek 1993; order 24, alpha 0.42,
5 ms, DTW, c0 and silent frames excluded) between each converted file and the target speaker's
real reading of the same sentence in ``--ref`` (same ``text``; files without one are skipped and
counted). Beside it (`mcd_scores`):

- the baseline: the source-to-target MCD of the unconverted source;
- the topline: two real readings of the sentence by the target when the references have them
  (``--ref`` takes several dirs, e.g. the built-in corpus's ``test`` and ``test_reread``), else
  the target's reading against another training speaker's reading (the result says which).

Part of `speechvq evaluate conversion` (`speechvq.evaluation.speech.conversion`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from speechvq.progress import tqdm

from speechvq.data.speech.utterances import Utterances
from speechvq.evaluation.speech.conversion_pairs import Conversions
from speechvq.evaluation.speech.mcd import mcd


class RealAudio:
    """Waveforms and real-vs-real MCDs of (data dir, utt), each computed once per `evaluate
    conversion` call (the baselines and toplines of several conversion dirs share their sources
    and targets)."""

    def __init__(self) -> None:
        self._wavs: dict[tuple[str, str], np.ndarray] = {}
        self._mcds: dict[tuple, float] = {}

    def wav(self, data: Utterances, utt: str) -> np.ndarray:
        """(T,) float32 samples of `utt` in `data`."""
        key = (str(data.path), utt)
        if key not in self._wavs:
            self._wavs[key] = data.waveform(utt)
        return self._wavs[key]

    def mcd(self, a: tuple[Utterances, str], b: tuple[Utterances, str], sr: int) -> float:
        """MCD between two real recordings (data, utt), memoised."""
        key = ((str(a[0].path), a[1]), (str(b[0].path), b[1]))
        if key not in self._mcds:
            self._mcds[key] = mcd(self.wav(*a), self.wav(*b), sr)
        return self._mcds[key]


def _norm(text: str | None) -> str | None:
    return None if text is None else " ".join(text.split())


def mcd_scores(audio: RealAudio, conv: Conversions, refs: Sequence[Utterances],
               train: Utterances | None, *, train_speakers: Sequence[str], sr: int,
               n_spectrograms: int, progress: bool) -> tuple[dict, list[dict], list[dict]]:
    """MCD of every converted file with a parallel target reading, its baseline and topline.

    Args:
        audio: the call's `RealAudio`. conv: the conversion dir
            (`speechvq.evaluation.speech.conversion_pairs.read_conversions`).
        refs: every ``--ref`` (target readings come from these only); train: ``--train`` or None
            (its readings may serve as toplines). train_speakers: the model's speakers.
        sr: the model's sample rate; n_spectrograms: (source, converted, target) triples kept
            for the report's figure.
    Returns:
        (the ``mcd_*`` metrics with ``n_mcd``, ``n_no_parallel`` and ``n_topline``; one row per
        pair with ``utt``, ``source``, ``target``, ``mcd_db``, ``mcd_baseline_db``,
        ``mcd_topline_db`` and ``topline``; the spectrogram triples).
    """
    readings = defaultdict(list)  # (speaker, text) -> [(data, utt)]
    for data in list(refs) + ([train] if train is not None else []):
        for u in data.utts:
            readings[(data.speaker(u), _norm(data.text(u)))].append((data, u))
    by_text = defaultdict(list)
    for (spk, text), items in readings.items():
        by_text[text] += [(spk, d, u) for d, u in items]
    toplines: dict[tuple[str, str], tuple[float | None, str | None]] = {}
    rows, spectro, skipped = [], [], 0
    sources = conv.sources
    for c, s, tgt, src_spk in tqdm(conv.pairs, desc="mcd", unit="utt", disable=not progress):
        text = _norm(conv.data.text(c) or sources[s].text(s))
        row = {"utt": c, "source": s, "target": tgt, "mcd_db": None, "mcd_baseline_db": None,
               "mcd_topline_db": None}
        rows.append(row)
        targets = [(d, u) for d, u in readings.get((tgt, text), [])
                   if any(d is r for r in refs) and u != s]
        if text is None or not targets:
            skipped += 1
            continue
        d_t, u_t = targets[0]
        row["mcd_db"] = mcd(audio.wav(d_t, u_t), audio.wav(conv.data, c), sr)
        row["mcd_baseline_db"] = audio.mcd((d_t, u_t), (sources[s], s), sr)
        if (tgt, text) not in toplines:
            toplines[(tgt, text)] = _topline(audio, targets, by_text[text], tgt, src_spk,
                                             train_speakers, sr)
        row["mcd_topline_db"], row["topline"] = toplines[(tgt, text)]
        if len(spectro) < n_spectrograms:
            spectro.append({"utt": c, "text": text,
                            "source": {"data": str(sources[s].path.resolve()), "utt": s},
                            "converted": {"data": str(Path(conv.path).resolve()), "utt": c},
                            "target": {"data": str(d_t.path.resolve()), "utt": u_t}})
    scored = [r for r in rows if r["mcd_db"] is not None]
    tops = [r for r in scored if r["mcd_topline_db"] is not None]
    kinds = sorted({r["topline"] for r in tops})
    metrics = dict(
        mcd_db=float(np.mean([r["mcd_db"] for r in scored])) if scored else None,
        mcd_baseline_db=float(np.mean([r["mcd_baseline_db"] for r in scored])) if scored else None,
        mcd_topline_db=float(np.mean([r["mcd_topline_db"] for r in tops])) if tops else None,
        mcd_topline="; ".join(f"{k} ({sum(r['topline'] == k for r in tops)})" for k in kinds)
        or None,
        n_mcd=len(scored), n_no_parallel=skipped, n_topline=len(tops))
    return metrics, rows, spectro


def _topline(audio, targets, same_text, tgt, src_spk, train_speakers, sr):
    """(MCD, kind): two real readings by the target, else the target vs another training
    speaker's reading of the sentence (not the source speaker when another exists)."""
    # a second reading is another utterance id: the same id in two dirs is the same recording
    second = next(((d, u) for d, u in targets[1:] if u != targets[0][1]), None)
    if second is not None:
        return audio.mcd(targets[0], second, sr), "two readings by the target"
    others = [(spk, d, u) for spk, d, u in same_text if spk != tgt and spk in train_speakers]
    others.sort(key=lambda x: (x[0] == src_spk, x[0], x[2]))
    if not others:
        return None, None
    _, d, u = others[0]
    return audio.mcd(targets[0], (d, u), sr), "target vs another training speaker"
