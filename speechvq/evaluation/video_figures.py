"""The figures of ``speechvq evaluate video`` (Pillow for the GIFs, matplotlib Agg for the rest),
written atomically:

- `clip_figures`: per example clip an animated GIF (real | reconstruction | continuation side
  by side, the continuation framed in red from its first predicted frame on) and a PNG strip
  (one row per system, one column per frame, the first predicted frame marked); `clip_files`
  does one clip (`speechvq sample` draws its video samples with it).
- `psnr_per_frame_figure`: PSNR of each predicted frame for the continuation and both
  baselines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from speechvq.evaluation.figures import _plt, _save
from speechvq.fileio import atomic_path

__all__ = ["clip_files", "clip_figures", "psnr_per_frame_figure"]

LABELS = {"sample": "sample", "real": "real", "reconstruction": "reconstruction",
          "continuation": "continuation", "repeat_last": "repeat last frame",
          "blank": "blank frame"}
GIF_SCALE = 2  # pixels per frame pixel in the GIFs
GIF_MS = 150  # per frame


def _grey_rgb(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, C) uint8 -> (T, H, W, 3)."""
    return frames if frames.shape[-1] == 3 else np.repeat(frames, 3, axis=-1)


def _gif(rows: Mapping[str, np.ndarray], path: Path, prompt_frames: int | None) -> Path:
    """One clip's systems side by side, a 2-px gap; the continuation gets a red border from
    the first predicted frame on."""
    from PIL import Image

    pad = 2
    panels = []
    for name, frames in rows.items():
        f = _grey_rgb(frames).copy()  # (T, H, W, 3)
        if name == "continuation" and prompt_frames is not None:
            f[prompt_frames:, :1], f[prompt_frames:, -1:] = (255, 0, 0), (255, 0, 0)
            f[prompt_frames:, :, :1], f[prompt_frames:, :, -1:] = (255, 0, 0), (255, 0, 0)
        panels.append(f)
        panels.append(np.full((f.shape[0], f.shape[1], pad, 3), 255, np.uint8))
    movie = np.concatenate(panels[:-1], axis=2).repeat(GIF_SCALE, 1).repeat(GIF_SCALE, 2)
    images = [Image.fromarray(frame) for frame in movie]
    with atomic_path(path, suffix=".gif") as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=GIF_MS, loop=0)
    return path


def _strip(rows: Mapping[str, np.ndarray], path: Path, prompt_frames: int | None,
           title: str) -> Path:
    plt = _plt()
    names = list(rows)
    t, h, w, _ = rows[names[0]].shape
    pad = 2
    canvas = np.full((len(names) * (h + pad), t * (w + pad), 3), 255, np.uint8)
    for r, name in enumerate(names):
        for k, frame in enumerate(_grey_rgb(rows[name])):
            canvas[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = frame
    fig, ax = plt.subplots(figsize=(max(8.0, 0.55 * t), 0.7 * len(names) + 0.9))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(len(names))],
                  [LABELS.get(s, s) for s in names], fontsize=8)
    ax.set_xticks([k * (w + pad) + w / 2 for k in range(t)], [str(k + 1) for k in range(t)],
                  fontsize=6)
    ax.set_xlabel("frame")
    if prompt_frames is not None:
        ax.axvline(prompt_frames * (w + pad) - pad / 2, color="red", lw=1.2)
    ax.set_title(title, fontsize=9)
    return Path(path.parent / _save(fig, path))


def clip_files(rows: Mapping[str, np.ndarray], stem: Path, prompt_frames: int | None,
               title: str) -> tuple[Path, Path]:
    """One clip's systems as ``STEM.gif`` (side by side, animated) and ``STEM.png`` (a strip).

    Args:
        rows: system -> (T, H, W, C) uint8. stem: the files' path without suffix.
        prompt_frames: given frames (the line in the strip, the GIF's red frame), or None.
    """
    return (_gif(rows, stem.with_name(stem.name + ".gif"), prompt_frames),
            _strip(rows, stem.with_name(stem.name + ".png"), prompt_frames, title))


def clip_figures(rows: Mapping[str, np.ndarray], folder: Path, stem: str,
                 prompt_frames: int | None) -> dict[str, Path]:
    """A GIF and a PNG strip per example clip.

    Args:
        rows: system (``real``, ``reconstruction``, ``continuation``) -> (n, T, H, W, C) uint8,
            the same n clips each. folder: where the files go. stem: their names' start.
        prompt_frames: given frames of the continuation (None: no continuation).
    Returns:
        ``gif_<i>`` and ``strip_<i>`` -> the files written.
    """
    out: dict[str, Path] = {}
    n = len(next(iter(rows.values())))
    after = "" if prompt_frames is None else \
        f"; continuation from the first {prompt_frames} frames (red line)"
    for i in range(n):
        out[f"gif_{i}"], out[f"strip_{i}"] = clip_files(
            {s: v[i] for s, v in rows.items()}, folder / f"{stem}_clip{i}", prompt_frames,
            f"Test clip {i}: real, reconstruction{after}")
    return out


def psnr_per_frame_figure(per_frame: Mapping[str, Sequence[float]], path: Path,
                          prompt_frames: int) -> Path:
    """PSNR (dB) of each predicted frame, one line per system, frames 2-5 shaded.

    Args:
        per_frame: system -> PSNR of predicted frames 1, 2, ... path: the PNG to write.
        prompt_frames: given frames (for the axis label).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, values in per_frame.items():
        k = np.arange(1, len(values) + 1)
        ax.plot(k, values, marker="o", ms=3, label=LABELS.get(name, name)
                + (" (prior, greedy)" if name == "continuation" else ""))
    ax.axvspan(1.5, 5.5, color="grey", alpha=0.15, lw=0, label="frames 2-5 (the mean)")
    ax.set(title=f"Continuations from {prompt_frames} given frames: PSNR per predicted frame",
           xlabel=f"predicted frame (frame {prompt_frames} + k of the clip)",
           ylabel="PSNR (dB)")
    ax.legend(fontsize=8)
    _save(fig, path)
    return path
