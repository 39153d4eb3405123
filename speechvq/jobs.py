"""Parallel jobs as Kaldi and ESPnet run them: ``--nj N`` and ``--cmd PREFIX``.

A command given ``--nj N`` splits its utterances into N contiguous, balanced parts (as Kaldi's
``utils/split_data.sh`` and ``split_scp.pl`` do, by utterance, in the data's sorted order), runs
one ``speechvq`` process per part, and merges their results in order. The split and the jobs'
partial results live in a temp folder beside the command's output (never inside an input dir)
and are removed at the end; each job's output goes to ``log/<what>.JOB.log`` there, with the
command on its first line and the exit status on its last, as Kaldi's run.pl writes them.

``--cmd PREFIX`` runs each job as ``PREFIX speechvq ...`` (for example ``srun --ntasks=1`` or
``queue.pl``-style wrappers: ESPnet's cmd.sh); by default (no prefix) they are local processes.
Each job gets ``--threads`` (by default max(1, cores // nj), `speechvq.cli.common.apply_threads`)
so N jobs do not oversubscribe the CPU.

Local jobs end with their parent (`speechvq.workers.die_with_parent`, started by the child's
``main`` when `PARENT_ENV` names its parent): a killed parent leaves no job running. A job run
through a ``--cmd`` prefix has another parent (srun, a queue client), so there the prefix's own
rules apply; the parent still stops its jobs when it is interrupted or terminated.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence, TypeVar

from speechvq.errors import ConfigError, SpeechVQError

__all__ = ["JobError", "PARENT_ENV", "split_contiguous", "in_jobs", "speechvq_executable",
           "parse_cmd", "run_jobs", "job_threads", "job_dir"]

PARENT_ENV = "SPEECHVQ_JOB_PARENT"  # a local job's parent pid (the child watches it)

T = TypeVar("T")


class JobError(SpeechVQError):
    """One or more parallel jobs failed; the message names their logs."""


def split_contiguous(items: Sequence[T], nj: int, granule: int = 1) -> list[list[T]]:
    """`items` cut into at most `nj` contiguous parts of balanced size (Kaldi's split_scp.pl).

    Args:
        items: what is split, in order (utterance ids, conversion pairs).
        nj: parts wanted; fewer when there are fewer granules than jobs (no part is empty).
        granule: parts hold whole runs of this many items (the last run may be shorter): a
            command that batches its items gives each job whole batches, so every batch, and
            with it the result, is the same as with one job.
    Returns:
        The parts, in order; their concatenation is `items`.
    """
    if nj < 1 or granule < 1:
        raise ConfigError(f"--nj must be at least 1, got {nj}")
    runs = [list(items[k:k + granule]) for k in range(0, len(items), granule)]
    n = min(nj, len(runs))
    base, extra = divmod(len(runs), n) if n else (0, 0)
    parts, start = [], 0
    for j in range(n):
        size = base + (1 if j < extra else 0)
        parts.append([x for run in runs[start:start + size] for x in run])
        start += size
    return parts


@contextmanager
def job_dir(parent: Path, name: str) -> Iterator[Path]:
    """A temp folder ``parent/.NAME.jobs.<random suffix>`` for the split and the jobs' partial
    results, removed at the end. The caller holds the lock of the output these jobs make (NAME
    is derived from it), so a folder of the same name left by a killed run is stale and is
    removed first."""
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f".{name}.jobs.*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=f".{name}.jobs.") as tmp:
        yield Path(tmp)


def in_jobs(n_items: int, nj: int, granule: int, cmd: str | None) -> bool:
    """Whether a command runs `n_items` as parallel jobs: yes with ``--cmd`` (the user wants
    them run by the prefix) or when they make more than one part; a single local part runs in
    the command's own process, as ``--nj 1``, with the same result and no process start."""
    n_parts = min(nj, -(-n_items // granule))
    return nj > 1 and n_items > 0 and (bool(cmd) or n_parts > 1)


def speechvq_executable() -> list[str]:
    """How a job starts ``speechvq``: the console script beside this interpreter, else
    ``python -m speechvq`` (the same installation either way)."""
    script = Path(sys.executable).parent / "speechvq"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "speechvq"]


def parse_cmd(cmd: str | None) -> list[str]:
    """The words of a ``--cmd`` prefix (shell quoting rules); [] for local jobs."""
    try:
        return shlex.split(cmd or "")
    except ValueError as e:
        raise ConfigError(f"--cmd {cmd!r} is not a valid command prefix ({e}); quote it as one "
                          f"shell word, e.g. --cmd 'srun --ntasks=1'") from None


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("# ")]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


class _Stop(Exception):
    """SIGTERM while jobs run: stop them, then end as terminated."""


def run_jobs(commands: Sequence[Sequence[str]], logs: Sequence[Path], *,
             cmd: str | None = None, what: str = "job") -> None:
    """Run one ``speechvq`` job per command (its arguments after ``speechvq``) and wait for all.

    Args:
        commands: per job, the ``speechvq`` arguments (e.g. ``["encode", "--model", ...]``).
        logs: per job, the log file (stdout and stderr); parents are made, old logs replaced.
        cmd: the ``--cmd`` prefix (None or "": local processes that end with this one).
        what: the jobs' name in messages (``encode``).
    Raises:
        JobError: a job failed (after every job has ended), naming its log and last line.
    """
    prefix = parse_cmd(cmd)
    env = dict(os.environ)
    if prefix:
        env.pop(PARENT_ENV, None)
    else:
        env[PARENT_ENV] = str(os.getpid())
    procs: list[tuple[subprocess.Popen, Path, float]] = []
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):
        raise _Stop()

    in_main = _is_main_thread()  # signal handlers can only be set there
    if in_main:
        signal.signal(signal.SIGTERM, stop)
    try:
        for job, (args, log) in enumerate(zip(commands, logs), start=1):
            argv = [*prefix, *speechvq_executable(), *map(str, args)]
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w", encoding="utf-8") as f:
                f.write(f"# {shlex.join(argv)}\n# Started at {time.ctime()}\n")
                f.flush()
                try:
                    proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL)
                except OSError as e:
                    raise JobError(f"{what} job {job}: cannot start {argv[0]!r} ({e}); check "
                                   f"--cmd {cmd!r}") from None
            procs.append((proc, log, time.time()))
        failed = []
        for job, (proc, log, start) in enumerate(procs, start=1):
            rc = proc.wait()
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"# Accounting: time={time.time() - start:.0f} threads="
                        f"{env.get('OMP_NUM_THREADS', 'default')}\n"
                        f"# Ended (code {rc}) at {time.ctime()}, elapsed time "
                        f"{time.time() - start:.0f} seconds\n")
            if rc != 0:
                failed.append((job, rc, log))
    except _Stop:
        _terminate(procs)
        raise SystemExit(128 + signal.SIGTERM) from None
    except BaseException:  # Ctrl-C, an error starting a job: no job outlives the command
        _terminate(procs)
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    if failed:
        job, rc, log = failed[0]
        line = _last_line(log)
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise JobError(f"{what} job {job} of {len(procs)} failed with exit status {rc}{more}"
                       f"{': ' + line if line else ''}; see {log}")


def job_threads() -> int:
    """The ``--threads`` each job gets: OMP_NUM_THREADS, which the command's ``--threads`` or
    its cores // --nj default has set (`speechvq.cli.common.apply_threads`), else cores // 1."""
    from speechvq.device import cpu_cores
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return cpu_cores()


def _is_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _terminate(procs: Sequence[tuple[subprocess.Popen, Path, float]]) -> None:
    """Stop every job still running: SIGTERM, then SIGKILL after a grace period."""
    for proc, _, _ in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.time() + 5
    for proc, _, _ in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
