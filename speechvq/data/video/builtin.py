"""The built-in video: moving glyphs, a Moving-MNIST-style set made offline from a seed.

Moving MNIST (Srivastava, Mansimov and Salakhutdinov 2015, "Unsupervised Learning of Video
Representations using LSTMs", arXiv:1502.04681) moves two MNIST digits across a 64x64 black
canvas. Here the digits are the built-in image glyphs (`speechvq.data.images.builtin.
digit_fonts`: the ten digits of every matplotlib font that draws them), so nothing is
downloaded:

- each clip has 20 grey 64x64 frames and two digits; each digit is one font's glyph scaled to a
  height of 18-26 px, softened by a Gaussian blur of radius 1 px (Moving MNIST's strokes are soft,
  not binary) and rescaled to a peak of 255; two digits that overlap combine by the maximum;
- each digit starts at a random place and moves at a constant velocity (speed 2-4 px per frame,
  random direction), bouncing off the borders (a position past an edge is reflected back and
  that velocity component flips); positions are rounded to whole pixels when drawn;
- deterministic: clip i of split k (train 0, test 1) draws everything from
  ``numpy.random.default_rng([seed, k, i, 64])``, so train and test never share a draw and a
  smaller size is the start of a larger one.
- Sizes: ``default`` 1,000 train + 128 test clips (what `egs/moving_glyphs` fits in its time
  budget on a CPU); ``tiny`` 32 + 8 (tests).
- Cached under ``$SPEECHVQ_CACHE/video/<version>-<size>-seed<seed>/`` (built in a temp dir and
  renamed when complete); `prepare_builtin_video` hard-links (or copies) the dumps into OUT.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from speechvq.data.cache import prepare_cached
from speechvq.data.video.dump import VideoDump, existing_video_dump, write_video_dump

__all__ = ["BUILTIN_VIDEO_VERSION", "VIDEO_SIZES", "render_clips", "prepare_builtin_video"]

BUILTIN_VIDEO_VERSION = "v1"  # bump whenever the generated clips change
VIDEO_SIZES = {"tiny": {"train": 32, "test": 8}, "default": {"train": 1000, "test": 128}}
SPLITS = ("train", "test")
FRAMES, SIZE, DIGITS = 20, 64, 2
HEIGHTS = (18, 26)  # glyph heights in pixels (both included)
SPEEDS = (2.0, 4.0)  # pixels per frame
BLUR_PX = 1.0
_STREAM = 64  # the last word of every clip's seed: this generator's stream, apart from images'


@functools.cache
def _glyphs() -> tuple[tuple, ...]:
    from speechvq.data.images.builtin import digit_fonts

    return tuple(glyphs for _, glyphs in digit_fonts())


def _sprite(rng: np.random.Generator) -> np.ndarray:
    """One blurred digit, (h, w) float32 in [0, 255] with a peak of 255."""
    from PIL import Image, ImageFilter

    fonts = _glyphs()
    glyph = fonts[rng.integers(len(fonts))][rng.integers(10)]
    height = int(rng.integers(HEIGHTS[0], HEIGHTS[1] + 1))
    width = max(4, round(glyph.size[0] * height / glyph.size[1]))
    pad = 2  # room for the blur to spread
    canvas = Image.new("L", (width + 2 * pad, height + 2 * pad), 0)
    canvas.paste(glyph.resize((width, height), Image.Resampling.BILINEAR), (pad, pad))
    a = np.asarray(canvas.filter(ImageFilter.GaussianBlur(BLUR_PX)), np.float32)
    return a * (255.0 / max(float(a.max()), 1.0))


def _path(rng: np.random.Generator, span: tuple[int, int]) -> np.ndarray:
    """Top-left corners over the frames of a sprite that can move in [0, span]; (T, 2) int."""
    limit = np.asarray(span, np.float64)  # (2,) y, x
    pos = rng.uniform(0, 1, 2) * limit
    angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(*SPEEDS)
    vel = speed * np.array([np.sin(angle), np.cos(angle)])
    out = np.empty((FRAMES, 2), np.int64)
    for t in range(FRAMES):
        out[t] = np.rint(pos)
        pos = pos + vel
        for d in range(2):  # bounce: reflect the position, flip the velocity
            if pos[d] < 0:
                pos[d], vel[d] = -pos[d], -vel[d]
            elif pos[d] > limit[d]:
                pos[d], vel[d] = 2 * limit[d] - pos[d], -vel[d]
    return out


def _render_clip(rng: np.random.Generator) -> np.ndarray:
    """One (20, 64, 64, 1) uint8 clip of two moving digits."""
    clip = np.zeros((FRAMES, SIZE, SIZE), np.float32)
    for _ in range(DIGITS):
        sprite = _sprite(rng)
        h, w = sprite.shape
        for t, (y, x) in enumerate(_path(rng, (SIZE - h, SIZE - w))):
            np.maximum(clip[t, y:y + h, x:x + w], sprite, out=clip[t, y:y + h, x:x + w])
    return np.clip(np.rint(clip), 0, 255).astype(np.uint8)[..., None]


def render_clips(n: int, seed: int, split: int) -> np.ndarray:
    """The first `n` built-in clips of split number `split` (0 train, 1 test):
    (n, 20, 64, 64, 1) uint8; clip i draws everything from ``default_rng([seed, split, i, 64])``."""
    clips = np.empty((n, FRAMES, SIZE, SIZE, 1), np.uint8)
    for i in range(n):
        clips[i] = _render_clip(np.random.default_rng([seed, split, i, _STREAM]))
    return clips


def _info(size: str, seed: int, split: str) -> dict:
    return {"source": "builtin", "generator": BUILTIN_VIDEO_VERSION, "size": size, "seed": seed,
            "split": split}


def _write_split(folder: Path, split: str, size: str, seed: int) -> None:
    clips = render_clips(VIDEO_SIZES[size][split], seed, SPLITS.index(split))
    write_video_dump(folder, clips, [f"{split}_{i:06d}" for i in range(len(clips))],
                     _info(size, seed, split))


def prepare_builtin_video(out: str | Path, *, size: str = "default", seed: int = 0,
                          use_cache: bool = True) -> dict[str, Path]:
    """The built-in moving glyphs as dumps ``out/train`` and ``out/test``; returns {split: folder}.

    Args:
        out: output folder. size: ``default`` or ``tiny``. seed: the generator's seed.
        use_cache: read and fill ``$SPEECHVQ_CACHE/video``; False renders afresh into `out`.
    """
    return prepare_cached(
        Path(out), "video", f"{BUILTIN_VIDEO_VERSION}-{size}-seed{seed}", SPLITS,
        lambda folder, split: existing_video_dump(folder, _info(size, seed, split)) is not None,
        lambda folder, split: _write_split(folder, split, size, seed), VideoDump.open,
        use_cache)
