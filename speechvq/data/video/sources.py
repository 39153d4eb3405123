"""Real video on the user's disk -> one dump per split (`speechvq.data.video.dump`).

- Moving MNIST (Srivastava, Mansimov and Salakhutdinov 2015, arXiv:1502.04681;
  ``mnist_test_seq.npy`` from http://www.cs.toronto.edu/~nitish/unsupervised_video/): one
  ``.npy`` of uint8 shaped (T, N, H, W) = (20, 10000, 64, 64), time first. It is read through a
  memory map, turned clip-first, and cut into splits by clip index ranges, e.g. ``train=0-8999``
  ``test=9000-9999`` (both ends included; the default).
- Folders of numbered frames: ``SRC/<clip>/000001.png, 000002.png, ...`` (any Pillow-readable
  image, numbered in order; the names' numbers give the order, so ``2.png`` comes before
  ``10.png``), one split (``train``) or ``SRC/<split>/<clip>/...`` (one dump per split folder).
  Each frame is resized to ``image_size`` square as `speechvq.data.images.sources.read_image`
  does (shorter side, centre crop), grey or RGB; a clip folder of n frames gives n // ``frames``
  clips of ``frames`` consecutive frames, named ``<clip>_<k>`` (a folder shorter than ``frames``
  is skipped with a warning).

Each ``prepare_*`` returns ``{split: dump folder}`` and skips splits whose dump is complete.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from speechvq.data.images.sources import IMAGE_SUFFIXES, read_image
from speechvq.data.video.dump import existing_video_dump, write_video_dump
from speechvq.errors import DataError

__all__ = ["ClipRange", "parse_clip_range", "read_moving_mnist", "prepare_moving_mnist",
           "prepare_frame_folders", "MOVING_MNIST_SPLITS"]

MOVING_MNIST_SPLITS = ("train=0-8999", "test=9000-9999")


@dataclass(frozen=True)
class ClipRange:
    """One output split: clips ``start``..``stop`` (both included) of the source file."""

    name: str
    start: int
    stop: int


_RANGE = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)=(\d+)-(\d+)$")


def parse_clip_range(text: str) -> ClipRange:
    """``NAME=START-END`` (e.g. ``test=9000-9999``, both ends included) -> `ClipRange`.

    Raises:
        DataError: another form, or END before START.
    """
    m = _RANGE.match(text.strip())
    if not m or int(m.group(3)) < int(m.group(2)):
        raise DataError(f"clip split {text!r} must read NAME=START-END with START <= END, both "
                        f"included, e.g. test=9000-9999")
    return ClipRange(m.group(1), int(m.group(2)), int(m.group(3)))


def read_moving_mnist(path: str | Path) -> np.ndarray:
    """Moving MNIST's ``.npy`` as a (T, N, H, W) uint8 memory map (time first, as published).

    Raises:
        DataError: missing, not a .npy, or not 4-D uint8.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Moving MNIST file '{path}' does not exist; give mnist_test_seq.npy "
                        f"(uint8, 20 x 10000 x 64 x 64)")
    try:
        seq = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"'{path}' is not a readable .npy file ({e}); download "
                        f"mnist_test_seq.npy again") from None
    if seq.dtype != np.uint8 or seq.ndim != 4:
        raise DataError(f"'{path}' holds {seq.dtype} {seq.shape}; Moving MNIST is uint8 shaped "
                        f"(frames, clips, height, width), e.g. 20 x 10000 x 64 x 64")
    return seq


def prepare_moving_mnist(src: str | Path, out: str | Path,
                         splits: Sequence[ClipRange] | None = None) -> dict[str, Path]:
    """Moving MNIST's ``.npy`` -> one dump per split of clip index ranges (default
    `MOVING_MNIST_SPLITS`).

    Raises:
        DataError: a bad file, or a range past the file's clips.
    """
    seq = read_moving_mnist(src)
    n = seq.shape[1]
    splits = list(splits or [parse_clip_range(s) for s in MOVING_MNIST_SPLITS])
    for s in splits:
        if s.stop >= n:
            raise DataError(f"split {s.name}={s.start}-{s.stop} goes past the {n} clips of "
                            f"'{src}' (last index {n - 1}); give --split NAME=START-END within it")
    result = {}
    for s in splits:
        wanted = {"source": "moving_mnist", "src": str(Path(src).resolve()), "start": s.start,
                  "stop": s.stop}
        dump = Path(out) / s.name
        if existing_video_dump(dump, wanted) is None:
            clips = np.ascontiguousarray(seq[:, s.start:s.stop + 1].transpose(1, 0, 2, 3))
            write_video_dump(dump, clips[..., None],  # (N, T, H, W, 1)
                             [f"mmnist_{i:05d}" for i in range(s.start, s.stop + 1)], wanted)
        result[s.name] = dump
    return result


