"""Faults: a full disk (ENOSPC injected where the writes fail) and workers whose parent is killed.

A full disk must end in one line naming the file and the space needed (exit 2), with the partial
file removed and the previous complete output intact; the workers of ``dump --nj 2`` must end
with their parent."""

from __future__ import annotations

import errno
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import speechvq.data.speech.dump as dump_mod
from speechvq import cli, fileio
from speechvq.audio import save_audio
from speechvq.checkpoint import load_checkpoint, save_checkpoint
from speechvq.errors import DiskFullError

TESTS = Path(__file__).resolve().parent
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------ the writers

WRITERS = {  # name -> (file name, write it)
    "text": ("units.txt", lambda p: fileio.atomic_write_text(p, "utt 1 2 3\n")),
    "npy": ("phones.npy", lambda p: fileio.atomic_save_npy(p, np.arange(5000))),
    "checkpoint": ("last.pt", lambda p: save_checkpoint({"model": {}, "config": {}}, p)),
    "audio": ("out.wav", lambda p: save_audio(p, np.zeros(1600, np.float32), 16000)),
}


@pytest.mark.parametrize("writer, where", [*((w, "sync") for w in WRITERS),
                                           *((w, "writer") for w in WRITERS if w != "text")])
def test_full_disk_keeps_the_previous_file_and_leaves_no_partial(writer, where, tmp_path,
                                                                monkeypatch):
    name, write = WRITERS[writer]
    path = tmp_path / name
    write(path)
    before = path.read_bytes()
    if where == "sync":  # ENOSPC from the file system itself (fsync reports delayed writes)
        monkeypatch.setattr(fileio, "_fsync", lambda p: (_ for _ in ()).throw(ENOSPC))
    else:  # the writer's own error (torch, libsndfile hide the errno) on a full file system
        monkeypatch.setattr(fileio, "_free", lambda p: 0)
        broken = RuntimeError("file write failed")
        monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(broken))
        monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(broken))
        monkeypatch.setattr(sf, "write", lambda *a, **k: (_ for _ in ()).throw(broken))
    with pytest.raises(DiskFullError, match=f"no space left on the device writing '{path}' "
                                            f".*needed|written.*; the partial file was removed"):
        write(path)
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def test_full_disk_in_a_log_cuts_the_torn_line(tmp_path, monkeypatch):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1}\n')
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def tell(self):
            return self.f.tell()

        def truncate(self, n):
            return self.f.truncate(n)

        def write(self, data):
            self.f.write(data[:3])  # part of the line made it to the disk
            self.f.flush()
            raise ENOSPC

        def flush(self):
            self.f.flush()

    monkeypatch.setattr(fileio, "open", lambda *a, **k: Full(real_open(*a, **k)), raising=False)
    with pytest.raises(DiskFullError, match="metrics.jsonl' .12 bytes needed"):
        fileio.append_text(log, '{"step": 2}\n')
    assert log.read_text() == '{"step": 1}\n'


# ----------------------------------------------------------------------------- the commands


def test_dump_on_a_full_disk_is_one_line_and_resumes(tiny_data_dir, tmp_path, monkeypatch,
                                                     capsys):
    out = tmp_path / "dump"
    monkeypatch.setattr(dump_mod.os, "posix_fallocate",
                        lambda fd, off, n: (_ for _ in ()).throw(ENOSPC))
    assert cli.main(["dump", str(tiny_data_dir), str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(rf"writing '{out}.tmp/audio.npy' \(64\d\d\d bytes needed", err), err
    assert "finished parts stay in" in err
    assert not out.exists() and not (tmp_path / "dump.tmp" / "audio.npy").exists()
    monkeypatch.undo()
    assert cli.main(["dump", str(tiny_data_dir), str(out), "--no-progress"]) == 0
    assert cli.main(["validate", str(out)]) == 0


def test_a_full_disk_anywhere_else_is_one_line(monkeypatch, tmp_path, capsys):
    from speechvq.cli import data

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x"))

    monkeypatch.setattr(data, "cmd_validate", full)
    assert cli.main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"speechvq validate: error: no space left on the device "
                                       f"writing '{tmp_path / 'x'}'; free some space or write "
                                       f"elsewhere, then rerun\n")


def test_training_on_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from test_trainer import make

    make(tmp_path, ["train.max_steps=2"]).fit()
    last = tmp_path / "checkpoints" / "last.pt"
    real = fileio._fsync

    def full_on_checkpoints(p):
        if p.endswith(".pt.tmp"):
            raise ENOSPC
        real(p)

    monkeypatch.setattr(fileio, "_fsync", full_on_checkpoints)
    with pytest.raises(DiskFullError, match="step_00000004.pt' .it needs more than the"):
        make(tmp_path, ["train.max_steps=4"]).fit()
    assert load_checkpoint(last)["step"] == 2 and _leftovers(last.parent) == []


# ------------------------------------------------------------------------------ the workers


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        todo += list(kids - found)
        found |= kids
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find workers")
def test_dump_workers_end_with_their_killed_parent(tiny_data_dir, tmp_path):
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # RDWR: no EOF between two writers
    env = {**os.environ, "SPEECHVQ_TEST_FIFO": str(fifo),
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    code = "import sys, faultworkers; sys.exit(faultworkers.run_blocking_dump(sys.argv[1:]))"
    parent = subprocess.Popen([sys.executable, "-c", code, str(tiny_data_dir),
                               str(tmp_path / "dump")], env=env)
    try:
        started = b""
        while started.count(b"\n") < 2:  # both workers are in their first file
            assert select.select([reader], [], [], 60)[0], "the workers did not start"
            started += os.read(reader, 64)
        workers = {int(x) for x in started.split()}
        family = _descendants(parent.pid)
        assert workers <= family  # and the pool's resource tracker, when it has one
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(60)
        os.close(reader)
    deadline = time.monotonic() + 10  # they sleep 600 s: only dying with the parent ends them
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in family if _alive(p)]
