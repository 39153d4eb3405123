"""Baseline unit systems scored beside the VQ-VAE's codes, on the same frames, fitted the same way.

- majority: one code for every frame; its mapping accuracy is the majority phone's share (chance).
- random: codes drawn uniformly from the K codes, seeded.
- MFCC k-means: k-means with the same K on 39-dim MFCC + delta + delta-delta features (13 MFCCs,
  as HuBERT's first-iteration targets, Hsu et al. 2021, fairseq
  ``examples/hubert/simple_kmeans/dump_mfcc_feature.py``), mean-pooled to the code frame rate so
  every baseline unit covers exactly the samples of one code: code i covers samples
  [i * hop, (i + 1) * hop), T_codes = ceil(T / hop). Clustering with scikit-learn (``KMeans``, or
  ``MiniBatchKMeans`` on large sets, as fairseq's ``learn_kmeans.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MFCC_HOP_S = 0.010  # analysis hop of the MFCCs before pooling (at most this; divides the code hop)
MFCC_WIN_S = 0.025  # analysis window
DELTA_WIDTH = 5  # regression window of the deltas (Kaldi add-deltas window 2, HuBERT's setting)


def majority_codes(n_frames: int | Sequence[int]):
    """One code (0) for every frame.

    Args:
        n_frames: frames of one utterance, or a sequence of per-utterance frame counts.
    Returns:
        (n_frames,) int64 zeros, or a list of them.
    """
    if isinstance(n_frames, (int, np.integer)):
        return np.zeros(int(n_frames), dtype=np.int64)
    return [np.zeros(int(n), dtype=np.int64) for n in n_frames]


def random_codes(n_frames: int | Sequence[int], n_codes: int, seed: int = 0):
    """Codes drawn independently and uniformly from [0, n_codes), seeded.

    Args:
        n_frames: frames of one utterance, or a sequence of per-utterance frame counts.
        n_codes: K.
        seed: numpy Generator seed.
    Returns:
        (n_frames,) int64 codes, or a list of them.
    """
    rng = np.random.default_rng(seed)
    if isinstance(n_frames, (int, np.integer)):
        return rng.integers(n_codes, size=int(n_frames), dtype=np.int64)
    return [rng.integers(n_codes, size=int(n), dtype=np.int64) for n in n_frames]


def mfcc_deltas_frames(wav: np.ndarray, sample_rate: int, hop_samples: int, *,
                       n_mfcc: int = 13, n_mels: int = 40) -> np.ndarray:
    """MFCC + delta + delta-delta features mean-pooled to the code frames.

    MFCCs come from `speechvq.audio.mfcc` at a hop h = hop_samples / ceil(hop_samples / 10 ms)
    (integer division), so every code frame holds at least one MFCC frame; MFCC frame j (centred
    on sample (j + 0.5) h) is pooled into code frame floor((j + 0.5) h / hop_samples). Deltas
    (``librosa.feature.delta``, width 5, edges repeated) are taken at the MFCC rate, before
    pooling.

    Args:
        wav: (T,) float waveform.
        sample_rate: its rate.
        hop_samples: samples per code.
        n_mfcc, n_mels: MFCCs kept and mel bands (fmin 20 Hz, fmax Nyquist).
    Returns:
        (ceil(T / hop_samples), 3 * n_mfcc) float32 frames.
    """
    import librosa
    import torch

    from speechvq.audio import mfcc

    wav = np.asarray(wav, dtype=np.float32).reshape(-1)  # (T,)
    n_codes = math.ceil(wav.size / hop_samples)
    hop = hop_samples // math.ceil(hop_samples / (MFCC_HOP_S * sample_rate))
    win = min(int(round(MFCC_WIN_S * sample_rate)), max(wav.size, 1))
    n_fft = 1 << (win - 1).bit_length()
    m = mfcc(torch.from_numpy(wav), n_mfcc=n_mfcc, sample_rate=sample_rate, n_fft=n_fft,
             win_length=win, hop_length=hop, n_mels=n_mels, fmin=20.0,
             fmax=sample_rate / 2).numpy().astype(np.float64)  # (n_mfcc, F)
    feats = np.concatenate([m, librosa.feature.delta(m, width=DELTA_WIDTH, order=1, mode="nearest"),
                            librosa.feature.delta(m, width=DELTA_WIDTH, order=2, mode="nearest")
                            ]).T  # (F, 3 n_mfcc)
    centres = (np.arange(feats.shape[0]) + 0.5) * hop  # (F,) in samples
    target = np.minimum((centres // hop_samples).astype(np.int64), n_codes - 1)  # (F,)
    sums = np.zeros((n_codes, feats.shape[1]))
    np.add.at(sums, target, feats)
    counts = np.bincount(target, minlength=n_codes)  # (n_codes,)
    empty = counts == 0
    if empty.any():  # only when the signal is shorter than an MFCC hop: nearest MFCC frame
        code_centres = (np.flatnonzero(empty) + 0.5) * hop_samples
        nearest = np.abs(centres[None, :] - code_centres[:, None]).argmin(1)
        sums[empty], counts[empty] = feats[nearest], 1
    return (sums / counts[:, None]).astype(np.float32)  # (n_codes, 3 n_mfcc)


def fit_mfcc_kmeans(features_fit: Sequence[np.ndarray], n_codes: int, seed: int = 0, *,
                    max_fit_frames: int = 200_000):
    """k-means (K = n_codes, capped at the number of frames) on pooled MFCC+deltas frames.

    Args:
        features_fit: per-utterance (T, D) frames the centroids are learnt from; at most
            ``max_fit_frames`` of them are used (seeded sample).
        n_codes: K, the VQ-VAE's codebook size.
        seed: sampling and k-means seed.
    Returns:
        a fitted scikit-learn estimator; ``.predict((T, D))`` gives (T,) codes.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = np.concatenate([np.asarray(f, dtype=np.float32) for f in features_fit])  # (N, D)
    if x.shape[0] > max_fit_frames:
        x = x[np.random.default_rng(seed).choice(x.shape[0], max_fit_frames, replace=False)]
    k = min(n_codes, x.shape[0])
    if x.shape[0] > 20_000:  # fairseq learn_kmeans.py's mini-batch settings, one k-means++ init
        km = MiniBatchKMeans(n_clusters=k, init="k-means++", max_iter=100, batch_size=10_000,
                             n_init=1, max_no_improvement=20, random_state=seed)
    else:
        km = KMeans(n_clusters=k, n_init=3, random_state=seed)
    return km.fit(x)


def kmeans_codes(km, features: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Nearest-centroid codes of each utterance's (T, D) frames: a list of (T,) int64."""
    return [km.predict(np.asarray(f, dtype=np.float32)).astype(np.int64) for f in features]


def mfcc_kmeans_codes(features_fit: Sequence[np.ndarray], features_eval: Sequence[np.ndarray],
                      n_codes: int, seed: int = 0, *, max_fit_frames: int = 200_000
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`fit_mfcc_kmeans` on the fit frames, then the codes of the fit and eval sets.

    Returns:
        (codes_fit, codes_eval): lists of (T,) int64 nearest-centroid indices.
    """
    km = fit_mfcc_kmeans(features_fit, n_codes, seed, max_fit_frames=max_fit_frames)
    return kmeans_codes(km, features_fit), kmeans_codes(km, features_eval)
