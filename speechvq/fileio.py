"""The one atomic writer: every output goes to a temp file in its folder and is renamed.

A kill at any moment leaves the old file or the new one, never half of one (DESIGN.md,
conventions). `atomic_path` is the mechanism: it yields a temp path beside the target, with the
permissions a plain ``open(path, "w")`` would give (0666 minus the umask; ``tempfile.mkstemp``
alone makes private 0600 files), fsyncs the finished file, renames it onto the target with
`os.replace`, and removes it when the writing fails. Anything that writes to a path (numpy,
torch, soundfile, matplotlib) writes through it; the helpers below cover text, JSON and arrays::

    with atomic_path(out / "figure.png") as tmp:
        fig.savefig(tmp, format="png")

A full disk (ENOSPC, or a quota: EDQUOT) while writing, syncing or renaming is raised as one
`DiskFullError` naming the file, the space it needed (when the writer says, ``size=``) or had
written, and the space left; the partial temp is removed first, so the previous complete file is
intact and the disk is not left fuller. Writers whose own error hides the errno (torch,
libsndfile) are recognised by the file system being full when they fail. `append_text` does the
same for the logs that grow line by line: a line that did not fit is cut off again.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from speechvq.errors import DataError, DiskFullError, OutputError

if TYPE_CHECKING:  # numpy is imported by its one writer: configs and the CLI stay light
    import numpy as np

_FULL = (errno.ENOSPC, errno.EDQUOT)
_NEARLY_FULL = 1 << 20  # bytes free below which a failed write is taken to be a full disk

__all__ = ["read_text", "make_parents", "check_output_kind", "atomic_path", "atomic_write_text",
           "atomic_write_json", "atomic_save_npy", "append_text", "disk_full_error"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # os.umask can only be read by setting it


def _replace(src: str, dst: str) -> None:
    """`os.replace`, kept as one name so a test can inject a crash between write and rename."""
    os.replace(src, dst)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


def _free(path: Path) -> int | None:
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def disk_full_error(exc: BaseException, path: str | os.PathLike, *, size: int | None = None,
                    written: int | None = None, was_full: bool | None = None
                    ) -> DiskFullError | None:
    """The `DiskFullError` that `exc`, raised while writing `path`, stands for, or None.

    Args:
        exc: the writer's exception; a full disk when it (or the error it came from) carries
            ENOSPC or EDQUOT, or when any other error meets a file system with under 1 MB free.
        path: the file the user asked for. size: the bytes the write needed, when known.
        written: the bytes it had written when it failed (said when `size` is unknown).
        was_full: whether the file system was nearly full when `exc` was raised (default:
            whether it is now; a caller that removed the partial file measures it before).
    """
    if isinstance(exc, DiskFullError):
        return exc
    path = Path(path)
    chain, e = [], exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    free = _free(path.parent)
    if was_full is None:
        was_full = free is not None and free < _NEARLY_FULL
    full = any(isinstance(e, OSError) and e.errno in _FULL for e in chain)
    if not full and not (isinstance(exc, Exception) and was_full):
        return None
    need = f"{_mb(size)} needed" if size is not None else \
        f"it needs more than the {_mb(written or 0)} written"
    left = f"{_mb(free)} free" if free is not None else "free space unknown"
    return DiskFullError(f"no space left on the device writing '{path}' ({need}, {left} "
                         f"there); free some space or write elsewhere, then rerun; the partial "
                         f"file was removed and any previous '{path.name}' is intact")


def read_text(path: str | os.PathLike, what: str = "text file",
              error: type[Exception] = DataError) -> str:
    """The UTF-8 text of a user's file (a table, a transcript, units, a config): the one place
    text input is decoded, so invalid bytes are one error naming the line, never a traceback.

    Args:
        path: the file. what: its role for the message. error: the `SpeechVQError` to raise.
    Raises:
        `error`: missing, unreadable, or not UTF-8 (naming the line and the byte).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror or e}); check the path and "
                    f"its permissions") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise error(f"{path}:{line}: the {what} is not valid UTF-8 (byte {data[e.start]:#04x}); "
                    f"re-encode the file as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`)") from None


