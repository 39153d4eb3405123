"""Image datasets on the user's disk -> one dump per split (`speechvq.data.images.dump`).

- MNIST (LeCun, Bottou, Bengio and Haffner 1998; http://yann.lecun.com/exdb/mnist/, CC BY-SA 3.0
  as mirrored): the IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, gzipped
  (``.gz``) or not, 28x28 grey. Splits are index ranges of the two sets, e.g.
  ``train=t10k:0-6999`` (both ends included); default ``train=train`` and ``test=t10k``.
- CIFAR-10 (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images"), its binary
  version only (``cifar-10-batches-bin/``: ``data_batch_1.bin`` ... ``data_batch_5.bin`` ->
  ``train``, ``test_batch.bin`` -> ``test``; each record is 1 label byte then 3,072 bytes, the
  red, green and blue 32x32 planes row by row). The python version is a pickle and is never read.
- An image folder in ImageNet layout, ``SRC/<class>/<image>`` (one split, ``train``), or
  ``SRC/<split>/<class>/<image>`` (one dump per split folder), read through Pillow: the shorter
  side is resized to ``image_size`` (bicubic), then the centre ``image_size`` square is cut out
  (the usual ImageNet evaluation crop); grey, palette and CMYK images become RGB (``channels=3``)
  or RGB becomes grey (``channels=1``, ITU-R 601 luma); an alpha channel is dropped. Classes are
  the class folder names of all splits in ``LC_ALL=C`` order (one label map for every split).

Each ``prepare_*`` returns ``{split: dump folder}`` and skips splits whose dump is complete.
"""

from __future__ import annotations

import gzip
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from speechvq.data.images.dump import check_class_name, existing_dump, write_dump
from speechvq.errors import DataError

__all__ = ["MnistSplit", "parse_mnist_split", "read_idx", "prepare_mnist", "read_cifar10",
           "prepare_cifar10", "read_image", "prepare_folder", "IMAGE_SUFFIXES"]

# ------------------------------------------------------------------------------------ MNIST

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_SETS = ("train", "t10k")


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzipped or not) as an array of its declared type and shape.

    Raises:
        DataError: unreadable, not IDX (magic number), or shorter/longer than its header says.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read IDX file '{path}' ({e}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise DataError(f"'{path}' is not an IDX file (bad magic number {raw[:4].hex()}); give "
                        f"the MNIST files *-images-idx3-ubyte and *-labels-idx1-ubyte")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int)
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"IDX file '{path}' holds {len(raw)} bytes but its header "
                        f"{tuple(dims)} needs {expected}; it is truncated or corrupt")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(dims)


def _mnist_file(src: Path, name: str) -> Path:
    for candidate in (src / name, src / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"MNIST file {name} (or {name}.gz) not found in '{src}'; give the folder "
                    f"holding the IDX files")


