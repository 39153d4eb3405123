"""Exclusive locks on outputs: one run at a time writes a dump, an exp dir or an output file.

Every command that writes an output takes `output_lock(OUT)` before it looks at OUT: an
``fcntl.flock`` on ``OUT.lock`` beside it, a file holding the pid, host and command of the run
that has it. A second run on the same OUT is refused at once with `LockedError` (exit status 2)
naming that run. The kernel drops a flock when the process that holds it ends, however it ends
(``kill -9`` included), so a lock left by a killed run never blocks: the next run simply takes it.

The holder removes ``OUT.lock`` when it is done. A run that opened the file just before it was
removed and locked it just after finds the path gone or pointing at a newer file, and starts
again on the path, so two runs never hold locks on two different files for one OUT. Locks are
re-entrant within a process (a command and the library function it calls may both take the lock
of one OUT). flock works on local file systems and, on Linux, on NFS v4 (emulated there with
POSIX locks); the lock file is opened close-on-exec, so spawned workers do not inherit it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from speechvq.errors import LockedError, OutputError
from speechvq.fileio import make_parents

__all__ = ["output_lock", "lock_path", "LockedError"]

_HELD: dict[str, int] = {}  # lock file -> how many nested `output_lock` blocks hold it here


def lock_path(target: str | os.PathLike) -> Path:
    """``OUT.lock``, beside `target` (an absolute path; `target` need not exist)."""
    target = Path(os.path.abspath(target))
    return target.with_name(target.name + ".lock")


def _command(command: Sequence[str] | None) -> str:
    if command is None:
        argv = list(sys.argv)
        if argv and argv[0]:
            name = Path(argv[0]).name
            argv[0] = "speechvq" if name in ("__main__.py", "-c") else name
        command = argv
    return shlex.join(command)


def _acquire(path: Path, target: Path) -> int:
    """An fd of `path` holding its flock (LockedError when another process holds it)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise OutputError(f"lock file '{path}' is a link; remove it (speechvq makes its "
                                  f"own); nothing was changed") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            # the holder writes who it is right after taking the lock: give it a moment
            for _ in range(100):
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
                if holder:
                    break
                time.sleep(0.02)
            os.close(fd)
            raise LockedError(f"'{target}' is being written by another run ("
                              f"{holder or 'it has not said who it is yet'}); wait for it to "
                              f"finish or choose another output; nothing was changed") from None
        try:  # the previous holder may have removed the file between our open and our flock
            st, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def output_lock(target: str | os.PathLike, command: Sequence[str] | None = None
                ) -> Iterator[Path]:
    """Hold the exclusive lock of `target` (``target.lock``) for the block.

    Args:
        target: the output (a file or folder; it need not exist). Its parent is made for the
            lock file, and removed again at the end if it is still empty.
        command: what the lock file says the holder runs (default: this process's argv).
    Yields:
        The lock file's path.
    Raises:
        LockedError: another live process holds the lock (the message names its pid, host,
            start time and command).
    """
    path = lock_path(target)
    key = str(path)
    if key in _HELD:  # this process holds it already
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    made = [p for p in path.parents if not p.exists()]  # deepest first; removed again if empty
    make_parents(path)  # a parent that is a file: OutputError
    try:
        fd = _acquire(path, Path(target))
    except BaseException:
        _remove_empty(made)
        raise
    holder = (f"pid {os.getpid()} on {socket.gethostname()}, since "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {_command(command)}")
    os.ftruncate(fd, 0)
    os.pwrite(fd, (holder + "\n").encode("utf-8"), 0)
    _HELD[key] = 1
    try:
        yield path
    finally:
        del _HELD[key]
        try:
            os.unlink(path)  # while still locked: a waiting opener retries on a fresh file
        except FileNotFoundError:
            pass
        os.close(fd)
        _remove_empty(made)  # a refused or failed run leaves no empty folders behind


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (the command wrote there), or gone
            return
