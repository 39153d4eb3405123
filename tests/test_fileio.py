"""`speechvq.fileio`, the one atomic writer: rename on success, old file kept and temp removed on
failure, ordinary permissions, fsync before the rename, a stable temp name that a rerun reuses."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from speechvq import fileio
from speechvq.fileio import atomic_path, atomic_save_npy, atomic_write_json, atomic_write_text


def test_atomic_path_renames_with_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "out.bin"  # parents are made
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.bin.")
        assert tmp.name.endswith(".tmp") and tmp.is_file() and not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and os.listdir(target.parent) == ["out.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError, match="mid-write"):
        with atomic_path(target, suffix=".wav") as tmp:
            assert tmp.suffix == ".wav"
            tmp.write_text("half")
            raise RuntimeError("mid-write")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.txt"]


def test_fsync_comes_before_the_rename(tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(fileio, "_fsync", lambda p: events.append(("fsync", p)))
    monkeypatch.setattr(fileio, "_replace", lambda s, d: events.append(("replace", s)) or
                        os.replace(s, d))
    atomic_write_text(tmp_path / "a.txt", "x")
    assert [e[0] for e in events] == ["fsync", "replace"] and events[0][1] == events[1][1]


def test_stable_name_overwrites_what_a_killed_run_left(tmp_path):
    target = tmp_path / "last.pt"
    (tmp_path / ".last.pt.tmp").write_bytes(b"left by a killed run, longer than the new one")
    with atomic_path(target, stable_name=True) as tmp, open(tmp, "wb") as f:
        assert tmp.name == ".last.pt.tmp"
        f.write(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["last.pt"]


def test_helpers_write_what_a_plain_write_would(tmp_path):
    obj = {"b": [1, 2], "a": "é"}
    atomic_write_json(tmp_path / "x.json", obj, indent=1)
    assert (tmp_path / "x.json").read_text(encoding="utf-8") == json.dumps(
        obj, indent=1, sort_keys=True) + "\n"
    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    atomic_save_npy(tmp_path / "a.npy.part", a)  # exactly the name given: no ".npy" appended
    with open(tmp_path / "plain.npy", "wb") as f:
        np.save(f, a, allow_pickle=False)
    assert (tmp_path / "a.npy.part").read_bytes() == (tmp_path / "plain.npy").read_bytes()