def _mnist_set(src: Path, which: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,)) of the MNIST set `which` (train or t10k)."""
    images = read_idx(_mnist_file(src, f"{which}-images-idx3-ubyte"))
    labels = read_idx(_mnist_file(src, f"{which}-labels-idx1-ubyte"))
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"MNIST {which} files in '{src}' have shapes {images.shape} and "
                        f"{labels.shape}; expected (N, rows, cols) uint8 images and (N,) labels")
    if len(images) != len(labels):
        raise DataError(f"MNIST {which} in '{src}': {len(images)} images but {len(labels)} "
                        f"labels; the two files come from different sets")
    if labels.size and labels.max() > 9:
        raise DataError(f"MNIST {which} labels in '{src}' go up to {labels.max()}; expected 0-9")
    return images, labels


@dataclass(frozen=True)
class MnistSplit:
    """One output split: images ``start``..``stop`` (both included) of the MNIST set ``source``;
    ``stop`` None = to the end."""

    name: str
    source: str
    start: int = 0
    stop: int | None = None


_SPLIT = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)=(train|t10k)(?::(\d+)-(\d+))?$")


def parse_mnist_split(text: str) -> MnistSplit:
    """``NAME=SET[:START-END]`` (e.g. ``train=t10k:0-6999``) -> `MnistSplit`.

    Raises:
        DataError: another form, or END before START.
    """
    m = _SPLIT.match(text.strip())
    if not m:
        raise DataError(f"MNIST split {text!r} must read NAME=SET or NAME=SET:START-END with SET "
                        f"train or t10k and both ends included, e.g. train=t10k:0-6999")
    name, source, start, stop = m.groups()
    if start is None:
        return MnistSplit(name, source)
    if int(stop) < int(start):
        raise DataError(f"MNIST split {text!r}: END {stop} is before START {start}")
    return MnistSplit(name, source, int(start), int(stop))


def prepare_mnist(src: str | Path, out: str | Path,
                  splits: Sequence[MnistSplit] = (MnistSplit("train", "train"),
                                                  MnistSplit("test", "t10k"))) -> dict[str, Path]:
    """MNIST IDX files in `src` -> dumps ``out/<split>`` (28x28x1, classes 0-9).

    Raises:
        DataError: missing or corrupt files, a range past the end of its set, two splits with
            one name.
    """
    src, out = Path(src).resolve(), Path(out)
    if len({s.name for s in splits}) != len(splits):
        raise DataError(f"MNIST splits {[s.name for s in splits]} repeat a name")
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    result = {}
    for s in splits:
        wanted = {"source": "mnist", "src": str(src), "set": s.source, "start": s.start,
                  "stop": s.stop}
        if existing_dump(out / s.name, wanted) is None:
            if s.source not in sets:
                sets[s.source] = _mnist_set(src, s.source)
            images, labels = sets[s.source]
            stop = len(images) - 1 if s.stop is None else s.stop
            if stop >= len(images):
                raise DataError(f"MNIST split {s.name}={s.source}:{s.start}-{s.stop} ends past "
                                f"the {len(images)} images of {s.source} in '{src}'")
            write_dump(out / s.name, images[s.start:stop + 1, :, :, None],
                       labels[s.start:stop + 1], [str(k) for k in range(10)], wanted)
        result[s.name] = out / s.name
    return result


# --------------------------------------------------------------------------------- CIFAR-10

CIFAR_RECORD = 1 + 3 * 32 * 32
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")
CIFAR_FILES = {"train": tuple(f"data_batch_{k}.bin" for k in range(1, 6)),
               "test": ("test_batch.bin",)}


def read_cifar10(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch -> (images (N, 32, 32, 3) uint8 NHWC, labels (N,) int64).

    Raises:
        DataError: missing, not a whole number of 3,073-byte records, or a label above 9.
    """
    path = Path(path)
    try:
        raw = np.fromfile(path, np.uint8)
    except OSError as e:
        raise DataError(f"cannot read CIFAR-10 batch '{path}' ({e})") from None
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DataError(f"'{path}' has {raw.size} bytes, not a whole number of {CIFAR_RECORD}-"
                        f"byte CIFAR-10 records; give the binary version (cifar-10-binary."
                        f"tar.gz), not the python or matlab one")
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"'{path}' has label {labels.max()} (CIFAR-10 labels are 0-9); is it a "
                        f"CIFAR-100 file?")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
    return np.ascontiguousarray(images), labels


def _cifar_dir(src: Path) -> Path:
    for d in (src, src / "cifar-10-batches-bin"):
        if (d / "test_batch.bin").is_file() or (d / "data_batch_1.bin").is_file():
            return d
    raise DataError(f"no CIFAR-10 binary batches (data_batch_1.bin ... test_batch.bin) in "
                    f"'{src}' or '{src}/cifar-10-batches-bin'; unpack cifar-10-binary.tar.gz "
                    f"and give its folder")


