"""How phone-like discrete speech units are: mapping accuracy, purity, PNMI, perplexity, bitrate.

Pure functions on integer arrays: ``codes`` (one unit per frame, values in [0, n_codes)) and
``labels`` (the phone index of the same frames, values in [0, n_phones)). Frame timing follows
DESIGN.md: code i covers samples [i*hop, (i+1)*hop) and is labelled with the phone whose interval
holds its centre (i + 0.5) * hop (`frame_phone_indices`, via `speechvq.data.speech.kaldi.frame_labels`).

Sources:
- Code-to-phone mapping accuracy: van den Oord, Vinyals & Kavukcuoglu (2017), "Neural Discrete
  Representation Learning", sec. 4.3 (each code mapped to its most frequent phone).
- Phone purity, cluster purity, PNMI: Hsu et al. (2021), "HuBERT", sec. IV-E, exactly as fairseq's
  ``examples/hubert/measure_teacher_quality.py`` computes them.
- Bitrate: Dunbar et al. (2019), "The Zero Resource Speech Challenge 2019: TTS without T".

Also exported here: the units-file helpers (`speechvq.data.codes`) and the baselines
(`speechvq.evaluation.speech.baselines`); ABX lives in `speechvq.evaluation.speech.abx`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from speechvq.errors import DataError
from speechvq.evaluation import bootstrap
from speechvq.evaluation.speech.baselines import (majority_codes, mfcc_deltas_frames,  # noqa: F401
                                           mfcc_kmeans_codes, random_codes)
from speechvq.data.codes import (check_frame_level, dedup,  # noqa: F401
                                            looks_deduplicated, read_units, write_units)


def _check(codes, labels, n_codes: int, n_phones: int) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)  # (N,)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)  # (N,)
    if codes.shape != labels.shape:
        raise DataError(f"{codes.size} codes but {labels.size} frame labels; label exactly the "
                        "frames of the codes")
    if codes.size == 0:
        raise DataError("no frames to score")
    if codes.min() < 0 or codes.max() >= n_codes:
        raise DataError(f"codes must lie in [0, {n_codes}), got [{codes.min()}, {codes.max()}]: "
                        "the codebook size is wrong for these units")
    if labels.min() < 0 or labels.max() >= n_phones:
        raise DataError(f"phone indices must lie in [0, {n_phones}), got "
                        f"[{labels.min()}, {labels.max()}]")
    return codes, labels


def cooccurrence(codes, labels, n_codes: int, n_phones: int) -> np.ndarray:
    """Counts of (code, phone) pairs over frames.

    Args:
        codes, labels: (N,) ints. n_codes, n_phones: K and the phone-set size.
    Returns:
        (n_codes, n_phones) int64 counts.
    """
    codes, labels = _check(codes, labels, n_codes, n_phones)
    flat = np.bincount(codes * n_phones + labels, minlength=n_codes * n_phones)
    return flat.reshape(n_codes, n_phones)


def fit_code_to_phone(codes, labels, n_codes: int, n_phones: int) -> np.ndarray:
    """Map every code to the phone it most often co-occurs with (van den Oord et al. 2017).

    Ties go to the lowest phone index; codes never seen map to the overall majority phone.

    Args:
        codes, labels: (N,) ints of the fitting frames.
    Returns:
        (n_codes,) int64 phone index per code.
    """
    counts = cooccurrence(codes, labels, n_codes, n_phones)  # (K, P)
    mapping = counts.argmax(1)  # (K,)
    mapping[counts.sum(1) == 0] = counts.sum(0).argmax()
    return mapping.astype(np.int64)


def mapping_accuracy(mapping: np.ndarray, codes, labels, *, exclude: int | None = None) -> float:
    """Share of frames whose code maps to the frame's phone: mean(mapping[code] == label).

    Args:
        mapping: (n_codes,) phone per code (`fit_code_to_phone`, possibly fitted elsewhere).
        codes, labels: (N,) ints of the scored frames.
        exclude: a phone index whose frames are left out (SIL for the "no silence" variant).
    Returns:
        Accuracy in [0, 1].
    """
    mapping = np.asarray(mapping, dtype=np.int64)
    codes, labels = _check(codes, labels, mapping.size, max(int(np.max(labels)) + 1, 1))
    keep = labels != exclude if exclude is not None else np.ones(labels.size, dtype=bool)
    if not keep.any():
        raise DataError("every frame is the excluded phone; nothing left to score")
    return float(np.mean(mapping[codes[keep]] == labels[keep]))


def purity_pnmi(codes, labels, n_codes: int, n_phones: int) -> dict:
    """Phone purity, cluster purity and phone-normalised mutual information (Hsu et al. 2021).

    With the joint distribution p(y, z) of phone y and code z estimated from frame counts (fairseq
    ``measure_teacher_quality.py``):
    phone purity = sum_z max_y p(y, z) = E_z[max_y p(y | z)];
    cluster purity = sum_y max_z p(y, z) = E_y[max_z p(z | y)];
    PNMI = I(y; z) / H(y), natural logs (the ratio does not depend on the base).
    Exact sums over non-zero cells; fairseq adds 1e-8 inside its logs (differences ~1e-8).

    Returns:
        dict(phone_purity, cluster_purity, pnmi, mutual_info_nats, phone_entropy_nats).
    """
    p = cooccurrence(codes, labels, n_codes, n_phones).T.astype(np.float64)  # (P, K) p(y, z)
    p /= p.sum()
    p_y = p.sum(1, keepdims=True)  # (P, 1)
    p_z = p.sum(0, keepdims=True)  # (1, K)
    nz = p > 0
    mi = float(np.sum(p[nz] * np.log(p[nz] / (p_y @ p_z)[nz])))
    h_y = float(-np.sum(p_y[p_y > 0] * np.log(p_y[p_y > 0])))
    return {"phone_purity": float(p.max(0).sum()), "cluster_purity": float(p.max(1).sum()),
            "pnmi": mi / h_y if h_y > 0 else 0.0, "mutual_info_nats": mi,
            "phone_entropy_nats": h_y}


def _entropy(codes: np.ndarray, base: float) -> float:
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)) / math.log(base)) + 0.0  # + 0.0: one code gives 0, not -0


def perplexity(codes, n_codes: int | None = None) -> float:
    """exp(entropy) of the code distribution over all frames (1 = one code, K = uniform use).

    Args:
        codes: (N,) ints. n_codes: K, only checked (codes must lie in [0, K)).
    """
    codes = np.asarray(codes).reshape(-1)
    if n_codes is not None and codes.size and (codes.min() < 0 or codes.max() >= n_codes):
        raise DataError(f"codes must lie in [0, {n_codes})")
    return math.exp(_entropy(codes, math.e))


def codes_used(codes) -> int:
    """Number of distinct codes that occur."""
    return int(np.unique(np.asarray(codes)).size)


def bitrate_bps(units_per_utt: Sequence[np.ndarray], durations_s: Sequence[float]) -> float:
    """Bitrate as the ZeroSpeech 2019 challenge defines it (Dunbar et al. 2019).

    ``bitrate = (N / D) * H``: N symbols in total over the whole set, D its total duration in
    seconds, H = -sum_s p(s) log2 p(s) the entropy (bits) of the symbol distribution over the
    whole set. The units are taken as given (frame-level codes, or deduplicated ones).

    Args:
        units_per_utt: per-utterance (T,) units. durations_s: per-utterance durations (seconds).
    Returns:
        Bits per second.
    """
    seqs = [np.asarray(u).reshape(-1) for u in units_per_utt]
    total_s = float(np.sum(np.asarray(durations_s, dtype=np.float64)))
    if len(seqs) != len(durations_s) or total_s <= 0:
        raise DataError(f"bitrate needs one positive duration per utterance ({len(seqs)} "
                        f"utterances, {len(durations_s)} durations, {total_s:.3f} s)")
    allu = np.concatenate(seqs) if seqs else np.zeros(0)
    return allu.size / total_s * _entropy(allu, 2.0) if allu.size else 0.0


def frame_phone_indices(segments, n_frames: int, frame_rate_hz: float, phones: Sequence[str],
                        sil: str = "SIL", utt: str = "?") -> np.ndarray:
    """Phone index of each code frame (DESIGN.md's timing, `speechvq.data.speech.kaldi.frame_labels`).

    Args:
        segments: [(start_s, dur_s, phone), ...] of one utterance (a CTM entry).
        n_frames: codes of the utterance. frame_rate_hz: codes per second.
        phones: the phone inventory (index order); frames outside every segment get ``sil``.
    Returns:
        (n_frames,) int64 indices into ``phones``.
    """
    from speechvq.data.speech.kaldi import frame_labels

    index = {p: i for i, p in enumerate(phones)}
    names = frame_labels(segments, n_frames, 1.0 / frame_rate_hz, default=sil)
    missing = sorted(set(names) - set(index))
    if missing:
        raise DataError(f"utterance {utt!r}: phones {missing} are not in phones.txt; add them")
    return np.array([index[n] for n in names], dtype=np.int64)


def _flat(x) -> list[np.ndarray]:
    seqs = list(x.values()) if isinstance(x, Mapping) else list(x)
    return [np.asarray(s, dtype=np.int64).reshape(-1) for s in seqs]


def _align(codes, labels):
    """Labels in the codes' utterance order when both are mappings utt -> array."""
    if not (isinstance(codes, Mapping) and isinstance(labels, Mapping)):
        return labels
    if set(codes) != set(labels):
        diff = sorted(set(codes) ^ set(labels))[:5]
        raise DataError(f"codes and alignments cover different utterances (e.g. {diff}); "
                        "score the utterances that have both")
    return {u: labels[u] for u in codes}


def score_units(codes_eval, labels_eval, *, codes_fit=None, labels_fit=None, n_codes: int,
                phones: Sequence[str], frame_rate_hz: float, durations_s=None,
                sil: str = "SIL", check_dedup: bool = True, seed: int = 0) -> dict:
    """Every unit metric of one system on one set.

    Args:
        codes_eval, labels_eval: per-utterance (T,) codes and phone indices (sequences in the same
            order, or mappings utt -> array with the same keys).
        codes_fit, labels_fit: the frames the code-to-phone mapping is fitted on (default: the
            scored frames); the caller records which (``fit_on``).
        n_codes: K. phones: the phone inventory (index order). frame_rate_hz: codes per second.
        durations_s: per-utterance durations for the bitrate (default: frames / frame rate).
        sil: the silence phone, left out by ``mapping_accuracy_nosil`` and ``chance_nosil``.
        check_dedup: refuse deduplicated units (`check_frame_level`).
        seed: the bootstrap's resamples of the utterances.
    Returns:
        dict(mapping_accuracy, mapping_accuracy_nosil, phone_purity, cluster_purity, pnmi,
        perplexity, codes_used, bitrate_bps, bitrate_bps_dedup (on run-length-collapsed units),
        n_phones, chance (majority-phone share of the scored frames), chance_nosil, n_frames,
        n_utterances, frame_rate_hz, codebook_size, ci95: metric -> [low, high] from
        `unit_intervals`).
    """
    labels_eval = _align(codes_eval, labels_eval)
    ce, le = _flat(codes_eval), _flat(labels_eval)
    names = list(codes_eval) if isinstance(codes_eval, Mapping) else range(len(ce))
    for name, c, lab in zip(names, ce, le):
        if c.size != lab.size:
            raise DataError(f"utterance {name!r}: {c.size} codes but {lab.size} frame labels")
    if durations_s is None:
        durations_s = [c.size / frame_rate_hz for c in ce]
    if check_dedup:
        check_frame_level(ce, durations_s=durations_s, frame_rate_hz=frame_rate_hz)
    codes, labels = np.concatenate(ce), np.concatenate(le)  # (N,) each
    n_phones = len(phones)
    if codes_fit is None:
        mapping = fit_code_to_phone(codes, labels, n_codes, n_phones)
    else:
        mapping = fit_code_to_phone(np.concatenate(_flat(codes_fit)),
                                    np.concatenate(_flat(_align(codes_fit, labels_fit))),
                                    n_codes, n_phones)
    sil_idx = list(phones).index(sil) if sil in phones else None
    counts = np.bincount(labels, minlength=n_phones)
    nosil = np.delete(counts, sil_idx) if sil_idx is not None else counts
    out = {"mapping_accuracy": mapping_accuracy(mapping, codes, labels),
           "mapping_accuracy_nosil": mapping_accuracy(mapping, codes, labels, exclude=sil_idx)
           if nosil.sum() else None}
    out.update({k: v for k, v in purity_pnmi(codes, labels, n_codes, n_phones).items()
                if k in ("phone_purity", "cluster_purity", "pnmi")})
    out.update(perplexity=perplexity(codes, n_codes), codes_used=codes_used(codes),
               bitrate_bps=bitrate_bps(ce, durations_s),
               bitrate_bps_dedup=bitrate_bps([dedup(c) for c in ce], durations_s),
               n_phones=n_phones, chance=float(counts.max() / counts.sum()),
               chance_nosil=float(nosil.max() / nosil.sum()) if nosil.sum() else None,
               n_frames=int(codes.size), n_utterances=len(ce),
               frame_rate_hz=float(frame_rate_hz), codebook_size=int(n_codes))
    out["ci95"] = unit_intervals(ce, le, n_codes=n_codes, n_phones=n_phones, sil=sil_idx,
                                 durations_s=durations_s, seed=seed,
                                 mapping=None if codes_fit is None else mapping)
    return out


def _utt_histograms(seqs: Sequence[np.ndarray], size: int, cell=None):
    """A sparse (utterances, size) matrix of per-utterance counts of ``cell(seq)`` values."""
    from scipy.sparse import csr_matrix

    rows, cols, vals = [], [], []
    for i, s in enumerate(seqs):
        v, c = np.unique(s if cell is None else cell(i), return_counts=True)
        rows.append(np.full(v.size, i)), cols.append(v), vals.append(c)
    return csr_matrix((np.concatenate(vals).astype(np.float64),
                       (np.concatenate(rows), np.concatenate(cols))), shape=(len(seqs), size))


def _entropy_rows(counts: np.ndarray, base: float) -> np.ndarray:
    """Entropy of each row's distribution (rows of counts), in log `base`."""
    p = counts / counts.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.nansum(np.where(p > 0, p * np.log(p), 0.0), -1) / math.log(base)


def unit_intervals(codes: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, n_codes: int,
                   n_phones: int, sil: int | None, durations_s: Sequence[float], seed: int,
                   mapping: np.ndarray | None = None) -> dict[str, list[float] | None]:
    """95 % bootstrap intervals of `score_units`' metrics over utterances
    (`speechvq.evaluation.bootstrap`): each resample draws the scored utterances with
    replacement and every metric is recomputed from the resampled code-by-phone counts.

    Args:
        codes, labels: per-utterance (T,) codes and phone indices. sil: SIL's index or None.
        mapping: the code-to-phone mapping fitted elsewhere (held fixed); None when it is fitted
            on the scored data itself, where each resample refits it.
    Returns:
        metric -> [low, high] (None where the metric is undefined, e.g. no frame without SIL).
    """
    counts = bootstrap.resample_counts(len(codes), seed)
    joint = _utt_histograms(codes, n_codes * n_phones,
                            cell=lambda i: codes[i] * n_phones + labels[i]).tocsc()  # (U, K*P)
    # only the cells that occur can be drawn: work on those columns (sorted: grouped by code)
    cells = np.flatnonzero(np.diff(joint.indptr))
    joint = joint[:, cells]
    code, phone = cells // n_phones, cells % n_phones  # (C,) each
    by_code = np.r_[0, np.flatnonzero(np.diff(code)) + 1]  # group starts, codes ascending
    order = np.argsort(phone, kind="stable")
    by_phone = np.r_[0, np.flatnonzero(np.diff(phone[order])) + 1]
    if mapping is not None:
        hit_cell = mapping[code] == phone  # (C,)
    dedup_hist = _utt_histograms([dedup(c) for c in codes], n_codes)  # (U, K)
    dur = np.asarray(durations_s, dtype=np.float64)
    stats: dict[str, list[np.ndarray]] = {}
    for block in bootstrap.chunks(counts):
        j = np.asarray((joint.T @ block.T).T)  # (c, C) resampled counts of the cells
        n = j.sum(1)  # (c,)
        p_z = np.add.reduceat(j, by_code, 1)  # (c, codes that occur)
        p_y = np.add.reduceat(j[:, order], by_phone, 1)  # (c, phones that occur)
        best_z = np.maximum.reduceat(j, by_code, 1)  # most frequent phone's count per code
        with np.errstate(divide="ignore", invalid="ignore"):
            if mapping is None:  # refitted per resample: each code maps to its top phone
                hits = best_z.sum(1)
                if sil is not None:  # ties go to the lowest phone index, SIL's (0) included
                    sil_j = np.where(phone == sil, j, 0)
                    sil_z = np.add.reduceat(sil_j, by_code, 1)
                    hits_nosil = np.where(sil_z < best_z, best_z, 0).sum(1) \
                        if sil == 0 else None
            else:
                hits = (j * hit_cell).sum(1)
                hits_nosil = (j * (hit_cell & (phone != sil))).sum(1) if sil is not None \
                    else None
            row = {"mapping_accuracy": hits / n, "phone_purity": best_z.sum(1) / n,
                   "cluster_purity": np.maximum.reduceat(j[:, order], by_phone, 1).sum(1) / n}
            if sil is None:
                row["mapping_accuracy_nosil"] = row["mapping_accuracy"]
            else:
                if hits_nosil is None:  # SIL not first: count the mapped top phones not SIL
                    top = np.zeros_like(best_z)
                    for g, (a, b) in enumerate(zip(by_code, np.r_[by_code[1:], len(cells)])):
                        arg = a + j[:, a:b].argmax(1)
                        top[:, g] = np.where(phone[arg] != sil, best_z[:, g], 0)
                    hits_nosil = top.sum(1)
                n_sil = (j * (phone == sil)).sum(1)
                row["mapping_accuracy_nosil"] = hits_nosil / (n - n_sil)
            pz_cell = np.repeat(p_z, np.diff(np.r_[by_code, len(cells)]), 1)  # (c, C)
            py_cell = np.empty_like(j)
            py_cell[:, order] = np.repeat(p_y, np.diff(np.r_[by_phone, len(cells)]), 1)
            mi = np.where(j > 0, j * np.log(j * n[:, None] / (pz_cell * py_cell)), 0.0).sum(1)
            row["pnmi"] = (mi / n) / _entropy_rows(p_y, math.e)
            row["perplexity"] = np.exp(_entropy_rows(p_z, math.e))
            row["codes_used"] = (p_z > 0).sum(1).astype(np.float64)
            seconds = block @ dur
            row["bitrate_bps"] = n / seconds * _entropy_rows(p_z, 2.0)
            d = np.asarray((dedup_hist.T @ block.T).T)  # (c, K)
            row["bitrate_bps_dedup"] = d.sum(1) / seconds * _entropy_rows(d, 2.0)
        for k, v in row.items():
            stats.setdefault(k, []).append(v)
    return {k: bootstrap.interval(np.concatenate(v)) for k, v in stats.items()}


LABEL_FREE = ("codes_used", "perplexity", "bitrate_bps", "bitrate_bps_dedup")


def label_free_units(seqs: Sequence[np.ndarray], *, n_codes: int, frame_rate_hz: float,
                     seed: int = 0) -> dict:
    """What can be said of frame-level units without alignments: ``frame_rate_hz``,
    ``codebook_size``, ``n_utterances``, ``n_frames``, ``hours`` (frames / rate), `LABEL_FREE`
    (codes used, perplexity, ZeroSpeech 2019 bitrate of the units and of the deduplicated
    units) and their ``ci95`` (bootstrap over utterances, as `unit_intervals`)."""
    seqs = [np.asarray(u, dtype=np.int64).reshape(-1) for u in seqs]
    flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
    if flat.size == 0:
        raise DataError("no units to describe")
    if flat.min() < 0 or flat.max() >= n_codes:
        raise DataError(f"units must lie in [0, {n_codes}), got [{flat.min()}, {flat.max()}]")
    durations = [len(u) / frame_rate_hz for u in seqs]
    ci = unit_intervals(seqs, [np.zeros_like(u) for u in seqs], n_codes=n_codes, n_phones=1,
                        sil=None, durations_s=durations, seed=seed)
    return {"frame_rate_hz": float(frame_rate_hz), "codebook_size": int(n_codes),
            "n_utterances": len(seqs), "n_frames": int(flat.size),
            "hours": float(sum(durations) / 3600), "codes_used": codes_used(flat),
            "perplexity": perplexity(flat), "bitrate_bps": bitrate_bps(seqs, durations),
            "bitrate_bps_dedup": bitrate_bps([dedup(u) for u in seqs], durations),
            "ci95": {k: ci[k] for k in LABEL_FREE}}


def units_report(systems: Mapping[str, tuple], labels_eval, *, labels_fit=None,
                 phones: Sequence[str], frame_rate_hz: float, codebook_size: int,
                 fit_on: str, durations_s=None, sil: str = "SIL", seed: int = 0) -> dict:
    """`score_units` for several systems on the same frames: DESIGN.md's ``units.<split>`` block.

    Args:
        systems: name (``vqvae``, ``majority``, ``random``, ``mfcc_kmeans``) ->
            (codes_eval, codes_fit or None); codes_fit is required when ``labels_fit`` is given.
        labels_eval, labels_fit: per-utterance phone indices of the scored / fitting frames.
        phones, frame_rate_hz, durations_s, sil: as in `score_units`; codebook_size: K.
        fit_on: what the mapping was fitted on (a data dir name, or "eval").
        seed: the bootstrap's; every system is resampled with the same utterance draws.
    Returns:
        {system: metrics, "frame_rate_hz", "codebook_size", "fit_on", "n_phones"}; ABX results
        are merged in by the caller (e.g. ``vqvae.abx_within``).
    """
    report = {"frame_rate_hz": float(frame_rate_hz), "codebook_size": int(codebook_size),
              "fit_on": fit_on, "n_phones": len(phones)}
    for name, (codes_eval, codes_fit) in systems.items():
        if (labels_fit is None) != (codes_fit is None):
            raise DataError(f"system {name!r}: give both fitting codes and fitting labels, or "
                            "neither")
        report[name] = score_units(codes_eval, labels_eval, codes_fit=codes_fit,
                                   labels_fit=labels_fit, n_codes=codebook_size, phones=phones,
                                   frame_rate_hz=frame_rate_hz, durations_s=durations_s, sil=sil,
                                   check_dedup=False, seed=seed)  # model codes and baselines are frame-level;
    return report  # a units file is checked once when read (`unit_eval.labelled`)
