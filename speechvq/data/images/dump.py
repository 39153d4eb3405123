"""The image dump: one folder per split that training reads through a memory map.

A dump (DESIGN.md, "Data on disk", as nanoGPT's ``get_batch`` reads its token file) holds

- ``images.npy``: (N, H, W, C) uint8, NHWC, C = 1 (grey) or 3 (RGB), opened with
  ``np.load(mmap_mode="r")`` so a batch reads only its own images;
- ``labels.npy``: (N,) int64 class indices into ``classes.txt``;
- ``classes.txt``: one class name per line, the line number (from 0) is the label;
- ``info.json``: what made it (the source, its options, the dump version) and the array shape.

`write_dump` builds the folder as ``OUT.tmp`` and renames it when complete, so a kill leaves no
half dump; rerunning the same preparation on a complete dump skips it (`existing_dump`), and a
dump made from another source or with other options is refused, not mixed (both as every array
dump does: `speechvq.data.dump_folder`). No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from speechvq.checksums import verify
from speechvq.data.dump_folder import DumpFormat, is_one_word, write_dump_folder
from speechvq.errors import DataError

__all__ = ["DUMP_VERSION", "ImageDump", "existing_dump", "write_dump", "check_class_name"]

DUMP_VERSION = 1  # bump when the files or their meaning change
FILES = ("images.npy", "labels.npy", "classes.txt", "info.json")
FORMAT = DumpFormat("image dump", "prepare-images", "builtin dump/images", FILES, DUMP_VERSION)


def check_class_name(name: str, where: str) -> str:
    """Refuse a class name that cannot be one line of classes.txt (empty, whitespace inside)."""
    if not is_one_word(name):
        raise DataError(f"{where}: class name {name!r} is empty or holds whitespace or control "
                        f"characters; rename it (class names are one word per line of "
                        f"classes.txt)")
    return name


@dataclass(frozen=True)
class ImageDump:
    """An opened dump (see the module docstring).

    Attributes:
        path: the dump folder.
        images: (N, H, W, C) uint8, memory-mapped, read-only.
        labels: (N,) int64.
        classes: class names; ``classes[labels[i]]`` names image i.
        info: the content of info.json.
    """

    path: Path
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    info: dict

    @classmethod
    def open(cls, path: str | Path) -> "ImageDump":
        """Open the dump folder `path` (arrays memory-mapped).

        Raises:
            DataError: not a dump, a missing or unreadable file, inconsistent shapes or labels.
        """
        path = Path(path)
        FORMAT.check_folder(path)
        try:
            images = np.load(path / "images.npy", mmap_mode="r", allow_pickle=False)
            labels = np.load(path / "labels.npy", allow_pickle=False)
            info = json.loads((path / "info.json").read_text(encoding="utf-8"))
            classes = tuple((path / "classes.txt").read_text(encoding="utf-8").splitlines())
        except (OSError, ValueError) as e:
            raise FORMAT.unreadable(path, e) from None
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
            raise DataError(f"{path}/images.npy must be (N, H, W, C) uint8 with C = 1 or 3, got "
                            f"{images.dtype} {images.shape}; rerun `speechvq prepare-images`")
        if labels.shape != (images.shape[0],) or labels.dtype.kind not in "iu":
            raise DataError(f"{path}/labels.npy must hold one integer label per image "
                            f"({images.shape[0]}), got {labels.dtype} {labels.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(f"{path}/labels.npy has labels outside [0, {len(classes)}) "
                            f"(classes.txt has {len(classes)} lines)")
        return cls(path, images, labels.astype(np.int64), classes, info)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def verify(self) -> bool:
        """Compare every file with the checksum info.json recorded when the dump was made.

        Returns:
            True when they all match; False for a dump made before dumps recorded checksums.
        Raises:
            DataError: a file is missing or differs (naming it).
        """
        return verify(self.path, self.info.get("checksums"),
                      lambda why: FORMAT.damaged(self.path, why))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]


def existing_dump(out: str | Path, wanted: dict[str, Any]) -> ImageDump | None:
    """The complete dump at `out` if it was made as `wanted` says (a rerun skips it); None when
    there is none.

    Raises:
        DataError: `out` holds something else (another source, other options, not a dump).
    """
    return FORMAT.existing(out, ImageDump.open, wanted, "a dump")


def write_dump(out: str | Path, images: np.ndarray, labels: Sequence[int] | np.ndarray,
               classes: Sequence[str], info: dict[str, Any]) -> ImageDump:
    """Write the dump folder `out` (built as ``OUT.tmp``, renamed when complete).

    Args:
        out: the dump folder to create (it must not exist; see `existing_dump`).
        images: (N, H, W, C) uint8. labels: (N,) ints in [0, len(classes)).
        classes: class names (no whitespace). info: what made it (source and options).
    Returns:
        The written dump, opened.
    """
    out = Path(out)
    images = np.ascontiguousarray(images)
    labels = np.asarray(labels, dtype=np.int64)
    assert images.dtype == np.uint8 and images.ndim == 4 and labels.shape == images.shape[:1]
    for name in classes:
        check_class_name(name, str(out))
    write_dump_folder(
        out, arrays={"images.npy": images, "labels.npy": labels},
        texts={"classes.txt": "".join(f"{c}\n" for c in classes)}, meta_file="info.json",
        meta={"version": DUMP_VERSION, **info, "n_images": int(images.shape[0]),
              "shape": list(images.shape[1:]), "n_classes": len(classes)})
    return ImageDump.open(out)
