"""`speechvq evaluate conversion`: objective voice-conversion scores of a conversion data dir.

The conversions of `speechvq convert --data ... --out DIR` form a Kaldi dir whose ``utt2spk`` is
the target speaker and ``utt2src`` the source utterance. Three questions, each answered beside
the number that says whether the answer means anything:

1. Speaker: a speaker-ID classifier (utterance-level mean and standard deviation of log-mel and
   MFCC frames, standardised, multinomial logistic regression; scikit-learn) is trained on real
   training audio (``--train``). Its accuracy on held-out real audio comes first: the reference
   data's real utterances of the training speakers when it has any, else a seeded 20 % split of
   the training utterances. Then the share of converted files it assigns to the target speaker,
   and to the source speaker (over sources the classifier knows).
2. Content: the converted audio is re-encoded with the model; the code agreement with the
   source's codes (frame-wise, both trimmed to the shorter), and the code-to-phone mapping
   accuracy (van den Oord et al. 2017) of the converted codes against the source's alignment,
   with the mapping fitted on the training data's codes (or the sources' own when the training
   data has no alignment), beside the same accuracy of the unconverted source's codes.
3. Quality: mel-cepstral distortion (`speechvq.evaluation.speech.mcd`, Kubichek 1993; order 24,
   alpha 0.42, 5 ms, DTW, c0 and silent frames excluded) between each converted file and the
   target speaker's real reading of the same sentence in ``--ref`` (same ``text``; files without
   one are skipped and counted); beside it the source-to-target MCD of the unconverted source
   (baseline) and a topline: two real readings of the sentence by the target when the reference
   has them (``--ref`` takes several dirs, e.g. the built-in corpus's ``test`` and
   ``test_reread``), else the target's reading against another training speaker's reading (the
   result says which).

Writes ``EXP/eval/conversion_<name>.json``: ``conversion.<name>.<metric>``, ``command``, ``data``
and ``details`` (per-utterance scores, and the source / converted / target triples the report
draws spectrograms of).

This module runs the three and writes the result (`evaluate_conversions`, `evaluate_conversion`)
and formats it for the terminal (`format_conversion`); each question has its own module:
`conversion_speaker` (1), `conversion_content` (2), `conversion_mcd` (3), and
`conversion_pairs` reads a conversion dir, finds its sources and drops repeated ``--ref`` dirs.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Sequence

import numpy as np

from speechvq.data.speech.utterances import Utterances
from speechvq.errors import DataError
from speechvq.evaluation.results import (check_name, command_line, default_name,
                                         resolve_exp_dir, write_result)
from speechvq.evaluation.speech.conversion_content import content_scores
from speechvq.evaluation.speech.conversion_mcd import RealAudio, mcd_scores
from speechvq.evaluation.speech.conversion_pairs import read_conversions, unique_dirs
from speechvq.evaluation.speech.conversion_speaker import SpeakerID, classifier_sets

__all__ = ["evaluate_conversions", "evaluate_conversion", "format_conversion"]


class _Shared(NamedTuple):
    """What one `evaluate conversion` call computes once for all its conversion dirs."""

    speaker_id: SpeakerID  # speaker features and fitted classifiers
    train_codes: dict[str, dict[str, np.ndarray]]  # training data path -> its codes
    audio: RealAudio  # real waveforms and real-vs-real MCDs


def evaluate_conversions(converted: Sequence[str | os.PathLike],
                         ref: str | os.PathLike | Sequence[str | os.PathLike],
                         model: str | os.PathLike, *, names: Sequence[str | None] | None = None,
                         checkpoint: str | None = None, device: str = "auto",
                         **kwargs) -> list[dict]:
    """`evaluate_conversion` of several conversion dirs against one ``ref``: the model is loaded,
    and the speaker classifier and the training codes are computed, once for all of them.

    ``names`` (one per dir, default each dir's folder name); other arguments as
    `evaluate_conversion`. Returns one result per dir, in order.
    """
    from speechvq.encode import load_vqvae, pick_device

    converted = [converted] if isinstance(converted, (str, os.PathLike)) else list(converted)
    refs = unique_dirs([ref] if isinstance(ref, (str, os.PathLike)) else list(ref))
    if not converted or not refs:
        raise DataError("give at least one conversion dir (--data) and one reference dir (--ref)")
    names = list(names) if names is not None else [None] * len(converted)
    if len(names) != len(converted):
        raise DataError(f"{len(names)} names for {len(converted)} conversion dirs; give one name "
                        f"per --data, or none")
    # every name checked before anything is scored, so a bad one costs nothing
    names = [check_name(n.strip() if n else default_name(c)) for c, n in zip(converted, names)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"two conversion dirs would both be written as conversion_{twice[0]}.json;"
                        f" give each its own name with --name a,b")
    vq = load_vqvae(model, checkpoint=checkpoint, device=pick_device(device))
    shared = _Shared(SpeakerID(vq.cfg.data), {}, RealAudio())
    return [_evaluate_one(c, refs, model, vq, shared, name=n, checkpoint=checkpoint,
                          device=device, **kwargs)
            for c, n in zip(converted, names)]


def evaluate_conversion(converted: str | os.PathLike,
                        ref: str | os.PathLike | Sequence[str | os.PathLike],
                        model: str | os.PathLike, *, train: str | os.PathLike | None = None,
                        src: str | os.PathLike | None = None, name: str | None = None,
                        exp_dir: str | os.PathLike | None = None, checkpoint: str | None = None,
                        device: str = "auto", batch_size: int = 8, seed: int = 0,
                        n_spectrograms: int = 3, progress: bool = True) -> dict:
    """`speechvq evaluate conversion --data CONVERTED --ref DATA --model M [--train DATA]`.

    Args:
        converted: the conversion data dir (``utt2src`` required).
        ref: real recordings (dump or Kaldi dir with ``text``) holding the targets' readings,
            or several: the first also gives the speaker classifier's held-out set, the others
            only add readings (a second reading by the target is the MCD topline).
        model: exp dir or ``.pt`` (re-encodes the audio; its log-mel settings give the features).
        train: real training audio for the speaker classifier and the code-to-phone mapping
            (default: the first ``ref``, with a seeded held-out split).
        src: where the source utterances are (default: looked up in ``ref``, ``train``, then the
            data dirs beside ``ref``).
        name: result name (default: CONVERTED's folder name); exp_dir: default the model's.
        seed: classifier and split seed; n_spectrograms: triples kept for the report's figure.
    Returns:
        The JSON written to ``EXP/eval/conversion_<name>.json`` (with ``output``, its path).
    """
    return evaluate_conversions([converted], ref, model, names=[name], train=train, src=src,
                                exp_dir=exp_dir, checkpoint=checkpoint, device=device,
                                batch_size=batch_size, seed=seed, n_spectrograms=n_spectrograms,
                                progress=progress)[0]


def _evaluate_one(converted, refs, model, vq, shared: _Shared, *, train=None, src=None,
                  name=None, exp_dir=None, checkpoint=None, device="auto", batch_size=8, seed=0,
                  n_spectrograms=3, progress=True) -> dict:
    ref, *more_refs = refs  # further real readings (second takes): MCD targets, toplines only

    name = check_name(name or default_name(converted))
    exp = resolve_exp_dir(model, exp_dir)
    sr = vq.sample_rate
    ref_all = [Utterances(r, sr, "--ref") for r in refs]
    train_u = Utterances(train, sr, "--train") if train is not None else None
    conv = read_conversions(converted, refs, train, src, sr)
    metrics = {"n_converted": len(conv.pairs)}

    # 1. speaker identification
    sets = classifier_sets(ref_all[0], train_u, seed, ref_name=str(ref))
    sid, predicted = shared.speaker_id.score(sets, conv, progress, seed)
    metrics.update(sid)
    # 2. content
    content, agree = content_scores(vq, conv, train_u, batch_size=batch_size, progress=progress,
                                    train_codes=shared.train_codes)
    metrics.update(content)
    # 3. MCD
    mcds, per_utt, spectro = mcd_scores(shared.audio, conv, ref_all, train_u,
                                        train_speakers=vq.speakers, sr=sr,
                                        n_spectrograms=n_spectrograms, progress=progress)
    metrics.update(mcds)
    for row, pred in zip(per_utt, predicted):
        eq, n, hit, labelled = agree[row["utt"]]
        row.update(predicted_speaker=pred, code_agreement=eq / max(n, 1))
    metrics["ci95"] = {**sid.pop("ci95"), **conversion_intervals(conv, agree, per_utt, seed)}

    result = {
        "conversion": {name: metrics},
        "command": command_line(["speechvq", "evaluate", "conversion", "--model", str(model),
                                 "--checkpoint", checkpoint, "--data", str(converted),
                                 "--ref", *map(str, [ref, *more_refs]), "--train",
                                 None if train is None else str(train),
                                 "--src", None if src is None else str(src), "--name", name,
                                 "--exp", None if exp_dir is None else str(exp),
                                 "--batch-size", batch_size, "--device", device,
                                 "--seed", seed]),
        "data": {"converted": str(converted), "ref": str(ref),
                 "more_refs": [str(r) for r in more_refs],
                 "train": None if train is None else str(train), "model": str(model),
                 "checkpoint": checkpoint,
                 "sources": sorted({str(d.path) for d in conv.sources.values()})},
        "details": {"sample_rate": sr, "utterances": per_utt, "spectrograms": spectro},
    }
    write_result(exp, "conversion", name, result)
    return result


def conversion_intervals(conv, agree: dict, rows: Sequence[dict], seed: int
                         ) -> dict[str, list[float] | None]:
    """95 % bootstrap intervals over the converted files (`speechvq.evaluation.bootstrap`, the
    same resamples as the speaker-ID shares'): the frame-pooled code agreement and mapping
    accuracy, and the mean MCDs over the files that have them (None where no file has one)."""
    from speechvq.evaluation.bootstrap import ratio_ci, resample_counts

    counts = resample_counts(len(conv.pairs), seed)  # (R, files)
    per = [agree[p.converted] for p in conv.pairs]  # (eq, n, hit, labelled) per file
    out = {"code_agreement": ratio_ci([a[0] for a in per], [a[1] for a in per], counts)}
    out["mapping_accuracy"] = None if any(a[2] is None for a in per) else ratio_ci(
        [a[2] for a in per], [a[3] for a in per], counts)
    for metric in ("mcd_db", "mcd_baseline_db", "mcd_topline_db"):
        has = np.array([r[metric] is not None for r in rows])
        out[metric] = ratio_ci([r[metric] or 0.0 for r in rows], has, counts) if has.any() \
            else None
    return out


def format_conversion(result: dict) -> str:
    """The conversion block(s) of a result as readable lines (percent with one decimal, dB),
    one per metric of `speechvq.evaluation.speech.metrics.conversion_rows`."""
    from speechvq.evaluation.speech.metrics import conversion_rows

    lines = []
    for name, m in result["conversion"].items():
        lines.append(f"conversion {name}: {m.get('n_converted')} converted files")
        lines += [f"  {c.label:<46} {c.show(m.get(c.name))}" + (f"  ({note})" if note else "")
                  for c, note in conversion_rows(m)]
    return "\n".join(lines)
