"""The video dump: one folder per split that training reads through a memory map.

A dump (DESIGN.md, "Data on disk"; the image dump's layout with a time axis) holds

- ``clips.npy``: (N, T, H, W, C) uint8, all clips the same length T, C = 1 (grey) or 3 (RGB),
  one contiguous array opened with ``np.load(mmap_mode="r")`` so a batch reads only its clips;
- ``clips.txt``: one clip id per line (line n names clip n);
- ``info.json``: what made it (the source, its options, the dump version) and the array shape.

`write_video_dump` builds the folder as ``OUT.tmp`` and renames it when complete, so a kill
leaves no half dump; rerunning the same preparation on a complete dump skips it
(`existing_video_dump`), and a dump made from another source or with other options is refused,
not mixed (both as every array dump does: `speechvq.data.dump_folder`). The CLI holds
``output_lock(OUT)`` around a preparation, as for image dumps.
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

__all__ = ["VIDEO_DUMP_VERSION", "VideoDump", "existing_video_dump", "write_video_dump"]

VIDEO_DUMP_VERSION = 1  # bump when the files or their meaning change
FILES = ("clips.npy", "clips.txt", "info.json")
FORMAT = DumpFormat("video dump", "prepare-video", "builtin dump", FILES, VIDEO_DUMP_VERSION)


@dataclass(frozen=True)
class VideoDump:
    """An opened video dump (see the module docstring).

    Attributes:
        path: the dump folder. clips: (N, T, H, W, C) uint8, memory-mapped, read-only.
        names: clip ids, ``names[i]`` names clip i. info: the content of info.json.
    """

    path: Path
    clips: np.ndarray
    names: tuple[str, ...]
    info: dict

    @classmethod
    def open(cls, path: str | Path) -> "VideoDump":
        """Open the dump folder `path` (clips memory-mapped).

        Raises:
            DataError: not a dump, a missing or unreadable file, inconsistent shapes.
        """
        path = Path(path)
        FORMAT.check_folder(path)
        try:
            clips = np.load(path / "clips.npy", mmap_mode="r", allow_pickle=False)
            info = json.loads((path / "info.json").read_text(encoding="utf-8"))
            names = tuple((path / "clips.txt").read_text(encoding="utf-8").splitlines())
        except (OSError, ValueError) as e:
            raise FORMAT.unreadable(path, e) from None
        if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[4] not in (1, 3):
            raise DataError(f"{path}/clips.npy must be (N, T, H, W, C) uint8 with C = 1 or 3, "
                            f"got {clips.dtype} {clips.shape}; rerun `speechvq prepare-video`")
        if len(names) != clips.shape[0]:
            raise DataError(f"{path}/clips.txt names {len(names)} clips but clips.npy holds "
                            f"{clips.shape[0]}; remove the dump and rerun `speechvq "
                            f"prepare-video`")
        return cls(path, clips, names, info)

    def __len__(self) -> int:
        return int(self.clips.shape[0])

    def verify(self) -> bool:
        """Compare every file with the checksum info.json recorded when the dump was made.

        Returns:
            True when they all match; False for a dump made before video dumps recorded them.
        Raises:
            DataError: a file is missing or differs (naming it).
        """
        return verify(self.path, self.info.get("checksums"),
                      lambda why: FORMAT.damaged(self.path, why))

    @property
    def frames(self) -> int:
        """T, frames per clip."""
        return int(self.clips.shape[1])

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every frame."""
        return tuple(int(s) for s in self.clips.shape[2:])  # type: ignore[return-value]


def existing_video_dump(out: str | Path, wanted: dict[str, Any]) -> VideoDump | None:
    """The complete dump at `out` if it was made as `wanted` says (a rerun skips it); None when
    there is none.

    Raises:
        DataError: `out` holds something else (another source, other options, not a dump).
    """
    return FORMAT.existing(out, VideoDump.open, wanted, "a video dump")


def write_video_dump(out: str | Path, clips: np.ndarray, names: Sequence[str],
                     info: dict[str, Any]) -> VideoDump:
    """Write the dump folder `out` (built as ``OUT.tmp``, renamed when complete).

    Args:
        out: the dump folder to create (it must not exist; see `existing_video_dump`).
        clips: (N, T, H, W, C) uint8. names: N clip ids (no whitespace).
        info: what made it (source and options).
    Returns:
        The written dump, opened.
    """
    out = Path(out)
    clips = np.ascontiguousarray(clips)
    assert clips.dtype == np.uint8 and clips.ndim == 5 and len(names) == len(clips)
    for name in names:
        if not is_one_word(name):
            raise DataError(f"{out}: clip id {name!r} is empty or holds whitespace; rename the "
                            f"clip folder")
    write_dump_folder(
        out, arrays={"clips.npy": clips}, texts={"clips.txt": "".join(f"{n}\n" for n in names)},
        meta_file="info.json", meta={"version": VIDEO_DUMP_VERSION, **info,
                                     "n_clips": int(clips.shape[0]),
                                     "shape": list(clips.shape[1:])})
    return VideoDump.open(out)