# ---------------------------------------------------------------------------- frame folders


def _number(p: Path) -> int | None:
    digits = re.findall(r"\d+", p.stem)
    return int(digits[-1]) if digits else None


def _frames_of(folder: Path) -> list[Path]:
    """The numbered frames of a clip folder, in number order.

    Raises:
        DataError: a frame without a number, or two frames with the same number.
    """
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in IMAGE_SUFFIXES]
    numbers = {}
    for p in files:
        k = _number(p)
        if k is None:
            raise DataError(f"frame '{p}' has no number in its name; name the frames of a clip "
                            f"000001.png, 000002.png, ...")
        if k in numbers:
            raise DataError(f"frames '{numbers[k]}' and '{p}' have the same number {k}; keep "
                            f"one")
        numbers[k] = p
    return [numbers[k] for k in sorted(numbers)]


def _clip_dirs(folder: Path) -> list[Path]:
    return sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: d.name.encode())


def _frame_splits(src: Path) -> dict[str, Path]:
    """split -> folder of clip folders: SRC itself (``train``) or each of its sub-folders."""
    if not src.is_dir():
        raise DataError(f"frame folder '{src}' does not exist; give SRC/<clip>/000001.png ... "
                        f"or SRC/<split>/<clip>/000001.png ...")
    subs = _clip_dirs(src)
    if not subs:
        raise DataError(f"'{src}' has no clip folders; lay it out as SRC/<clip>/000001.png ...")
    if any(p.is_file() for d in subs for p in d.iterdir()):
        return {"train": src}
    return {d.name: d for d in subs}


def _read_split(folder: Path, frames: int, image_size: int,
                channels: int) -> tuple[np.ndarray, list[str]]:
    clips, names, short = [], [], []
    for clip_dir in _clip_dirs(folder):
        paths = _frames_of(clip_dir)
        if len(paths) < frames:
            short.append(clip_dir.name)
            continue
        for k in range(len(paths) // frames):
            clips.append(np.stack([read_image(p, image_size, channels)
                                   for p in paths[k * frames:(k + 1) * frames]]))
            names.append(f"{clip_dir.name}_{k}")
    if short:
        warnings.warn(f"{folder}: {len(short)} clip folders with fewer than {frames} frames "
                      f"skipped ({', '.join(short[:3])}{', ...' if len(short) > 3 else ''})",
                      stacklevel=3)
    if not clips:
        raise DataError(f"no clip of {frames} frames in '{folder}'; give clip folders of at "
                        f"least --frames numbered frames ({'/'.join(IMAGE_SUFFIXES)})")
    return np.stack(clips), names


def prepare_frame_folders(src: str | Path, out: str | Path, *, frames: int = 20,
                          image_size: int = 64, channels: int = 1) -> dict[str, Path]:
    """Folders of numbered frames -> one dump per split (see the module docstring).

    Raises:
        DataError: no clip folders, an unnumbered frame, a corrupt frame (named), no long clip.
    """
    if channels not in (1, 3) or image_size < 1 or frames < 1:
        raise DataError(f"--channels must be 1 or 3, --image-size and --frames positive; got "
                        f"{channels}, {image_size} and {frames}")
    result = {}
    for split, folder in _frame_splits(Path(src).resolve()).items():
        wanted = {"source": "frames", "src": str(folder), "frames": frames,
                  "image_size": image_size, "channels": channels}
        if existing_video_dump(Path(out) / split, wanted) is None:
            clips, names = _read_split(folder, frames, image_size, channels)
            write_video_dump(Path(out) / split, clips, names, wanted)
        result[split] = Path(out) / split
    return result
