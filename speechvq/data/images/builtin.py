"""The built-in images: 32x32 RGB digits on photographs and smooth noise, made offline.

Nothing is downloaded (as the built-in speech corpus): the ten digits are drawn once per font
that matplotlib ships (``mpl-data/fonts/ttf``, through Pillow's FreeType ``ImageFont``), then each
image warps one of those glyphs (random colour, height, rotation, position) over a background
that is either a random crop of one of scikit-learn's two sample photographs (``china.jpg``,
``flower.jpg``) or smooth colour noise (a random 2x2 to 6x6 colour grid, bicubically enlarged).
The label is the digit; ``classes.txt`` is ``0`` ... ``9``. It is a CIFAR-sized stand-in with a
known structure (an object over a textured background) on which a VQ-VAE and the patch k-means
baseline can be compared in minutes on a CPU.

- Fonts: those whose glyphs for 0-9 are ten distinct non-empty shapes of which at least six are
  nearer (normalised correlation at 20x20) to DejaVu Sans's same digit than to any other digit;
  this keeps 22 of matplotlib 3.x's fonts and drops the symbol fonts (STIX size variants,
  cmex10, cmsy10) that draw something else, or nothing, at the digits' code points.
- Deterministic: image i of split k (train 0, test 1) draws everything from
  ``numpy.random.default_rng([seed, k, i])``, so train and test never share a draw and a smaller
  size is the start of a larger one; the same versions of matplotlib, Pillow and scikit-learn
  give byte-identical images.
- Sizes: ``default`` 20,000 train + 5,000 test; ``tiny`` 512 + 128 (tests).
- Cached under ``$SPEECHVQ_CACHE/images/<version>-<size>-seed<seed>/`` (built in a temp dir and
  renamed when complete); `prepare_builtin_images` hard-links (or copies) the dumps into OUT.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from speechvq.data.cache import prepare_cached
from speechvq.data.images.dump import ImageDump, existing_dump, write_dump

__all__ = ["BUILTIN_VERSION", "SIZES", "digit_fonts", "render_images",
           "prepare_builtin_images"]

BUILTIN_VERSION = "v1"  # bump whenever the generated images change
SIZES = {"tiny": {"train": 512, "test": 128}, "default": {"train": 20000, "test": 5000}}
SPLITS = ("train", "test")
IMAGE_SIZE = 32
_GLYPH_PT = 48  # font size the glyphs are drawn at before they are scaled down


def _mpl_fonts() -> list[Path]:
    import matplotlib

    return sorted((Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("*.ttf"))


def _glyph(font, char: str):
    """The glyph of `char` as an L-mode image cropped to its ink, or None when it has none."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (2 * _GLYPH_PT, 2 * _GLYPH_PT), 0)
    ImageDraw.Draw(canvas).text((_GLYPH_PT, _GLYPH_PT), char, fill=255, font=font, anchor="mm")
    box = canvas.getbbox()
    return None if box is None else canvas.crop(box)


def _signature(glyph) -> np.ndarray:
    """A glyph as a zero-mean unit vector at 20x20, for comparing shapes; (400,)."""
    from PIL import Image

    a = np.asarray(glyph.resize((20, 20), Image.Resampling.BILINEAR), np.float64).ravel()
    a = a - a.mean()
    return a / max(np.linalg.norm(a), 1e-12)


@functools.cache
def digit_fonts() -> tuple[tuple[str, tuple], ...]:
    """(font file name, its ten digit glyphs) for every bundled font that draws digits."""
    from PIL import ImageFont

    fonts = {}
    for path in _mpl_fonts():
        font = ImageFont.truetype(str(path), _GLYPH_PT)
        glyphs = [_glyph(font, str(d)) for d in range(10)]
        if any(g is None for g in glyphs):
            continue
        if len({(g.size, g.tobytes()) for g in glyphs}) < 10:
            continue
        fonts[path.name] = tuple(glyphs)
    reference = np.stack([_signature(g) for g in fonts["DejaVuSans.ttf"]])  # (10, 400)
    kept = []
    for name, glyphs in fonts.items():
        sim = np.stack([_signature(g) for g in glyphs]) @ reference.T  # (10, 10)
        if (sim.argmax(1) == np.arange(10)).sum() >= 6:
            kept.append((name, glyphs))
    return tuple(kept)


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    """scikit-learn's sample photographs, (H, W, 3) uint8 each."""
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(im, np.uint8) for im in load_sample_images().images)


