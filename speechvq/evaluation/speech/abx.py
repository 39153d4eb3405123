"""ABX phone discrimination, within and across speakers, in the ZeroSpeech style.

The minimal-pair ABX task of Schatz et al. (2013, "Evaluating speech features with the Minimal-Pair
ABX task"), as run by the Zero Resource Speech Challenges (Versteegh et al. 2015; Dunbar et al.
2017, 2019): items are triphones cut from a phone alignment (a centre phone with its left and
right neighbours; the item spans the three phones, as the ZeroSpeech 2017 ``.item`` files do).
A triplet (A, B, X) takes A and B with the same context but different centre phones ("beg" /
"bag") and X another token of A's triphone. The triplet is an error when X is closer to B than to
A; a tie counts one half. Within speaker: A, B and X share a speaker. Across speakers: A and B
share a speaker and X comes from another.

Distance between two items: DTW over their frames with the angular frame distance
``arccos(cos(x, y)) / pi``, averaged along the path (`speechvq.evaluation.speech.dtw`), as the
ZeroSpeech / Libri-light scorer computes it.

Sampling: ZeroSpeech averages the error over every (context, A-phone, B-phone, speaker) cell, then
over cells. Here the triplets of one condition are grouped into the same cells (across: the X
speaker is pooled). When a condition has at most ``max_triplets`` distinct triplets, all are scored
and the score is the mean over cells of each cell's error rate; otherwise ``max_triplets`` cells
are drawn uniformly with replacement (seeded) and one triplet uniformly within each, so the plain
mean estimates the same cell average. The sample size is returned with the score.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from speechvq.errors import DataError
from speechvq.evaluation.speech.dtw import angular_distance, dtw_normalized


class Item(NamedTuple):
    """One triphone token: frames [start, end) of utterance ``utt`` in the feature arrays."""

    utt: str
    start: int
    end: int
    centre: str
    context: tuple[str, str]
    speaker: str


def triphone_items(labels: Mapping[str, Sequence], speakers: Mapping[str, str], *,
                   sil: str = "SIL") -> list[Item]:
    """Triphone items from frame labels: every run of equal labels with a run on each side.

    Args:
        labels: utt -> (T,) frame labels (phone names or indices); runs of equal labels are the
            phone segments.
        speakers: utt -> speaker.
        sil: label (compared as text, so an index works too) excluded as a centre and as a
            context (ZeroSpeech items hold no silence).
    Returns:
        Items in utterance order; an item spans its left, centre and right segments.
    """
    items = []
    for utt in labels:
        if utt not in speakers:
            raise DataError(f"ABX: utterance {utt!r} has no speaker; add it to utt2spk")
        lab = np.asarray(labels[utt])
        if lab.size < 3:
            continue
        starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])  # (S,) segment starts
        ends = np.r_[starts[1:], lab.size]  # (S,)
        names = [str(x) for x in lab[starts]]
        for k in range(1, len(starts) - 1):
            left, centre, right = names[k - 1], names[k], names[k + 1]
            if str(sil) in (left, centre, right):
                continue
            items.append(Item(utt, int(starts[k - 1]), int(ends[k + 1]), centre, (left, right),
                              speakers[utt]))
    return items


def _cells(items: list[Item], across: bool):
    """Cells (A ids, B ids, X ids, within?) of one condition and their distinct triplet counts."""
    groups = defaultdict(list)  # (context, speaker, centre) -> item ids
    for n, it in enumerate(items):
        groups[(it.context, it.speaker, it.centre)].append(n)
    by_ctx_spk = defaultdict(dict)  # (context, speaker) -> centre -> ids
    by_ctx_centre = defaultdict(dict)  # (context, centre) -> speaker -> ids
    for (ctx, spk, centre), ids in groups.items():
        by_ctx_spk[(ctx, spk)][centre] = ids
        by_ctx_centre[(ctx, centre)][spk] = ids
    cells, sizes = [], []
    for (ctx, spk), centres in sorted(by_ctx_spk.items()):
        for a, ids_a in sorted(centres.items()):
            if across:
                ids_x = [i for s, ids in sorted(by_ctx_centre[(ctx, a)].items()) if s != spk
                         for i in ids]
                n_x = len(ids_x)
            else:
                ids_x, n_x = ids_a, len(ids_a) - 1  # X is another token than A
            if n_x < 1:
                continue
            for b, ids_b in sorted(centres.items()):
                if b != a:
                    cells.append((ids_a, ids_b, ids_x, not across))
                    sizes.append(len(ids_a) * len(ids_b) * n_x)
    return cells, np.asarray(sizes, dtype=np.int64)


def _triplets(cells, sizes, max_triplets: int, rng: np.random.Generator):
    """(A, B, X) item ids (n, 3) and per-triplet weights (n,) for a cell-averaged error."""
    rows, weights = [], []
    if sizes.sum() <= max_triplets:  # every distinct triplet, each cell weighted equally
        for (ids_a, ids_b, ids_x, within), size in zip(cells, sizes):
            for a in ids_a:
                for b in ids_b:
                    for x in ids_x:
                        if not (within and x == a):
                            rows.append((a, b, x))
                            weights.append(1.0 / size)
    else:
        for c in rng.integers(len(cells), size=max_triplets):
            ids_a, ids_b, ids_x, within = cells[c]
            ia = rng.integers(len(ids_a))
            if within:  # ids_x is ids_a: draw X among the other tokens
                k = rng.integers(len(ids_a) - 1)
                x = ids_a[k + (k >= ia)]
            else:
                x = ids_x[rng.integers(len(ids_x))]
            rows.append((ids_a[ia], ids_b[rng.integers(len(ids_b))], x))
            weights.append(1.0)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3), np.asarray(weights)


def item_distances(features: Mapping[str, np.ndarray], items: list[Item], pairs: np.ndarray, *,
                   chunk: int = 1024) -> np.ndarray:
    """Angular-DTW distance for each pair of items.

    Args:
        features: utt -> (T, D) frame features.
        items: the items that ``pairs`` indexes.
        pairs: (P, 2) item ids.
        chunk: pairs per vectorised DTW batch (bounds memory to ~chunk * L * (L + D) floats).
    Returns:
        (P,) float64 distances.
    """
    lens = np.array([it.end - it.start for it in items])
    out = np.empty(len(pairs))
    order = np.argsort(np.maximum(lens[pairs[:, 0]], lens[pairs[:, 1]]), kind="stable")
    for s in range(0, len(order), chunk):  # pairs sorted by size, so padding stays small
        sel = order[s:s + chunk]
        p, q = pairs[sel, 0], pairs[sel, 1]
        a = _padded(features, [items[i] for i in p], lens[p].max())  # (b, N, D)
        b = _padded(features, [items[i] for i in q], lens[q].max())  # (b, M, D)
        d = angular_distance(a, b, dtype=np.float32)  # (b, N, M); padding frames: 0.5
        out[sel] = dtw_normalized(d, lens[p], lens[q])
    return out


def _padded(features: Mapping[str, np.ndarray], items: list[Item], length: int) -> np.ndarray:
    """Items' frames, zero-padded to `length`: (b, L, D) float32."""
    dim = np.shape(features[items[0].utt])[1]
    out = np.zeros((len(items), length, dim), dtype=np.float32)  # (b, L, D)
    for k, it in enumerate(items):
        out[k, :it.end - it.start] = np.asarray(features[it.utt])[it.start:it.end]
    return out


