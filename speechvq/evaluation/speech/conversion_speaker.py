"""Speaker identification of converted audio: does a conversion sound like its target?

A speaker-ID classifier (utterance-level mean and standard deviation of log-mel and MFCC frames,
standardised, multinomial logistic regression; scikit-learn) is trained on real training audio.
Its accuracy on held-out real audio comes first, so a reader knows whether the classifier can
tell the speakers apart at all: the reference data's real utterances of the training speakers
when there is separate training data, else a seeded 20 % split of the training utterances
(`classifier_sets`). Then `SpeakerID.score` gives the share of converted files assigned to the
target speaker (over targets the classifier knows), and to the source speaker (over sources it
knows); None (``n/a`` in tables) when it knows none. Part of
`speechvq evaluate conversion` (`speechvq.evaluation.speech.conversion`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple, Sequence

import numpy as np
import torch
from speechvq.progress import tqdm

from speechvq.data.speech.utterances import Utterances
from speechvq.errors import DataError
from speechvq.evaluation.bootstrap import mean_ci, ratio_ci, resample_counts
from speechvq.evaluation.speech.conversion_pairs import Conversions

N_MFCC = 13
SPEECH_RANGE = 5.0  # frames more than this (nats of mean log-mel, ~43 dB) below the loudest drop


def speaker_features(wav: np.ndarray, data_cfg) -> np.ndarray:
    """Utterance-level speaker features: mean and std of log-mel and MFCC frames.

    Frames whose mean log-mel lies more than `SPEECH_RANGE` below the loudest frame's are left
    out, so the statistics describe the voice, not the pauses.

    Args:
        wav: (T,) float waveform at ``data_cfg.sample_rate``.
        data_cfg: a `speechvq.config.DataConfig` (the model's log-mel parameters).
    Returns:
        (2 * (n_mels + 13),) float64: [mean log-mel, mean MFCC, std log-mel, std MFCC].
    """
    from speechvq.audio import dct_matrix, log_mel_cfg

    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))  # (T,)
    lm = log_mel_cfg(x, data_cfg).double()  # (M, F)
    m = lm.shape[0]
    dct = dct_matrix(N_MFCC, m, lm.device, torch.float64)  # (13, M), as speechvq.audio.mfcc
    feats = torch.cat([lm, dct @ lm]).numpy()  # (M + 13, F)
    level = feats[:m].mean(0)  # (F,)
    speech = feats[:, level >= level.max() - SPEECH_RANGE]  # (M + 13, F')
    return np.concatenate([speech.mean(1), speech.std(1)])


def train_speaker_classifier(features: np.ndarray, speakers: Sequence[str], seed: int = 0):
    """StandardScaler + multinomial LogisticRegression (scikit-learn) on utterance features.

    Args:
        features: (N, F) from `speaker_features`. speakers: (N,) labels.
    Returns:
        The fitted pipeline (``predict``, ``classes_``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(speakers)) < 2:
        raise DataError("speaker identification needs real audio of at least two speakers in "
                        "--train; give the training data")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0,
                                                             random_state=seed))
    return clf.fit(np.asarray(features), list(speakers))