def _check_parents(path: str | os.PathLike) -> None:
    """Refuse an output below a file (``--exp results.json``, ``--out a.txt/b``); makes
    nothing."""
    parent = Path(path).parent
    for p in (parent, *parent.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise OutputError(f"'{p}' is a file, but the output '{path}' needs it to be a "
                                  f"folder; choose another output path; nothing was changed")
            return


def make_parents(path: str | os.PathLike) -> None:
    """Make the folders above `path`.

    Raises:
        OutputError: one of them exists as a file.
    """
    _check_parents(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def check_output_kind(path: str | os.PathLike, kind: str) -> None:
    """Refuse an output that exists as the other kind: a folder where a file (``kind="file"``)
    is written, or a file where a folder (``kind="dir"``) is made, or a file above it; checked
    before any work, making nothing.

    Raises:
        OutputError: naming the path and what it should be.
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise OutputError(f"output '{path}' is a folder; this output is a file: give a file "
                          f"name (e.g. '{path / 'units.txt'}'); nothing was changed")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise OutputError(f"output '{path}' is a file; this output is a folder: give a folder "
                          f"name (or remove the file); nothing was changed")
    _check_parents(path)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", *,
                stable_name: bool = False, size: int | None = None) -> Iterator[Path]:
    """Write `path` atomically: yield a temp path in the same folder, rename it onto `path` when
    the block ends without error (after an fsync of the file), remove it when the block raises.

    Args:
        path: the file to make; its parents are made.
        suffix: end of the temp name; writers that pick the format from the extension
            (soundfile) need ``path.suffix``.
        stable_name: the temp is ``.NAME<suffix>`` instead of a unique name, so a rerun
            overwrites the temp a killed run left (for large files such as checkpoints; only
            one writer per target may use it).
        size: the bytes the file will take, when known, for the message of a full disk.
    Yields:
        The temp path (an empty file, unless `stable_name` and a killed run left one).
    Raises:
        DiskFullError: the disk filled up (see the module docstring); the temp is removed.
    """
    path = Path(path)
    check_output_kind(path, "file")
    make_parents(path)
    if stable_name:
        tmp = str(path.with_name(f".{path.name}{suffix}"))
    else:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        _fsync(tmp)
        _replace(tmp, str(path))
    except BaseException as e:
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        free = _free(path.parent)
        if os.path.exists(tmp):
            os.unlink(tmp)  # first: the space it held is free again when the message says
        full = disk_full_error(e, path, size=size, written=written,
                               was_full=free is not None and free < _NEARLY_FULL)
        if full is None or full is e:
            raise
        raise full from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text (``\\n`` line ends) to `path` atomically; parents are made."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write `obj` as JSON with sorted keys, `indent` spaces and a final newline, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: "np.ndarray", *,
                    stable_name: bool = False) -> None:
    """Write `array` as a ``.npy`` file (no pickle) at exactly `path`, atomically
    (`stable_name` as `atomic_path`'s)."""
    with atomic_path(path, stable_name=stable_name, size=array.nbytes + 128) as tmp, \
            open(tmp, "wb") as f:
        import numpy as np
        np.save(f, array, allow_pickle=False)


def atomic_save_png(path: str | os.PathLike, image: "np.ndarray") -> None:
    """Write an (H, W, C) uint8 image (C = 1 or 3) as a PNG at `path`, atomically."""
    import numpy as np
    from PIL import Image

    image = np.asarray(image, np.uint8)
    mode = "L" if image.shape[-1] == 1 else "RGB"
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image[..., 0] if mode == "L" else image, mode=mode).save(tmp, "PNG")


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append UTF-8 `text` to `path` (a log: metrics.jsonl, train.log, cmdline.txt), made if
    missing. On a full disk the file is cut back to its old length (no torn line stays) and
    `DiskFullError` is raised."""
    path = Path(path)
    data = text.encode("utf-8")
    with open(path, "ab") as f:
        start = f.tell()
        try:
            f.write(data)
            f.flush()
        except OSError as e:
            f.truncate(start)
            full = disk_full_error(e, path, size=len(data))
            if full is None:
                raise
            raise full from None
