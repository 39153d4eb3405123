"""Encoding in parallel jobs (``--nj N --cmd PREFIX`` of ``speechvq encode`` and ``speechvq
evaluate units``), and the utterance lists (``--utt-list``) each job reads.

`encode_in_jobs` splits the utterances with `speechvq.jobs.split_contiguous` into parts of whole
batches (so every batch, its padding included, is the one a single job makes: the codes are
identical to ``--nj 1``), writes each part's ids to ``keys.JOB`` in a temp folder beside the
output, runs ``speechvq encode --utt-list keys.JOB --out units.JOB.txt [--vectors
vectors.JOB.npz]`` per job (`speechvq.jobs.run_jobs`, logs in ``LOG_DIR/<name>.JOB.log``), and
merges the parts in the utterances' order. The temp folder is removed at the end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from speechvq.data.codes import read_units
from speechvq.errors import DataError
from speechvq.jobs import job_dir, job_threads, run_jobs, split_contiguous

__all__ = ["encode_in_jobs", "read_utt_list", "write_utt_list", "write_vectors"]


def write_utt_list(path: Path, utts: Sequence[str]) -> None:
    """One utterance id per line (the keys of a job; Kaldi's split_scp.pl output, ids only)."""
    path.write_text("".join(f"{u}\n" for u in utts), encoding="utf-8")


def read_utt_list(path: str | os.PathLike, known: Sequence[str]) -> list[str]:
    """The utterances of ``--utt-list FILE``: the first field of each non-empty line (a Kaldi
    table such as wav.scp or utt2spk works as is), in the data's order.

    Raises:
        DataError: the file is missing or empty, or names an utterance the data does not hold.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--utt-list {path} does not exist; give a file with one utterance id "
                        f"per line (e.g. a Kaldi utt2spk)")
    wanted = [ln.split()[0] for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not wanted:
        raise DataError(f"--utt-list {path} is empty; give at least one utterance id")
    have = set(known)
    missing = [u for u in wanted if u not in have]
    if missing:
        raise DataError(f"--utt-list {path}: {len(missing)} utterance(s) not in the data, e.g. "
                        f"{missing[0]!r}; list ids of the --data dir or dump")
    chosen = set(wanted)
    return [u for u in known if u in chosen]


def encode_in_jobs(checkpoint: str | os.PathLike, data_path: str | os.PathLike,
                   utts: Sequence[str], *, nj: int, cmd: str | None, work_dir: Path,
                   log_dir: Path, name: str, batch_size: int = 8, device: str = "auto",
                   vectors: bool = False) -> dict[str, np.ndarray] | tuple[dict, dict]:
    """Codes (and optionally z_e) of `utts`, encoded by `nj` parallel ``speechvq encode`` jobs.

    Args:
        checkpoint: the model's ``.pt`` file (what each job loads).
        data_path: the Kaldi dir or dump the jobs read.
        utts: the utterances, in the order the merged result keeps.
        nj: jobs (fewer when there are fewer batches); cmd: the ``--cmd`` prefix or None.
        work_dir: where the temp folder of keys and partial results goes (the output's folder).
        log_dir: where ``<name>.JOB.log`` go.
        batch_size, device: as `speechvq.encode.encode_utterances`, per job.
        vectors: also return z_e per utterance (each job writes an ``.npz``).
    Returns:
        {utt: (T_codes,) int64} [, {utt: (T_codes, D) float32}], as `encode_utterances`.
    Raises:
        JobError: a job failed (its log is named).
    """
    parts = split_contiguous(list(utts), nj, granule=batch_size)
    with job_dir(work_dir, name) as tmp:
        commands, logs = [], []
        for job, part in enumerate(parts, start=1):
            write_utt_list(tmp / f"keys.{job}", part)
            args = ["encode", "--model", str(checkpoint), "--data", str(data_path),
                    "--utt-list", str(tmp / f"keys.{job}"), "--out", str(tmp / f"units.{job}.txt"),
                    "--batch-size", str(batch_size), "--device", device,
                    "--threads", str(job_threads()), "--no-progress"]
            if vectors:
                args += ["--vectors", str(tmp / f"vectors.{job}.npz")]
            commands.append(args)
            logs.append(log_dir / f"{name}.{job}.log")
        print(f"encode: {len(parts)} jobs of about {len(parts[0])} utterances, logs in "
              f"{log_dir}/{name}.JOB.log", flush=True)
        run_jobs(commands, logs, cmd=cmd, what="encode")
        codes: dict[str, np.ndarray] = {}
        vecs: dict[str, np.ndarray] = {}
        for job in range(1, len(parts) + 1):
            codes.update(read_units(tmp / f"units.{job}.txt"))
            if vectors:
                with np.load(tmp / f"vectors.{job}.npz", allow_pickle=False) as z:
                    vecs.update({u: z[u] for u in z.files})
    codes = {u: codes[u] for u in utts}
    return (codes, {u: vecs[u] for u in utts}) if vectors else codes


def write_vectors(path: str | os.PathLike, vectors: dict[str, np.ndarray]) -> None:
    """z_e per utterance as one ``.npz`` (an array named after each utterance; no pickle),
    written atomically."""
    from speechvq.fileio import atomic_path
    size = sum(v.nbytes for v in vectors.values())
    with atomic_path(path, suffix=".npz", size=size) as tmp, open(tmp, "wb") as f:
        np.savez(f, **vectors)
