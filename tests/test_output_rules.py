"""The output rules (speechvq.ownership) and the lock, command by command: every writing
command takes its output's lock; an output is never one of its inputs; only what the command
made is replaced; writes never follow a link out of the output dir. Each refusal names the path,
says "nothing was changed", exits 2, and is checked to have changed nothing."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechvq import cli
from speechvq.errors import OutputError
from speechvq.locks import output_lock
from speechvq.ownership import MARKER, claim

SPAWN = mp.get_context("spawn")
WAIT = 60


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for folders and links): what "nothing was
    changed" compares."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = None if p.is_dir() or p.is_symlink() \
                else p.read_bytes()
    return out


def refused(argv: list[str], capsys, *needles: str) -> str:
    """Run `speechvq ARGV`; it must exit 2 with one line holding every needle."""
    assert cli.main(argv) == 2, argv
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def speaker_folder(root: Path) -> Path:
    """A corpus for `prepare folder`: <speaker>/<utt>.wav."""
    (root / "spk1").mkdir(parents=True)
    sf.write(root / "spk1" / "spk1_a.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    return root


# ------------------------------------------------------------------------ every command locks


def _hold_all(targets: list[str], ready, release) -> None:
    from contextlib import ExitStack
    with ExitStack() as stack:
        for t in targets:
            stack.enter_context(output_lock(t, command=["holder"]))
        ready.set()
        release.wait(WAIT)


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """A folder whose outputs another process holds the locks of, for as long as the module."""
    root = tmp_path_factory.mktemp("busy")
    (root / "rep").mkdir()
    speaker_folder(root / "src")
    targets = ["prep", "dump", "exp", "units.txt", "out.wav", "conv", "ev/eval", "rep/report"]
    ready, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=_hold_all, args=([str(root / t) for t in targets], ready,
                                                   release))
    holder.start()
    assert ready.wait(WAIT)
    yield root
    release.set()
    holder.join(WAIT)


COMMANDS = {  # the command line writing each held output (M: the model, R: the busy folder)
    "prepare": "prepare folder R/src R/prep --no-progress",
    "dump": "dump R/nowhere R/dump",
    "train": "train --data R/nowhere --exp R/exp",
    "encode": "encode --model M --data R/nowhere --out R/units.txt",
    "convert": "convert --model M --src R/nowhere.wav --speaker spk1 -o R/out.wav",
    "convert --data": "convert --model M --data R/nowhere --speakers spk1 --out R/conv",
    "evaluate units": "evaluate units --units R/u.txt --frame-rate 50 --alignments R/a "
                      "--exp R/ev",
    "evaluate conversion": "evaluate conversion --model M --data R/c --ref R/r --exp R/ev",
    "report": "report --exp R/rep",
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_its_outputs_lock(command, busy, eval_corpus, capsys):
    before = tree(busy)
    argv = [w.replace("R/", f"{busy}/").replace("M", str(eval_corpus["exp"]))
            for w in COMMANDS[command].split()]
    refused(argv, capsys, "is being written by another run (pid ", "holder",
            "nothing was changed")
    assert tree(busy) == before


# -------------------------------------------------------------- rule 1: outputs are not inputs


def test_an_output_is_never_one_of_its_inputs(eval_corpus, tmp_path, capsys):
    exp, test = eval_corpus["exp"], eval_corpus["test"]
    data = tmp_path / "data"
    speaker_folder(data)
    wav = data / "spk1" / "spk1_a.wav"
    ckpt = exp / "checkpoints" / "last.pt"
    before, ckpt_bytes = tree(data), ckpt.read_bytes()
    refused(["encode", "--model", str(exp), "--data", str(test), "--out", str(ckpt)], capsys,
            f"output '{ckpt}' is also an input", "nothing was changed")
    refused(["encode", "--model", str(exp), "--data", str(test), "--out",
             str(test / "wav.scp")], capsys, f"is inside the input '{test}'")
    refused(["convert", "--model", str(exp), "--src", str(wav), "--speaker", "spk1", "-o",
             str(wav)], capsys, f"output '{wav}' is also an input")
    refused(["convert", "--model", str(exp), "--data", str(test), "--speakers", "spk1",
             "--out", str(test / "conv")], capsys, "is inside the input")
    refused(["prepare", "folder", str(data), str(data), "--no-progress"], capsys,
            f"output '{data / 'all'}' is inside the input '{data}'")
    refused(["train", "--data", str(data), "--exp", str(tmp_path)], capsys,
            f"holds the input '{data}'")
    assert tree(data) == before and ckpt.read_bytes() == ckpt_bytes


# ------------------------------------------------ rule 2: only what the command made is replaced


def test_only_what_the_command_made_is_replaced(eval_corpus, tmp_path, capsys):
    exp, test = eval_corpus["exp"], eval_corpus["test"]
    mine = tmp_path / "mine"
    speaker_folder(mine / "src")
    (mine / "notes.txt").write_text("mine\n")
    (mine / "prep" / "all").mkdir(parents=True)
    (mine / "prep" / "all" / "wav.scp").write_text("a user's own data dir\n")
    (mine / "exp" / "eval").mkdir(parents=True)
    (mine / "exp" / "eval" / "notes.txt").write_text("mine\n")
    (mine / "exp" / "report").mkdir()
    (mine / "exp" / "report" / "draft.md").write_text("mine\n")
    (mine / "dump.tmp").mkdir()
    (mine / "dump.tmp" / "x").write_text("mine\n")
    before = tree(mine)
    not_made = "exists and was not made by `speechvq "
    refused(["prepare", "folder", str(mine / "src"), str(mine / "prep"), "--no-progress"],
            capsys, f"'{mine / 'prep' / 'all'}' {not_made}prepare`", "nothing was changed")
    refused(["encode", "--model", str(exp), "--data", str(test), "--out",
             str(mine / "notes.txt")], capsys, f"'{mine / 'notes.txt'}' {not_made}encode`")
    refused(["train", "--data", str(test), "--exp", str(mine / "exp")], capsys,
            f"'{mine / 'exp'}' {not_made}train`")
    refused(["convert", "--model", str(exp), "--data", str(test), "--speakers", "spk1",
             "--out", str(mine / "prep" / "all")], capsys, f"{not_made}convert`")
    refused(["dump", str(test), str(mine / "dump")], capsys,
            f"'{mine / 'dump.tmp'}' {not_made}dump`")
    refused(["evaluate", "conversion", "--model", str(exp), "--data", str(test), "--ref",
             str(test), "--exp", str(mine / "exp")], capsys, f"{not_made}evaluate`")
    refused(["report", "--exp", str(mine / "exp")], capsys, f"{not_made}report`")
    assert tree(mine) == before

    # what a command made it replaces on a rerun (the marker says so)
    for _ in range(2):
        assert cli.main(["prepare", "folder", str(mine / "src"), str(mine / "new"),
                         "--no-progress"]) == 0
        assert cli.main(["encode", "--model", str(exp), "--data", str(test), "--out",
                         str(mine / "units.txt"), "--no-progress"]) == 0
    assert not (mine / "new" / MARKER).exists()  # prepare owns the split dirs, not OUT
    assert (mine / "new" / "all" / MARKER).read_text().endswith(".\tprepare\n")
    assert (mine / MARKER).read_text().endswith("units.txt\tencode\n")
    capsys.readouterr()


# ---------------------------------------------------- rule 3: no write follows a link outward


def test_writes_never_follow_a_link_out_of_the_output_dir(tmp_path, capsys):
    other = tmp_path / "other_run" / "checkpoints"
    other.mkdir(parents=True)
    (other / "step_00000001.pt").write_bytes(b"another run's checkpoint")
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text("task: speech\n")
    (exp / "checkpoints").symlink_to(other)
    before = tree(tmp_path)
    refused(["train", "--data", str(tmp_path / "dump"), "--exp", str(exp)], capsys,
            f"'{exp / 'checkpoints'}' inside the output '{exp}' is a link to '{other}', "
            f"outside it", "nothing was changed")
    assert tree(tmp_path) == before

    # a link inside that stays inside is fine, and the output dir itself may be a link
    (exp / "checkpoints").unlink()
    (exp / "real").mkdir()
    (exp / "checkpoints").symlink_to(exp / "real")
    (tmp_path / "exp_link").symlink_to(exp)
    with claim(tmp_path / "exp_link", "train", ours_if=lambda p: (p / "config.yaml").is_file()):
        pass
    with pytest.raises(OutputError, match="is a link to"):
        (exp / "real" / "up").symlink_to(tmp_path)
        with claim(exp, "train"):
            pass
