"""Parallel jobs (`speechvq.jobs`, ``--nj N --cmd PREFIX``): the Kaldi-style split, the job
runner and its logs, local jobs that end with their parent, and ``speechvq encode --nj 2``
giving the same units as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from speechvq import cli
from speechvq.data.codes import read_units
from speechvq.jobs import PARENT_ENV, JobError, in_jobs, run_jobs, split_contiguous


def test_split_is_contiguous_balanced_and_in_whole_batches():
    items = list(range(10))
    parts = split_contiguous(items, 3)
    assert parts == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]       # as split_scp.pl: first ones larger
    assert split_contiguous(items, 3, granule=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert split_contiguous(items, 2, granule=4) == [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9]]
    assert split_contiguous(items, 20) == [[i] for i in items]  # never an empty job
    assert split_contiguous([], 4) == []
    for nj in range(1, 12):
        for granule in (1, 3):
            parts = split_contiguous(items, nj, granule)
            assert [x for p in parts for x in p] == items
            assert all(len(p) % granule == 0 for p in parts[:-1])


def test_one_local_part_runs_in_the_command_itself():
    assert not in_jobs(8, 2, 8, None)         # one batch: nothing to share out
    assert in_jobs(9, 2, 8, None)
    assert in_jobs(8, 2, 8, "srun")           # --cmd: the prefix runs it, even as one job
    assert not in_jobs(100, 1, 8, "srun") and not in_jobs(0, 4, 8, None)


def test_jobs_run_through_the_prefix_with_logs_and_a_failure_names_its_log(tmp_path):
    logs = [tmp_path / "log" / f"x.{j}.log" for j in (1, 2)]
    run_jobs([["--version"], ["--version"]], logs, cmd="nice -n 1")
    for log in logs:
        first, *middle, last = log.read_text().splitlines()
        assert first.startswith("# nice -n 1 ") and first.endswith("speechvq --version")
        assert any(line.startswith("speechvq ") for line in middle)
        assert last.startswith("# Ended (code 0)")
    with pytest.raises(JobError, match=r"job 2 of 2 failed with exit status 2: .*invalid "
                                       r"choice.*; see .*x\.2\.log"):
        run_jobs([["--version"], ["no-such-command"]], logs, what="test")
    with pytest.raises(JobError, match="cannot start"):
        run_jobs([["--version"]], logs[:1], cmd="/no/such/launcher")


def test_a_local_job_ends_when_its_parent_is_gone():
    """The child's main watches the pid the runner gives it (`speechvq.workers.die_with_parent`)."""
    cmd = [sys.executable, "-m", "speechvq", "--version"]
    ok = subprocess.run(cmd, env={**os.environ, PARENT_ENV: str(os.getpid())},
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("speechvq ")
    orphan = subprocess.run(cmd, env={**os.environ, PARENT_ENV: "1"}, capture_output=True,
                            text=True)   # its parent is not pid 1: as if the parent had ended
    assert orphan.returncode == 1 and orphan.stdout == ""


def test_encode_in_two_jobs_equals_one(eval_corpus, tmp_path, capsys):
    exp, test = eval_corpus["exp"], eval_corpus["test"]
    common = ["encode", "--model", str(exp), "--data", str(test), "--batch-size", "2",
              "--no-progress"]
    assert cli.main([*common, "--out", str(tmp_path / "one" / "u.txt")]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "two" / "u.txt"), "--nj", "2"]) == 0
    assert "encode: 2 jobs of about 4 utterances" in capsys.readouterr().out
    one, two = (tmp_path / "one" / "u.txt").read_text(), (tmp_path / "two" / "u.txt").read_text()
    assert one == two and len(one.splitlines()) == 8
    assert sorted(p.name for p in (tmp_path / "two" / "log").iterdir()) == [
        "encode_u.1.log", "encode_u.2.log"]
    assert not [p for p in (tmp_path / "two").iterdir() if ".jobs." in p.name]  # split removed

    # what a job runs: a subset (--utt-list, any Kaldi table) and z_e beside the codes
    units = read_units(tmp_path / "one" / "u.txt")
    keys = tmp_path / "keys"
    keys.write_text("spk2_s5 x\nspk1_s4 y\n")
    assert cli.main([*common, "--out", str(tmp_path / "sub.txt"), "--utt-list", str(keys),
                     "--vectors", str(tmp_path / "z.npz")]) == 0
    sub = read_units(tmp_path / "sub.txt")
    assert list(sub) == ["spk1_s4", "spk2_s5"]
    assert all(np.array_equal(sub[u], units[u]) for u in sub)
    with np.load(tmp_path / "z.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["spk1_s4", "spk2_s5"]
        assert z["spk1_s4"].shape[0] == len(sub["spk1_s4"])
    keys.write_text("nobody\n")
    assert cli.main([*common, "--out", str(tmp_path / "bad.txt"), "--utt-list", str(keys)]) == 2
    assert "not in the data, e.g. 'nobody'" in capsys.readouterr().err
    assert not (tmp_path / "bad.txt").exists()


def test_pairs_files_round_trip_and_bad_lines_are_named(tmp_path):
    from speechvq.convert_jobs import read_pairs, write_pairs
    from speechvq.errors import DataError

    pairs = [("s2-u1", "u1", "s2"), ("s1-u2", "u2", "s1")]
    write_pairs(tmp_path / "p", pairs)
    assert read_pairs(tmp_path / "p") == sorted(pairs)
    (tmp_path / "bad").write_text("s1-u2 u2 s1\ns2-u1 u1\n")
    with pytest.raises(DataError, match=r"bad:2: expected `<output utt> <source utt>"):
        read_pairs(tmp_path / "bad")
    with pytest.raises(DataError, match="does not exist"):
        read_pairs(tmp_path / "none")