def _background(rng: np.random.Generator) -> np.ndarray:
    """A 32x32 RGB background, float32 in [0, 255]: a photo crop or smooth noise."""
    from PIL import Image

    if rng.random() < 0.6:
        photo = _photos()[rng.integers(len(_photos()))]
        h, w = photo.shape[:2]
        side = int(rng.integers(24, min(h, w) // 2))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        crop = Image.fromarray(photo[y:y + side, x:x + side])
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.asarray(crop.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR),
                          np.float32)
    n = int(rng.integers(2, 7))
    grid = rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
    noise = Image.fromarray(grid).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(noise, np.float32)


def _colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A digit colour at least 120 (RGB distance) from the background's mean; (3,) float32."""
    mean = background.reshape(-1, 3).mean(0)
    for _ in range(20):
        colour = rng.integers(0, 256, 3).astype(np.float32)
        if np.linalg.norm(colour - mean) >= 120:
            return colour
    return np.where(mean > 127, 0.0, 255.0).astype(np.float32)  # black or white


def _render_one(rng: np.random.Generator, glyph) -> np.ndarray:
    """One (32, 32, 3) uint8 image of `glyph` (an L-mode ink mask)."""
    from PIL import Image

    background = _background(rng)
    height = int(rng.integers(14, 27))
    width = max(4, round(glyph.size[0] * height / glyph.size[1] * rng.uniform(0.8, 1.2)))
    mask = glyph.resize((width, height), Image.Resampling.BILINEAR)
    mask = mask.rotate(float(rng.uniform(-25, 25)), Image.Resampling.BILINEAR, expand=True)
    mw, mh = mask.size
    x = int(rng.integers(min(0, IMAGE_SIZE - mw), max(0, IMAGE_SIZE - mw) + 1))
    y = int(rng.integers(min(0, IMAGE_SIZE - mh), max(0, IMAGE_SIZE - mh) + 1))
    alpha = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)  # (32, 32)
    a = np.asarray(mask, np.float32) / 255.0  # (mh, mw)
    ys, xs = slice(max(y, 0), min(y + mh, IMAGE_SIZE)), slice(max(x, 0), min(x + mw, IMAGE_SIZE))
    alpha[ys, xs] = a[ys.start - y:ys.stop - y, xs.start - x:xs.stop - x]
    alpha = alpha[:, :, None]  # (32, 32, 1)
    image = background * (1 - alpha) + _colour(rng, background) * alpha
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render_images(n: int, seed: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` built-in images of split number `split` (0 train, 1 test):
    ((n, 32, 32, 3) uint8, (n,) int64 digits). Image i draws everything (digit, font,
    background, warp) from ``default_rng([seed, split, i])`` alone."""
    fonts = digit_fonts()
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for i in range(n):
        rng = np.random.default_rng([seed, split, i])
        labels[i] = rng.integers(0, 10)
        images[i] = _render_one(rng, fonts[rng.integers(0, len(fonts))][1][labels[i]])
    return images, labels


def _info(size: str, seed: int, split: str) -> dict:
    return {"source": "builtin", "generator": BUILTIN_VERSION, "size": size, "seed": seed,
            "split": split}


def _write_split(folder: Path, split: str, size: str, seed: int) -> None:
    images, labels = render_images(SIZES[size][split], seed, SPLITS.index(split))
    write_dump(folder, images, labels, [str(d) for d in range(10)],
               {**_info(size, seed, split), "fonts": [f for f, _ in digit_fonts()]})


def prepare_builtin_images(out: str | Path, *, size: str = "default", seed: int = 0,
                           use_cache: bool = True) -> dict[str, Path]:
    """The built-in images as dumps ``out/train`` and ``out/test``; returns {split: folder}.

    Args:
        out: output folder. size: ``default`` or ``tiny``. seed: the generator's seed.
        use_cache: read and fill ``$SPEECHVQ_CACHE/images``; False renders afresh into `out`.
    """
    return prepare_cached(
        Path(out), "images", f"{BUILTIN_VERSION}-{size}-seed{seed}", SPLITS,
        lambda folder, split: existing_dump(folder, _info(size, seed, split)) is not None,
        lambda folder, split: _write_split(folder, split, size, seed), ImageDump.open,
        use_cache)