def _cifar_classes(d: Path) -> list[str]:
    meta = d / "batches.meta.txt"
    if not meta.is_file():
        return list(CIFAR_CLASSES)
    names = [ln.strip() for ln in meta.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(names) != 10:
        raise DataError(f"{meta} lists {len(names)} class names; CIFAR-10 has 10")
    return names


def prepare_cifar10(src: str | Path, out: str | Path) -> dict[str, Path]:
    """CIFAR-10 binary batches under `src` -> dumps ``out/train`` (50,000) and ``out/test``."""
    d = _cifar_dir(Path(src).resolve())
    result = {}
    for split, files in CIFAR_FILES.items():
        wanted = {"source": "cifar10", "src": str(d), "files": list(files)}
        if existing_dump(Path(out) / split, wanted) is None:
            missing = [f for f in files if not (d / f).is_file()]
            if missing:
                raise DataError(f"CIFAR-10 folder '{d}' lacks {', '.join(missing)}; unpack "
                                f"the whole cifar-10-binary.tar.gz")
            parts = [read_cifar10(d / f) for f in files]
            write_dump(Path(out) / split, np.concatenate([p[0] for p in parts]),
                       np.concatenate([p[1] for p in parts]), _cifar_classes(d), wanted)
        result[split] = Path(out) / split
    return result


# ----------------------------------------------------------------------------- image folders

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm")


def read_image(path: str | Path, image_size: int, channels: int) -> np.ndarray:
    """One image file -> (S, S, C) uint8: shorter side resized to S (bicubic), centre crop.

    Raises:
        DataError: missing, not an image, or corrupt (naming the file).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("RGB" if channels == 3 else "L")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"image '{path}' cannot be read ({e}); replace or remove it") from None
    w, h = im.size
    scale = image_size / min(w, h)
    size = (max(image_size, round(w * scale)), max(image_size, round(h * scale)))
    im = im.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    im = im.crop((left, top, left + image_size, top + image_size))
    return np.asarray(im, dtype=np.uint8).reshape(image_size, image_size, channels)


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: d.name.encode())


def _folder_splits(src: Path) -> dict[str, Path]:
    """split -> folder of class folders: SRC itself (``train``) or each of its sub-folders."""
    if not src.is_dir():
        raise DataError(f"image folder '{src}' does not exist; give SRC/<class>/<image> or "
                        f"SRC/<split>/<class>/<image>")
    subs = _class_dirs(src)
    if not subs:
        raise DataError(f"'{src}' has no class folders; lay it out as SRC/<class>/<image> "
                        f"(ImageNet style) or SRC/<split>/<class>/<image>")
    if any(_is_image(p) for d in subs for p in d.iterdir()):
        return {"train": src}
    return {d.name: d for d in subs}


def _read_split(folder: Path, classes: list[str], image_size: int, channels: int,
                progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from speechvq.progress import tqdm

    files, labels, ignored = [], [], 0
    for k, name in enumerate(classes):
        if not (folder / name).is_dir():  # a class another split has
            continue
        for p in sorted((folder / name).iterdir(), key=lambda p: p.name.encode()):
            if _is_image(p):
                files.append(p)
                labels.append(k)
            elif not p.name.startswith("."):
                ignored += 1
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders of "
                        f"'{folder}'")
    if ignored:
        warnings.warn(f"{folder}: {ignored} files that are not images ({'/'.join(IMAGE_SUFFIXES)})"
                      f" ignored", stacklevel=3)
    images = np.empty((len(files), image_size, image_size, channels), np.uint8)
    bar = tqdm(files, desc=f"read {folder.name}", unit="img", disable=not progress)
    for i, p in enumerate(bar):
        images[i] = read_image(p, image_size, channels)
    return images, np.asarray(labels)


def prepare_folder(src: str | Path, out: str | Path, *, image_size: int = 32, channels: int = 3,
                   progress: bool = True) -> dict[str, Path]:
    """An ImageNet-layout folder -> one dump per split (see the module docstring).

    Raises:
        DataError: no class folders, no images, a corrupt image (named), a bad class name.
    """
    if channels not in (1, 3) or image_size < 1:
        raise DataError(f"--channels must be 1 or 3 and --image-size positive, got {channels} "
                        f"and {image_size}")
    splits = _folder_splits(Path(src).resolve())
    # one label map for every split: a class missing from one split keeps its number
    classes = sorted({check_class_name(d.name, str(d)) for f in splits.values()
                      for d in _class_dirs(f)}, key=str.encode)
    result = {}
    for split, folder in splits.items():
        wanted = {"source": "folder", "src": str(folder), "image_size": image_size,
                  "channels": channels}
        if existing_dump(Path(out) / split, wanted) is None:
            images, labels = _read_split(folder, classes, image_size, channels, progress)
            write_dump(Path(out) / split, images, labels, classes, wanted)
        result[split] = Path(out) / split
    return result