def abx(features: Mapping[str, np.ndarray], labels: Mapping[str, Sequence],
        speakers: Mapping[str, str], *, max_triplets: int = 5000, seed: int = 0,
        sil: str = "SIL") -> dict:
    """ABX phone-discrimination error rates within and across speakers (ZeroSpeech style).

    Args:
        features: utt -> (T, D) frame features (encoder outputs, code embeddings, MFCCs ...).
        labels: utt -> (T,) frame labels on the same frames (phone names or indices).
        speakers: utt -> speaker id.
        max_triplets: at most this many triplets scored per condition (seeded sample).
        seed: sampling seed.
        sil: the silence label (never a centre or a context).
    Returns:
        dict(within, across: error rates in [0, 1], or None when the data hold no triplet of that
        condition (e.g. one speaker); n_triplets_within, n_triplets_across: triplets scored;
        n_items: triphone items found; sampled_within, sampled_across: whether a sample was drawn).
    """
    for utt, lab in labels.items():
        if utt not in features:
            raise DataError(f"ABX: no features for utterance {utt!r}")
        t_feat, t_lab = np.shape(features[utt])[0], len(lab)
        if t_feat != t_lab:
            raise DataError(f"ABX: utterance {utt!r} has {t_feat} feature frames but {t_lab} "
                            "frame labels; label the frames with the features' frame rate")
    items = triphone_items(labels, speakers, sil=sil)
    rng = np.random.default_rng(seed)
    result = {"n_items": len(items)}
    for name, across in (("within", False), ("across", True)):
        cells, sizes = _cells(items, across)
        trip, w = _triplets(cells, sizes, max_triplets, rng)
        result[f"n_triplets_{name}"] = len(trip)
        result[f"sampled_{name}"] = bool(sizes.sum() > max_triplets)
        if len(trip) == 0:
            result[name] = None
            continue
        d = item_distances(features, items, np.concatenate([trip[:, [0, 2]], trip[:, [1, 2]]]))
        d_ax, d_bx = d[:len(trip)], d[len(trip):]  # (n,) each
        err = (d_ax > d_bx) + 0.5 * (d_ax == d_bx)  # (n,)
        result[name] = float(np.sum(w * err) / np.sum(w))
    return result
