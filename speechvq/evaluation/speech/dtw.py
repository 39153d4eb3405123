"""Batched dynamic time warping (DTW) with path-length normalisation, in numpy.

Shared by the ABX discrimination test (`speechvq.evaluation.speech.abx`) and the mel-cepstral distortion
(`speechvq.evaluation.speech.mcd`). The recursion and its normalisation are those of the ZeroSpeech /
Libri-light ABX scorer (facebookresearch/libri-light ``eval/ABX_src/dtw.pyx``; Schatz et al.
2013; Versteegh et al. 2015): steps (1, 0), (0, 1) and (1, 1) with unit weights, the cumulative
cost ``D[i, j] = C[i, j] + min(D[i-1, j-1], D[i, j-1], D[i-1, j])`` (ties prefer the diagonal,
then the left cell), and the returned distance is ``D[N-1, M-1]`` divided by the number of cells
on the optimal path, i.e. the average frame distance along the alignment.

Vectorisation: the recursion runs over anti-diagonals (every cell of diagonal ``i + j = d``
depends only on diagonals ``d-1`` and ``d-2``), vectorised over the cells of a diagonal and over a
batch of pairs padded to a common size. Padding never changes a result, because ``D[n-1, m-1]``
depends only on cells ``(<= n-1, <= m-1)``. N + M - 1 numpy steps per batch replace N * M python
steps per pair.
"""

from __future__ import annotations

import numpy as np


def dtw_normalized(cost: np.ndarray, n_lens=None, m_lens=None) -> np.ndarray:
    """Path-length-normalised DTW distance for a batch of padded cost matrices.

    Args:
        cost: (B, N, M) (or (N, M)) non-negative frame distances; pair b uses the top-left
            ``n_lens[b] x m_lens[b]`` block, the rest is padding and ignored.
        n_lens, m_lens: (B,) valid sizes (default: N and M for every pair); each >= 1.
    Returns:
        (B,) float64 (or a float for a 2-D ``cost``): the cumulative cost of the optimal path
        divided by the number of cells on it (the average cost along the alignment).
    """
    cost = np.asarray(cost, dtype=np.float64)
    single = cost.ndim == 2
    if single:
        cost = cost[None]  # (1, N, M)
    if cost.ndim != 3 or cost.shape[1] == 0 or cost.shape[2] == 0:
        raise ValueError(f"dtw_normalized needs a non-empty (B, N, M) cost, got {cost.shape}")
    B, N, M = cost.shape
    n_lens = np.full(B, N) if n_lens is None else np.asarray(n_lens, dtype=np.int64)
    m_lens = np.full(B, M) if m_lens is None else np.asarray(m_lens, dtype=np.int64)
    assert n_lens.shape == (B,) and m_lens.shape == (B,)
    assert n_lens.min() >= 1 and m_lens.min() >= 1 and n_lens.max() <= N and m_lens.max() <= M
    # Skewed layout: diagonal d holds cells (i, d - i) at index i + 1 (index 0 is a border), so
    # the three predecessors of every cell of a diagonal are plain slices of the two previous
    # diagonals: (i-1, j-1) = prev2[i-1], left (i, j-1) = prev1[i], up (i-1, j) = prev1[i-1].
    n_diag = N + M - 1
    i_idx = np.arange(N)[None, :]  # (1, N)
    j_idx = np.arange(n_diag)[:, None] - i_idx  # (n_diag, N)
    skew = cost[:, i_idx, np.clip(j_idx, 0, M - 1)]  # (B, n_diag, N)
    skew = np.where((j_idx >= 0) & (j_idx < M), skew, np.inf).transpose(1, 0, 2)  # (n_diag, B, N)
    prev2 = np.full((B, N + 1), np.inf)  # (B, N+1) diagonal d-2
    prev2[:, 0] = 0.0  # the virtual cell (-1, -1) that starts every path
    prev1 = np.full((B, N + 1), np.inf)  # (B, N+1) diagonal d-1
    len2 = np.zeros((B, N + 1), dtype=np.int64)  # cells on the best path, per diagonal
    len1 = np.zeros((B, N + 1), dtype=np.int64)
    last = n_lens + m_lens - 2  # (B,) the diagonal holding each pair's final cell
    out = np.empty(B)
    b_all = np.arange(B)
    for d in range(n_diag):
        diag, left, up = prev2[:, :-1], prev1[:, 1:], prev1[:, :-1]  # (B, N) each
        use_diag = (diag <= left) & (diag <= up)  # libri-light's tie-breaking order
        use_left = ~use_diag & (left <= up)
        cur = np.full((B, N + 1), np.inf)
        cur[:, 1:] = skew[d] + np.where(use_diag, diag, np.where(use_left, left, up))
        cur_len = np.zeros((B, N + 1), dtype=np.int64)
        cur_len[:, 1:] = 1 + np.where(use_diag, len2[:, :-1],
                                      np.where(use_left, len1[:, 1:], len1[:, :-1]))
        done = b_all[last == d]
        out[done] = cur[done, n_lens[done]] / cur_len[done, n_lens[done]]
        prev2, prev1, len2, len1 = prev1, cur, len1, cur_len
    return float(out[0]) if single else out


