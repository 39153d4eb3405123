"""The figures of ``speechvq evaluate images`` (matplotlib, Agg backend), written atomically by
the report's figure writer (`speechvq.evaluation.figures`):

- `reconstruction_grid`: the first scored images (top row) above their reconstructions by each
  system, each row labelled with the system's PSNR.
- `code_usage_figure`: share of the scored latents per code, codes sorted from most to least
  used, for the VQ-VAE and the patch k-means baseline.

Each returns the path it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from speechvq.evaluation.figures import _plt, _save

LABELS = {"original": "original", "vqvae": "VQ-VAE", "patch_kmeans": "patch k-means"}


def reconstruction_grid(rows: Mapping[str, np.ndarray], path: Path,
                        psnr: Mapping[str, float]) -> Path:
    """Rows of images, originals first.

    Args:
        rows: row name (``original``, then systems) -> (n, H, W, C) uint8, the same n each.
        path: the PNG to write. psnr: system -> its PSNR in dB over the whole scored set.
    """
    plt = _plt()
    names = list(rows)
    n, h, w, c = rows[names[0]].shape
    pad = 2
    canvas = np.full((len(names) * (h + pad), n * (w + pad), 3), 255, np.uint8)
    for r, name in enumerate(names):
        for i, image in enumerate(rows[name]):
            y, x = r * (h + pad), i * (w + pad)
            canvas[y:y + h, x:x + w] = image if c == 3 else image.repeat(3, axis=2)
    width = max(6.0, 0.5 * n)
    fig, ax = plt.subplots(figsize=(width, width * canvas.shape[0] / canvas.shape[1] + 0.6))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(len(names))],
                  [LABELS.get(s, s) + (f"\n{psnr[s]:.2f} dB" if s in psnr else "")
                   for s in names], fontsize=8)
    ax.set_xticks([])
    ax.set_title(f"First {n} scored images (top) and their reconstructions; PSNR over the "
                 f"whole set", fontsize=9)
    _save(fig, path)
    return path


def code_usage_figure(usage: Mapping[str, np.ndarray], path: Path) -> Path:
    """Share of latents per code (log scale), codes sorted by use, one line per system.

    Args:
        usage: system -> (K,) code counts over the scored set. path: the PNG to write.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, counts in usage.items():
        counts = np.asarray(counts, np.float64)
        share = np.sort(counts)[::-1] / max(counts.sum(), 1) * 100  # (K,) percent
        used = int((counts > 0).sum())
        ax.plot(np.arange(1, share.size + 1), np.where(share > 0, share, np.nan),
                label=f"{LABELS.get(name, name)}: {used} of {share.size} codes used")
    ax.set_yscale("log")
    ax.set(title="Code usage on the scored images", xlabel="code rank (most used first)",
           ylabel="share of latents (%)")
    ax.legend(fontsize=8)
    _save(fig, path)
    return path
