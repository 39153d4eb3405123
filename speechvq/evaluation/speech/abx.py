"""ABX phone discrimination within and across speakers, as the ZeroSpeech ABX tool computes it.

The minimal-pair ABX task of Schatz et al. (2013, "Evaluating speech features with the Minimal-Pair
ABX task"), scored as the libri-light ABX (Kahn et al. 2020, facebookresearch/libri-light
``eval/ABX_src``) and its ZeroSpeech rework ABX2 (Hallap, Dupoux and Dunbar 2023, PyPI
``zerospeech-libriabx2``, command ``zrc-abx2``) score it in their "within context" mode:

- Items: every phone of the alignment with a phone on each side, none of the three being SIL,
  labelled with its context (previous phone, next phone) and its speaker. Its frames are those
  the tool slices for an onset t0 and offset t1 at r frames per second, ``[ceil(r t0 - 1/2),
  floor(r t1 - 1/2))`` (`frame_span`; items left without a frame are dropped). Two spans
  (`SPANS`): ``phone`` (the default), t0 and t1 of the centre phone, as ABX2's phone-level item
  files; ``triphone``, t0 of the previous phone and t1 of the next, as libri-light's and
  ZeroSpeech 2021's item files ("on-triphone").
- Triplets (A, B, X): A and B share context and speaker and differ in phone; X has A's phone and
  context and is another token of A's speaker (within speaker) or a token of another speaker
  (across). A triplet is an error when X is closer to B than to A; a tie counts one half.
- Distance: DTW over the two items' frames with the angular frame distance
  ``arccos(cos(x, y)) / pi``, averaged along the path (`speechvq.evaluation.speech.dtw`); null
  frames are at distance 1 from the others and 0 from each other, as the tool puts them.
- Averaging, the tool's order: the error of each cell (context, speaker, A phone, B phone, and
  for across the X speaker) over its triplets; the mean over the cells of each (speaker, A phone,
  B phone); the mean over speakers; the mean over (A phone, B phone) pairs.

Enumeration: every triplet of a condition is scored when there are at most ``max_triplets``; the
tool instead draws at most 10 tokens per group and 5 X speakers per A group (its defaults), so on
larger data its figure is one random draw around this one. Above ``max_triplets``, a seeded
sample: cells are drawn with probability equal to their weight in the average and one triplet
uniformly within each, so the plain mean estimates the average; the sample grows until its 95 %
normal interval is narrower than 0.2 points (`CI_WIDTH`), or every triplet is scored when that
would take no more triplets.

Interval: every figure carries a 95 % bootstrap interval over the items
(`speechvq.evaluation.bootstrap`): a resample draws the items with replacement, each scored
triplet counts (draws of A) x (draws of B) x (draws of X) times, and the figure is recomputed
from the per-triplet results with the same averaging (cells left empty drop out of it); no DTW
is run again. For a sampled figure the resampled mean of the sampled triplets is used.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from speechvq.data.speech.alignments import SIL
from speechvq.errors import DataError
from speechvq.evaluation import bootstrap
from speechvq.evaluation.speech.dtw import angular_distance, dtw_normalized

SPANS = {"phone": "centre-phone items in their context (ABX2 / zrc_abx2 within context)",
         "triphone": "three-phone items (libri-light / ZeroSpeech 2021, on-triphone)"}
CI_WIDTH = 0.002  # a sampled figure's 95 % interval is narrower than this (0.2 points)
MIN_SAMPLE = 1000  # max_triplets is raised to this: no smaller sample is drawn
Z95 = 1.959964  # two-sided 95 % normal quantile


class Item(NamedTuple):
    """One ABX token: frames [start, end) of utterance ``utt``, from ``onset`` to ``offset`` s."""

    utt: str
    onset: float
    offset: float
    start: int
    end: int
    phone: str
    context: tuple[str, str]
    speaker: str


class Score(NamedTuple):
    """One condition's figure: ``error`` in [0, 1] (None without triplets), the triplets scored,
    the triplets there are, and its 95 % bootstrap interval over items (None without triplets)."""

    error: float | None
    n_triplets: int
    n_population: int
    ci95: tuple[float, float] | None


class ABXResult(NamedTuple):
    """Within- and across-speaker scores on ``n_items`` items."""

    within: Score
    across: Score
    n_items: int


def seconds(t: float) -> float:
    """A time as the ``.item`` file writes it (6 decimals) and the tool reads it back."""
    return float(f"{t:.6f}")


def frame_span(onset: float, offset: float, frame_rate_hz: float, n_frames: int) -> tuple[int, int]:
    """Frames [start, end) of an item, sliced as the ZeroSpeech tool slices them (its frame i is
    centred on (i + 1/2) / r; the end is exclusive, so the last frame whose centre falls in the
    item is left out, as the tool leaves it out)."""
    start = max(0, math.ceil(frame_rate_hz * onset - 0.5))
    end = min(n_frames, math.floor(frame_rate_hz * offset - 0.5))
    return start, end


def abx_items(segments: Mapping[str, Sequence], speakers: Mapping[str, str],
              n_frames: Mapping[str, int], frame_rate_hz: float, *, span: str = "phone",
              sil: str = SIL) -> list[Item]:
    """ABX items of every utterance in ``n_frames`` that has an alignment.

    Args:
        segments: utt -> [(start_s, dur_s, phone)] in time order (phones.ctm).
        speakers: utt -> speaker.
        n_frames: utt -> frames of its features (items are cut to them).
        frame_rate_hz: feature frames per second.
        span: ``phone`` or ``triphone`` (`SPANS`).
        sil: the silence label, never a centre or a context.
    Returns:
        Items in utterance order, then time order.
    """
    if span not in SPANS:
        raise DataError(f"ABX items span {span!r} is unknown; use one of {', '.join(SPANS)}")
    items = []
    for utt, total in n_frames.items():
        segs = segments.get(utt) or []
        if segs and utt not in speakers:
            raise DataError(f"ABX: utterance {utt!r} has no speaker; add it to utt2spk")
        for k in range(1, len(segs) - 1):
            (s0, d0, left), (s1, d1, centre), (s2, d2, right) = segs[k - 1:k + 2]
            if sil in (left, centre, right):
                continue
            t0, t1 = (s1, s1 + d1) if span == "phone" else (s0, s2 + d2)
            onset, offset = seconds(t0), seconds(t1)
            start, end = frame_span(onset, offset, frame_rate_hz, total)
            if start < end:
                items.append(Item(utt, onset, offset, start, end, centre, (left, right),
                                  speakers[utt]))
    return items


class _Cells(NamedTuple):
    """The cells of one condition: A, B and X item ids of cell c are ``a[a_off[c]:a_off[c+1]]``
    (and so on); ``weight`` is each cell's share of the average, ``size`` its triplet count."""

    a: np.ndarray
    b: np.ndarray
    x: np.ndarray
    a_off: np.ndarray
    b_off: np.ndarray
    x_off: np.ndarray
    weight: np.ndarray
    size: np.ndarray
    within: bool