def heldout_split(utts: Sequence[str], speakers: Sequence[str], fraction: float = 0.2,
                  seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded per-speaker split: about `fraction` of each speaker's utterances (at least one,
    when the speaker has two or more) are held out. Returns: (train utts, held-out utts)."""
    rng = np.random.default_rng(seed)
    by_spk = defaultdict(list)
    for u, s in zip(utts, speakers):
        by_spk[s].append(u)
    held = set()
    for s in sorted(by_spk):
        us = sorted(by_spk[s])
        n = min(len(us) - 1, max(1, int(round(fraction * len(us)))))
        held.update(rng.permutation(us)[:n].tolist() if n > 0 else [])
    return [u for u in utts if u not in held], [u for u in utts if u in held]


class ClassifierSets(NamedTuple):
    """The real audio the classifier is fitted on and the real audio it is scored on."""

    fit_data: Utterances
    fit_utts: list[str]
    heldout_data: Utterances
    heldout_utts: list[str]
    heldout_kind: str  # what the held-out set is, for the result (``speaker_id_heldout_set``)


def classifier_sets(ref: Utterances, train: Utterances | None, seed: int = 0,
                    ref_name: str | None = None) -> ClassifierSets:
    """Fit on all of ``--train`` and hold out ``--ref``'s real utterances of its speakers; without
    ``--train`` (or when ``--ref`` has none of them), a seeded 20 % split of the one data set.

    Args:
        ref, train: the first ``--ref`` and ``--train`` (or None); seed: the split's seed.
        ref_name: ``--ref`` as the user spelled it, for ``heldout_kind`` (default its path).
    Raises:
        DataError: the split would hold nothing out (one utterance per speaker).
    """
    base = train if train is not None else ref
    base_spk = [base.speaker(u) for u in base.utts]
    known, fitted = set(base_spk), set(base.utts)
    held_ref = [u for u in ref.utts if ref.speaker(u) in known
                and u not in fitted] if train is not None else []
    if held_ref:
        return ClassifierSets(base, list(base.utts), ref, held_ref, f"ref ({ref_name or ref.path})")
    fit_utts, held = heldout_split(base.utts, base_spk, 0.2, seed)
    if not held:
        raise DataError(f"'{base.path}' has too few real utterances per speaker to hold any "
                        "out for the speaker classifier; give --train with the training data")
    return ClassifierSets(base, fit_utts, base, held, f"seeded 20% split of {base.path}")


class SpeakerID:
    """Speaker features of (data dir, utt) and fitted classifiers, each computed once per
    `evaluate conversion` call (several conversion dirs share their training data and sources).

    Args:
        data_cfg: the model's `speechvq.config.DataConfig` (log-mel parameters).
    """

    def __init__(self, data_cfg) -> None:
        self.cfg = data_cfg
        self._feats: dict[tuple[str, str], np.ndarray] = {}
        self._classifiers: dict[tuple, object] = {}

    def features(self, data: Utterances, utts: Sequence[str], progress: bool, desc: str
                 ) -> np.ndarray:
        """(N, F) `speaker_features` of `utts` of `data`."""
        out = []
        for u in tqdm(utts, desc=desc, unit="utt", disable=not progress):
            key = (str(data.path), u)
            if key not in self._feats:
                self._feats[key] = speaker_features(data.waveform(u), self.cfg)
            out.append(self._feats[key])
        return np.stack(out)  # (N, F)

    def score(self, sets: ClassifierSets, conv: Conversions, progress: bool, seed: int = 0
              ) -> tuple[dict, list[str]]:
        """Fit the classifier (once per fit set), score it on the held-out real audio, then on
        the conversions.

        Returns:
            (the ``speaker_id_*`` metrics with ``n_seen_sources``,
            ``n_targets_unknown_to_classifier`` and their ``ci95`` intervals (bootstrap over
            the held-out utterances, and over the converted files), the predicted speaker of
            each pair).
            ``speaker_id_target`` counts only conversions to targets the classifier knows.
        """
        key = (str(sets.fit_data.path), tuple(sets.fit_utts))
        if key not in self._classifiers:
            x = self.features(sets.fit_data, sets.fit_utts, progress, "speaker features (train)")
            self._classifiers[key] = train_speaker_classifier(
                x, [sets.fit_data.speaker(u) for u in sets.fit_utts])
        clf = self._classifiers[key]
        classes = set(clf.classes_)
        xh = self.features(sets.heldout_data, sets.heldout_utts, progress,
                           "speaker features (held out)")
        truth = [sets.heldout_data.speaker(u) for u in sets.heldout_utts]
        correct = clf.predict(xh) == np.asarray(truth)  # (held out,)
        acc = float(np.mean(correct))
        pred = clf.predict(self.features(conv.data, [p.converted for p in conv.pairs], progress,
                                         "speaker features (converted)"))
        tgt = np.array([p.target for p in conv.pairs])
        src_spk = np.array([p.source_speaker for p in conv.pairs])
        seen = np.array([s in classes for s in src_spk])
        known = np.array([t in classes for t in tgt])  # a target it cannot name is not scored
        metrics = {
            "speaker_id_heldout_accuracy": acc, "speaker_id_heldout_set": sets.heldout_kind,
            "speaker_id_n_heldout": len(sets.heldout_utts),
            "speaker_id_n_train": len(sets.fit_utts), "speaker_id_n_speakers": len(classes),
            "speaker_id_target": float(np.mean(pred[known] == tgt[known])) if known.any()
            else None,
            "speaker_id_source": float(np.mean(pred[seen] == src_spk[seen])) if seen.any()
            else None,
            "n_seen_sources": int(seen.sum()),
            "n_targets_unknown_to_classifier": int(sum(t not in classes for t in tgt)),
            "ci95": {"speaker_id_heldout_accuracy": mean_ci(correct, seed),
                     # the conversion's resamples of its files (`conversion_intervals`'s)
                     **_share_intervals(pred, tgt, src_spk, known, seen, seed)}}
        return metrics, pred.tolist()


def _share_intervals(pred, tgt, src_spk, known, seen, seed: int) -> dict:
    """Intervals of the shares identified as the target (over files to known targets) and as
    the source (over files from known sources), resampling the converted files."""
    counts = resample_counts(len(pred), seed)
    return {"speaker_id_target": ratio_ci((pred == tgt) & known, known, counts)
            if known.any() else None,
            "speaker_id_source": ratio_ci((pred == src_spk) & seen, seen, counts)
            if seen.any() else None}