def dtw_reference(cost: np.ndarray) -> float:
    """The same DTW as `dtw_normalized`, written as libri-light's plain O(N M) loops (for tests).

    Args:
        cost: (N, M) frame distances.
    Returns:
        D[N-1, M-1] divided by the length of the back-tracked path.
    """
    cost = np.asarray(cost, dtype=np.float64)
    N, M = cost.shape
    D = np.empty((N, M))
    D[0, 0] = cost[0, 0]
    for i in range(1, N):
        D[i, 0] = cost[i, 0] + D[i - 1, 0]
    for j in range(1, M):
        D[0, j] = cost[0, j] + D[0, j - 1]
    for i in range(1, N):
        for j in range(1, M):
            D[i, j] = cost[i, j] + min(D[i - 1, j], D[i - 1, j - 1], D[i, j - 1])
    path_len, i, j = 1, N - 1, M - 1
    while i > 0 and j > 0:
        up, left, diag = D[i - 1, j], D[i, j - 1], D[i - 1, j - 1]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        path_len += 1
    path_len += i + j  # the rest runs along the first row or column
    return float(D[N - 1, M - 1] / path_len)


def angular_distance(a: np.ndarray, b: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Angular (arc-cosine) frame distance of the ZeroSpeech ABX, in [0, 1].

    ``d(x, y) = arccos(x . y / (|x| |y|)) / pi``; an all-zero frame is at distance 1 from every
    other frame and 0 from another all-zero frame, as the ZeroSpeech tool puts it
    (``normalize_with_singularity``).

    Args:
        a: (..., N, D) frames; b: (..., M, D) frames (same leading dims).
        dtype: precision of the normalisation and the dot products (ABX uses float32 for
            speed); the arc-cosine is taken in float64.
    Returns:
        (..., N, M) float64 distances.
    """
    a, null_a = _unit(a, dtype)  # (..., N, D), (..., N)
    b, null_b = _unit(b, dtype)  # (..., M, D), (..., M)
    cos = np.clip(np.matmul(a, np.swapaxes(b, -1, -2)), -1.0, 1.0)  # (..., N, M)
    null_a, null_b = null_a[..., :, None], null_b[..., None, :]  # (..., N, 1), (..., 1, M)
    cos = np.where(null_a | null_b, np.where(null_a & null_b, 1.0, -1.0), cos)
    return np.arccos(cos.astype(np.float64)) / np.pi


def _unit(x: np.ndarray, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Frames scaled to unit norm, and which frames are all zero."""
    x = np.asarray(x, dtype=dtype)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12), norm[..., 0] == 0