def _cells(items: list[Item], across: bool) -> _Cells:
    groups = defaultdict(list)  # (context, speaker, phone) -> item ids
    for n, it in enumerate(items):
        groups[(it.context, it.speaker, it.phone)].append(n)
    by_cs = defaultdict(dict)  # (context, speaker) -> phone -> ids
    by_cp = defaultdict(dict)  # (context, phone) -> speaker -> ids
    for (ctx, spk, ph), ids in groups.items():
        by_cs[(ctx, spk)][ph] = ids
        by_cp[(ctx, ph)][spk] = ids
    cells, keys = [], []  # (A ids, B ids, X ids); (speaker, A phone, B phone)
    for (ctx, spk), phones in sorted(by_cs.items()):
        if len(phones) < 2:
            continue
        for a, ids_a in sorted(phones.items()):
            if across:
                xs = [ids for s, ids in sorted(by_cp[(ctx, a)].items()) if s != spk]
            else:
                xs = [ids_a] if len(ids_a) > 1 else []
            for ids_x in xs:
                for b, ids_b in sorted(phones.items()):
                    if b != a:
                        cells.append((ids_a, ids_b, ids_x))
                        keys.append((spk, a, b))
    per_key = Counter(keys)  # cells averaged first
    per_pair = Counter((a, b) for _, a, b in per_key)  # speakers averaged next
    weight = np.array([1.0 / (len(per_pair) * per_pair[(a, b)] * per_key[(s, a, b)])
                       for s, a, b in keys])
    na, nb, nx = (np.array([len(c[k]) for c in cells], dtype=np.int64) for k in range(3))
    size = na * nb * (nx if across else na - 1)

    def flat(k, n):
        return (np.array([i for c in cells for i in c[k]], dtype=np.int64),
                np.r_[0, np.cumsum(n)].astype(np.int64))

    (a, a_off), (b, b_off), (x, x_off) = flat(0, na), flat(1, nb), flat(2, nx)
    return _Cells(a, b, x, a_off, b_off, x_off, weight, size, not across)


