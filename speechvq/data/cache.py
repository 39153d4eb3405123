"""Where speechvq caches what it generates (the built-in speech corpus, the built-in images and
video): ``$SPEECHVQ_CACHE``, default ``~/.cache/speechvq`` (DESIGN.md, data flow), and how a
generated set of split dumps is cached and handed out.

    folder = cached_splits("images", "v1-tiny-seed0", ("train", "test"), write_split)
    link_split(folder / "train", out / "train")    # hard links (or copies), renamed into place
    prepare_cached(out, "images", "v1-tiny-seed0", ("train", "test"), done, write_split, check)
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Sequence


def cache_root() -> Path:
    """``$SPEECHVQ_CACHE`` or ``~/.cache/speechvq``."""
    return Path(os.environ.get("SPEECHVQ_CACHE") or Path.home() / ".cache" / "speechvq")


def cached_splits(kind: str, name: str, splits: Sequence[str],
                  write_split: Callable[[Path, str], None]) -> Path:
    """``cache_root()/kind/name``, holding one dump folder per split (each complete when its
    ``info.json`` is there), generated first when missing: `write_split(folder, split)` writes
    each into a temp dir, which is renamed when all are written (a concurrent run that renamed
    its copy first wins).
    """
    root = cache_root() / kind
    final = root / name
    if all((final / s / "info.json").is_file() for s in splits):
        return final
    tmp = root / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        for split in splits:
            write_split(tmp / split, split)
        shutil.rmtree(final, ignore_errors=True)  # an incomplete one
        try:
            os.rename(tmp, final)
        except OSError:  # another run renamed its copy first
            if not all((final / s / "info.json").is_file() for s in splits):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def link_split(src: Path, out: Path) -> None:
    """The dump folder `src` as `out`: its files hard-linked (or copied, across file systems)
    into ``OUT.tmp-<pid>``, which is renamed to `out`."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        try:
            os.link(f, tmp / f.name)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(f, tmp / f.name)
    tmp.rename(out)


def prepare_cached(out: Path, kind: str, name: str, splits: Sequence[str],
                   done: Callable[[Path, str], bool], write_split: Callable[[Path, str], None],
                   check: Callable[[Path], object], use_cache: bool = True) -> dict[str, Path]:
    """One dump per split under `out`, for a built-in set: splits `done(folder, split)` says
    are complete are kept; the others are written afresh (``use_cache=False``) or linked from
    `cached_splits` and opened with `check` (a cache someone damaged is refused here, not in
    training). Returns {split: folder}."""
    result = {s: out / s for s in splits}
    todo = [s for s in splits if not done(out / s, s)]
    if todo and not use_cache:
        for split in todo:
            write_split(out / split, split)
    elif todo:
        cache = cached_splits(kind, name, splits, write_split)
        for split in todo:
            link_split(cache / split, out / split)
            check(out / split)
    return result
