"""Worker processes that end with their parent.

``speechvq dump --nj N`` and ``speechvq prepare builtin --nj N`` hand files to spawned worker
processes. If the parent is killed (``kill -9``, the OOM killer, a closed terminal), a plain
worker does not notice: it keeps decoding, and the pool's resource tracker waits for it. Every
worker therefore starts with `die_with_parent`, a watchdog thread that ends the worker within
half a second of its parent's end (its parent pid changes when the parent is gone). The kernel's
``prctl(PR_SET_PDEATHSIG)`` is not used: it fires when the *thread* that started the worker ends,
and `multiprocessing.Pool` starts replacement workers from a thread that ends before the pool
stops them, so the signal would kill idle workers holding the pool's queue locks. Workers hold
nothing worth saving: the parent commits all results atomically.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["die_with_parent", "worker_initargs", "POLL_S"]

POLL_S = 0.5  # seconds between two looks at the parent pid


def worker_initargs() -> tuple[int]:
    """The ``initargs`` of a pool whose initializer is `die_with_parent`: this process's pid."""
    return (os.getpid(),)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """Pool initializer: end this worker as soon as the process `parent` has ended."""
    if os.getppid() != parent:  # it ended while this worker was starting
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="die_with_parent", daemon=True).start()