def _all_triplets(cells: _Cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every triplet, (n, 3) item ids (A, B, X), its weight in the average (n,) and its cell
    (n,)."""
    rows, weights, cell = [], [], []
    for c in range(len(cells.size)):
        a = cells.a[cells.a_off[c]:cells.a_off[c + 1]]
        b = cells.b[cells.b_off[c]:cells.b_off[c + 1]]
        x = cells.x[cells.x_off[c]:cells.x_off[c + 1]]
        g = np.stack(np.meshgrid(a, b, x, indexing="ij"), -1).reshape(-1, 3)  # (na nb nx, 3)
        if cells.within:
            g = g[g[:, 0] != g[:, 2]]
        rows.append(g)
        weights.append(np.full(len(g), cells.weight[c] / cells.size[c]))
        cell.append(np.full(len(g), c))
    return np.concatenate(rows), np.concatenate(weights), np.concatenate(cell)


def _item_interval(n_items: int, trip: np.ndarray, err: np.ndarray, seed: int,
                   cells: _Cells | None = None, cell: np.ndarray | None = None
                   ) -> list[float] | None:
    """The bootstrap interval over items of an ABX figure from its per-triplet errors (see the
    module docstring): with `cells` and each triplet's `cell`, the tool's weighted average of
    cell means; without, the plain mean (a sampled figure)."""
    from scipy.sparse import csr_matrix

    counts = bootstrap.resample_counts(n_items, seed).astype(np.float64)  # (R, items)
    onehot = None if cell is None else csr_matrix(
        (np.ones(len(cell)), (np.arange(len(cell)), cell)), shape=(len(cell), len(cells.size)))

    def stat(block: np.ndarray) -> np.ndarray:
        v = block[:, trip[:, 0]] * block[:, trip[:, 1]] * block[:, trip[:, 2]]  # (c, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            if onehot is None:
                return (v @ err) / v.sum(1)
            num = np.asarray((onehot.T @ (v * err).T).T)  # (c, cells)
            den = np.asarray((onehot.T @ v.T).T)
            w = np.where(den > 0, cells.weight, 0.0)  # empty cells drop out of the average
            return (w * np.where(den > 0, num / np.where(den > 0, den, 1), 0)).sum(1) / w.sum(1)

    return bootstrap.statistic_ci(stat, counts)


def _sampled_triplets(cells: _Cells, n: int, rng: np.random.Generator) -> np.ndarray:
    """n triplets (n, 3): a cell drawn by its weight, then one triplet uniformly within it."""
    c = rng.choice(len(cells.size), size=n, p=cells.weight / cells.weight.sum())
    na, nb, nx = (np.diff(off)[c] for off in (cells.a_off, cells.b_off, cells.x_off))
    ia = rng.integers(na)
    if cells.within:  # X is another token of A's group
        k = rng.integers(na - 1)
        ix = k + (k >= ia)
    else:
        ix = rng.integers(nx)
    return np.stack([cells.a[cells.a_off[c] + ia], cells.b[cells.b_off[c] + rng.integers(nb)],
                     cells.x[cells.x_off[c] + ix]], 1)


def _errors(features, items: list[Item], trip: np.ndarray) -> np.ndarray:
    """Per-triplet error (n,): 1 when X is closer to B than to A, 1/2 on a tie, else 0."""
    n_items = len(items)
    pairs = np.concatenate([trip[:, [0, 2]], trip[:, [1, 2]]])  # (2n, 2): (A, X), (B, X)
    pairs.sort(axis=1)  # the distance is symmetric: one DTW per unordered pair
    keys, inverse = np.unique(pairs[:, 0] * n_items + pairs[:, 1], return_inverse=True)
    d = item_distances(features, items, np.stack([keys // n_items, keys % n_items], 1))[inverse]
    d_ax, d_bx = d[:len(trip)], d[len(trip):]  # (n,) each
    return (d_ax > d_bx) + 0.5 * (d_ax == d_bx)


def _score(features, items: list[Item], cells: _Cells, max_triplets: int, ci_width: float,
           rng: np.random.Generator, seed: int) -> Score:
    population = int(cells.size.sum())
    if population == 0:
        return Score(None, 0, 0, None)
    n = max(max_triplets, MIN_SAMPLE)
    if population > n:
        trip = _sampled_triplets(cells, n, rng)
        err = _errors(features, items, trip)
        while True:
            # variance: the sample's, at least a Bernoulli one's (half a pseudo-count each way),
            # so a sample without errors does not claim a zero-width interval
            p = (err.sum() + 0.5) / (len(err) + 1)
            half = Z95 * math.sqrt(max(float(np.var(err, ddof=1)), p * (1 - p)) / len(err))
            if 2 * half < ci_width:
                return Score(float(err.mean()), len(err), population,
                             _item_interval(len(items), trip, err, seed))
            need = math.ceil(len(err) * (2 * half / ci_width) ** 2 * 1.05)
            if need >= population:
                break
            more = _sampled_triplets(cells, need - len(err), rng)
            trip = np.concatenate([trip, more])
            err = np.concatenate([err, _errors(features, items, more)])
    trip, w, cell = _all_triplets(cells)
    err = _errors(features, items, trip)
    return Score(float(np.sum(w * err) / np.sum(w)), len(trip), population,
                 _item_interval(len(items), trip, err, seed, cells, cell))


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
        d = angular_distance(a, b, dtype=np.float32)  # (b, N, M)
        out[sel] = dtw_normalized(d, lens[p], lens[q])
    return out


def _padded(features: Mapping[str, np.ndarray], items: list[Item], length: int) -> np.ndarray:
    """Items' frames, zero-padded to `length`: (b, L, D) float32."""
    dim = np.shape(features[items[0].utt])[1]
    out = np.zeros((len(items), length, dim), dtype=np.float32)  # (b, L, D)
    for k, it in enumerate(items):
        out[k, :it.end - it.start] = np.asarray(features[it.utt])[it.start:it.end]
    return out


def abx(features: Mapping[str, np.ndarray], items: list[Item], *, max_triplets: int = 5000,
        ci_width: float = CI_WIDTH, seed: int = 0) -> ABXResult:
    """ABX phone-discrimination error within and across speakers, within context.

    Args:
        features: utt -> (T, D) frame features (encoder outputs, code embeddings, MFCCs ...) on
            the frames the items index (`abx_items` with these features' frame counts).
        items: the tokens (`abx_items`).
        max_triplets: every triplet of a condition is scored up to this many; above, a seeded
            sample of at least this many (and `MIN_SAMPLE`), grown until its 95 % interval is
            narrower than ``ci_width``.
        seed: sampling seed.
    Returns:
        `ABXResult` (an error is None when the condition has no triplet, e.g. one speaker).
    """
    for it in items:
        if it.utt not in features:
            raise DataError(f"ABX: no features for utterance {it.utt!r}")
        if it.end > len(features[it.utt]):
            raise DataError(f"ABX: utterance {it.utt!r} has {len(features[it.utt])} feature "
                            f"frames but an item ends at frame {it.end}; cut the items with "
                            "the features' frame counts")
    rng = np.random.default_rng(seed)
    within, across = (_score(features, items, _cells(items, a), max_triplets, ci_width, rng,
                             seed) for a in (False, True))
    return ABXResult(within, across, len(items))
