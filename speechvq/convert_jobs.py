"""Voice conversion in parallel jobs (``speechvq convert --data ... --nj N --cmd PREFIX``), and
the pairs files (``--pairs``) each job reads.

`convert_in_jobs` takes the conversions still to make, in the order one process would make
them (long sources first), cuts them into contiguous parts of whole batches
(`speechvq.jobs.split_contiguous`) and runs ``speechvq convert --pairs pairs.JOB --out
out.JOB --seed SEED+OFFSET`` per part, OFFSET being the part's first position: every batch, and
the seed of its WaveNet sampling, is then the one a single process uses, so the wavs are the
same as with ``--nj 1``. The jobs write into a temp folder inside the output dir; their wavs are
moved into ``DIR/wav/`` and the folder removed; logs go to ``DIR/log/convert.JOB.log``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from speechvq.errors import DataError
from speechvq.jobs import job_dir, job_threads, run_jobs, split_contiguous

__all__ = ["convert_in_jobs", "read_pairs", "write_pairs"]

Pair = tuple[str, str, str]  # (output utt id, source utt, target speaker)


def write_pairs(path: Path, pairs: Sequence[Pair]) -> None:
    """One conversion per line: ``<output utt> <source utt> <target speaker>``."""
    path.write_text("".join(f"{new} {src} {tgt}\n" for new, src, tgt in pairs), encoding="utf-8")


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """The conversions of ``--pairs FILE`` (`write_pairs`' format), sorted by output id.

    Raises:
        DataError: the file is missing or empty, or a line does not have three fields.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--pairs {path} does not exist; give a file of lines "
                        f"`<output utt> <source utt> <target speaker>`")
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DataError(f"{path}:{n}: expected `<output utt> <source utt> <target speaker>`, "
                            f"got {line[:80]!r}")
        pairs.append((fields[0], fields[1], fields[2]))
    if not pairs:
        raise DataError(f"--pairs {path} is empty; list at least one conversion")
    return sorted(pairs)


def convert_in_jobs(todo: Sequence[Pair], *, nj: int, cmd: str | None, checkpoint: Path,
                    data_path: str | os.PathLike, out: Path, head: str, temperature: float,
                    seed: int, batch_size: int, device: str, engine: str | None) -> None:
    """Make the wavs of `todo` (in one process's order) in ``out/wav/`` with `nj` jobs.

    Raises:
        JobError: a job failed (its log is named); the wavs of the jobs that finished are kept
            (a rerun keeps them, as after an interrupted run).
    """
    parts = split_contiguous(list(todo), nj, granule=batch_size)
    wav_dir = out / "wav"
    with job_dir(out, "convert") as tmp:
        commands, logs, offset = [], [], 0
        for job, part in enumerate(parts, start=1):
            write_pairs(tmp / f"pairs.{job}", part)
            args = ["convert", "--model", str(checkpoint), "--data", str(data_path),
                    "--pairs", str(tmp / f"pairs.{job}"), "--out", str(tmp / f"out.{job}"),
                    "--head", head, "--temperature", repr(float(temperature)),
                    "--seed", str(seed + offset), "--batch-size", str(batch_size),
                    "--device", device, "--threads", str(job_threads()), "--no-progress"]
            if engine is not None:
                args += ["--engine", engine]
            commands.append(args)
            logs.append(out / "log" / f"convert.{job}.log")
            offset += len(part)
        print(f"convert: {len(parts)} jobs of about {len(parts[0])} conversions, logs in "
              f"{out / 'log'}/convert.JOB.log", flush=True)
        try:
            run_jobs(commands, logs, cmd=cmd, what="convert")
        finally:  # finished jobs' wavs are kept either way
            for job, part in enumerate(parts, start=1):
                for new, _, _ in part:
                    made = tmp / f"out.{job}" / "wav" / f"{new}.wav"
                    if made.is_file():
                        os.replace(made, wav_dir / f"{new}.wav")
