"""`speechvq train` end to end on a tiny dump and a tiny model, on CPU.

What issue 6 asks of training, each checked through the installed console script:

- the exp dir (config.yaml, cmdline.txt, speakers.txt, checkpoints, metrics.jsonl) and a last.pt
  that loads with ``weights_only=True``; ``--print-config``; user errors as one line and exit 2;
- exact resume: a run SIGKILLed mid-run, and one that dies between a checkpoint's temp write and
  its rename (`speechvq.fileio._replace` onto a .pt), rerun with the same command, end
  bit-identical to an uninterrupted run (weights, optimiser, EMA buffers; dropout, time jitter
  and dead-code restarts are on, so the restored RNG matters);
- DDP through ``torchrun --nproc_per_node=2`` (gloo): the EMA codebook, counts and sums equal a
  single process on the whole batch, and differ from rank 0's half alone (so the test fails if
  the quantiser's all-reduce is missing);
- a NaN loss stops `speechvq train` with exit 2 and one line naming the step and the checkpoint.

Every subprocess runs with one intra-op thread, so float results do not depend on the machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import write_tiny_data_dir
from speechvq import cli, train
from speechvq.tasks import speech as speech_task
from speechvq.checkpoint import load_checkpoint
from speechvq.config import config_from_dict, load_config
from speechvq.data.speech.dump import SpeechDump, dump_data_dir
from speechvq.data.speech.batches import SpeechBatches, WindowSampler
from speechvq.models.speech.vqvae import VQVAE

BIN = Path(sys.executable).parent
SPEECHVQ = str(BIN / "speechvq")
TORCHRUN = str(BIN / "torchrun")

# A model of a few thousand weights; windows (3200) shorter than every utterance (8000), so each
# window is full and DDP's per-rank mean losses average to the single-process mean exactly.
TINY = ["model.encoder.input=logmel", "model.encoder.channels=16", "model.encoder.dilations=[1]",
        "model.quantizer.codebook_size=16", "model.quantizer.dim=8", "model.decoder.speaker_dim=4",
        "model.decoder.wavenet.layers=2", "model.decoder.wavenet.cycles=1",
        "model.decoder.wavenet.residual_channels=4", "model.decoder.wavenet.gate_channels=8",
        "model.decoder.wavenet.skip_channels=8", "model.decoder.wavenet.upsample=repeat",
        "model.decoder.mel.weight=1", "model.decoder.mel.channels=8", "model.decoder.mel.layers=1",
        "data.window=3200", "train.batch_size=4", "train.device=cpu"]
STEPS = 12  # checkpoints every 2 steps, the last 5 kept
# Resume runs use every source of randomness (dropout, jitter, dead-code restarts from random
# rows, the WaveNet's random crop), so resuming without the saved RNG state would diverge.
RESUME = [*TINY, "model.encoder.dropout=0.1", "model.encoder.jitter=0.12",
          "model.quantizer.restart_after=2", "model.decoder.wavenet.train_window=1600",
          f"train.max_steps={STEPS}",
          "train.checkpoint_every=2", "train.log_every=2"]
# DDP runs: nothing random inside a step, no restarts, EMA codebook.
DDP = [*TINY, "model.quantizer.update=ema", "model.encoder.jitter=0", "model.encoder.dropout=0",
       "model.quantizer.restart_after=1000", "train.max_steps=2", "train.checkpoint_every=2"]

ENV = {k: v for k, v in os.environ.items()
       if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
ENV.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")

# `speechvq train` with the atomic writer's rename (`speechvq.fileio._replace`) dying on its
# CRASH_AT-th checkpoint: that checkpoint's temp file is written and fsynced but never renamed.
CRASH_SCRIPT = """
import os, sys
import speechvq.fileio as fileio
from speechvq import cli

crash_at, calls, real = int(sys.argv[1]), [], fileio._replace

def replace(src, dst):
    if dst.endswith(".pt"):
        calls.append(dst)
        if len(calls) == crash_at:
            os._exit(9)
    real(src, dst)

fileio._replace = replace
sys.exit(cli.main(sys.argv[2:]))
"""


def train_args(dump: Path, exp: Path, overrides: list[str]) -> list[str]:
    return ["train", "--data", str(dump), "--exp", str(exp), "--no-progress", *overrides]


def speechvq(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script."""
    return subprocess.run([SPEECHVQ, *args], capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=300)


def last_state(exp: Path) -> dict:
    return load_checkpoint(exp / "checkpoints" / "last.pt")


def assert_same_state(a: dict, b: dict) -> None:
    """Bit-identical model tensors (weights and buffers), optimiser, scheduler, sampler and RNG
    state: everything an exact resume restores."""
    assert a["step"] == b["step"]
    assert a["scheduler"] == b["scheduler"] and a["sampler"] == b["sampler"]
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    assert a["rng"].keys() == b["rng"].keys()
    for key in a["rng"]:
        assert torch.equal(a["rng"][key], b["rng"][key]), key
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for p, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][p][name]), (p, name)


def metric_steps(exp: Path) -> list[int]:
    return [json.loads(ln)["step"] for ln in (exp / "metrics.jsonl").read_text().splitlines()]


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("speechvq train: error: "), stderr
    return lines[0]


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def tiny_dump(tmp_path_factory) -> Path:
    """A dump of `write_tiny_data_dir` (2 speakers x 2 utterances of 0.5 s)."""
    root = tmp_path_factory.mktemp("train_speech")
    data = write_tiny_data_dir(root / "data")
    return dump_data_dir(data, root / "dump", progress=False)


@pytest.fixture(scope="session")
def reference(tiny_dump, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """An uninterrupted `speechvq train` run with the RESUME config."""
    exp = tmp_path_factory.mktemp("reference") / "exp"
    return exp, speechvq(*train_args(tiny_dump, exp, RESUME))


# -------------------------------------------------------------------------- the command itself


@pytest.mark.slow
def test_train_writes_the_exp_dir(tiny_dump, reference):
    exp, run = reference
    assert run.returncode == 0, run.stderr
    last = exp / "checkpoints" / "last.pt"
    assert run.stdout.strip().splitlines()[-1] == str(last)
    cfg = load_config(None, RESUME)
    assert load_config(exp / "config.yaml") == cfg

    cmdline = (exp / "cmdline.txt").read_text()
    assert re.search(rf"^speechvq train --data {re.escape(str(tiny_dump))} --exp ", cmdline, re.M)
    assert "model.quantizer.restart_after=2" in cmdline
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(train.__file__).parent,
                          capture_output=True, text=True)
    commit = head.stdout.strip() if head.returncode == 0 else "unknown"
    assert f"git commit {commit}" in cmdline
    assert re.search(r"\btorch==\S+", cmdline) and re.search(r"\bnumpy==\S+", cmdline)
    assert (exp / "speakers.txt").read_text() == "spkA\nspkB\n"

    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == [
        "last.pt", *(f"step_{s:08d}.pt" for s in range(STEPS - 8, STEPS + 1, 2))]
    records = [json.loads(ln) for ln in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(2, STEPS + 1, 2))
    for r in records:
        assert {"loss", "bits_per_sample", "perplexity", "codes_used", "lr", "step_time",
                "data_wait"} <= set(r)
        assert all(isinstance(v, (int, float)) and v == v for v in r.values()), r  # no NaN
        assert 1 <= r["perplexity"] <= 16 and 1 <= r["codes_used"] <= 16

    state = torch.load(last, map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "sampler", "step", "config",
            "speakers"} <= set(state)
    assert state["step"] == STEPS
    assert state["sampler"] == {"seed": cfg.seed, "step": STEPS}
    assert state["speakers"] == ["spkA", "spkB"]
    assert config_from_dict(state["config"]) == cfg
    assert state["rng"]["cpu"].dtype == torch.uint8
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == STEPS
    numbered = torch.load(exp / "checkpoints" / f"step_{STEPS:08d}.pt", weights_only=True)
    assert_same_state(state, numbered)


def test_print_config_touches_nothing(tmp_path):
    run = speechvq("train", "--data", "missing_dump", "--exp", "exp/x", "--print-config", *TINY,
                   cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert config_from_dict(yaml.safe_load(run.stdout)) == load_config(None, TINY)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad, says", [
    ("model.quantizer.codebook_sise=16", r"unknown config key 'model\.quantizer\.codebook_sise'"
                                         r".*did you mean 'codebook_size'"),
    ("train.lr=fast", r"train\.lr"),
])
def test_bad_override_fails_before_reading_data(tmp_path, bad, says):
    run = speechvq(*train_args(tmp_path / "missing_dump", tmp_path / "exp", [*TINY, bad]))
    assert run.returncode == 2
    line = one_error_line(run.stderr)
    assert re.search(says, line) and "missing_dump" not in line, line
    assert list(tmp_path.iterdir()) == []


def test_kaldi_dir_instead_of_a_dump_is_one_line(tmp_path, capsys):
    data = write_tiny_data_dir(tmp_path / "data")
    assert cli.main(train_args(data, tmp_path / "exp", TINY)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "Kaldi data dir, not a dump; run `speechvq dump DATA OUT` first" in line, line
    assert not (tmp_path / "exp").exists()


def test_rerun_with_another_config_is_refused_and_leaves_the_exp_dir(tiny_dump, tmp_path,
                                                                     capsys):
    exp = tmp_path / "exp"
    assert cli.main(train_args(tiny_dump, exp, [*TINY, "train.max_steps=1"])) == 0
    before = {name: (exp / name).read_text() for name in ("config.yaml", "cmdline.txt")}
    capsys.readouterr()
    assert cli.main(train_args(tiny_dump, exp, [*TINY, "train.max_steps=2",
                                                "train.lr=0.1"])) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"speechvq train: error: exp dir '.*' holds a run with another config "
                        r"\(changed: train\.lr\); use a new --exp, .*", line), line
    # config.yaml still describes the checkpoint; the refused command is not logged as a run
    assert {name: (exp / name).read_text() for name in before} == before
    assert last_state(exp)["step"] == 1


# ------------------------------------------------------------------------------- exact resume


@pytest.mark.slow
def test_sigkill_mid_run_and_rerun_is_bit_exact(tiny_dump, reference, tmp_path):
    exp = tmp_path / "exp"
    cmd = [SPEECHVQ, *train_args(tiny_dump, exp, RESUME)]
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, env=ENV, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        try:  # kill it as soon as step 4 is saved (last.pt then holds step 2 or 4)
            while not (exp / "checkpoints" / "step_00000004.pt").exists():
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()
                assert time.monotonic() < deadline, "no checkpoint after 120 s"
                time.sleep(0.005)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"
    killed_at = last_state(exp)["step"]
    assert killed_at in range(2, STEPS, 2)
    with open(exp / "metrics.jsonl", "a") as f:
        f.write('{"step": 99, "loss": 9.7')  # as a kill in mid-write would leave it

    rerun = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed from {exp / 'checkpoints' / 'last.pt'} at step {killed_at}" in rerun.stderr
    assert_same_state(last_state(exp), last_state(reference[0]))
    assert metric_steps(exp) == list(range(2, STEPS + 1, 2))  # the killed run's lines dropped


@pytest.mark.slow
@pytest.mark.parametrize("crash_at, leftover, has_step_4", [
    (3, ".step_00000004.pt.tmp", False),  # calls: step_2, last (step 2), step_4 <- dies
    (4, ".last.pt.tmp", True),  # ... step_4, last (step 4) <- dies
])
def test_crash_between_temp_write_and_rename(tiny_dump, reference, tmp_path, crash_at,
                                             leftover, has_step_4):
    exp = tmp_path / "exp"
    args = train_args(tiny_dump, exp, RESUME)
    crashed = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(crash_at), *args],
                             capture_output=True, text=True, env=ENV, timeout=300)
    assert crashed.returncode == 9, crashed.stderr
    ckpts = exp / "checkpoints"
    assert sorted(p.name for p in ckpts.glob(".*.tmp")) == [leftover]
    assert (ckpts / "step_00000004.pt").exists() == has_step_4
    assert last_state(exp)["step"] == 2  # the old last.pt, intact

    rerun = speechvq(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert "at step 2" in rerun.stderr
    assert_same_state(last_state(exp), last_state(reference[0]))
    assert list(ckpts.glob(".*.tmp")) == []  # rewritten and renamed by the rerun


# --------------------------------------------------------------------------------------- DDP


def rank0_half_alone(dump_path: Path, exp: Path) -> dict:
    """The state after the DDP config's steps trained on rank 0's half of each batch alone."""
    cfg = load_config(None, DDP)
    dump = SpeechDump.open(dump_path)
    torch.manual_seed(cfg.seed)
    model = VQVAE.from_config(cfg, list(dump.speakers))
    sampler = WindowSampler(dump.lengths, cfg.data.window, cfg.train.batch_size, cfg.seed,
                            rank=0, world_size=2)
    trainer = train.Trainer(model, cfg, exp, batches=SpeechBatches(dump, sampler, model.hop),
                            step_fn=speech_task.speech_step, progress=False)
    trainer.fit()
    return last_state(exp)


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_on_the_whole_batch(tiny_dump, tmp_path,
                                                                monkeypatch):
    run = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", SPEECHVQ,
                          *train_args(tiny_dump, tmp_path / "ddp", DDP)],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    train.train(load_config(None, DDP), tiny_dump, tmp_path / "single", progress=False)
    ddp, single = last_state(tmp_path / "ddp"), last_state(tmp_path / "single")
    half = rank0_half_alone(tiny_dump, tmp_path / "half")

    vq = "quantizer."
    buffers = [k for k in single["model"] if k.endswith((vq + "codebook", vq + "ema_count",
                                                           vq + "ema_sum"))]
    assert len(buffers) == 3, list(single["model"])
    for key in buffers:
        torch.testing.assert_close(ddp["model"][key], single["model"][key], rtol=0, atol=1e-5,
                                   msg=lambda m, key=key: f"{key}: {m}")
        # rank 0 on its half alone is far from both: equality above needs the all-reduce
        assert (half["model"][key] - single["model"][key]).abs().max() > 1e-3, key
    floats = [k for k, v in single["model"].items() if v.is_floating_point()]
    for key in floats:  # DDP averages the gradients of the two equal halves
        torch.testing.assert_close(ddp["model"][key], single["model"][key], rtol=0, atol=1e-4,
                                   msg=lambda m, key=key: f"{key}: {m}")
    assert max(float((half["model"][k] - single["model"][k]).abs().max()) for k in floats
               if not k.startswith("quantizer.")) > 1e-4  # ... which one half alone would not
    # usage statistics are summed over ranks too; rank 1 wrote no files
    a, b = (json.loads((tmp_path / d / "metrics.jsonl").read_text()) for d in ("ddp", "single"))
    assert a["step"] == b["step"] == 2
    assert a["codes_used"] == b["codes_used"]
    assert a["perplexity"] == pytest.approx(b["perplexity"], abs=1e-4)


# ----------------------------------------------------------------------------------------- NaN


def test_nan_loss_is_exit_2_naming_step_and_checkpoint(tiny_dump, tmp_path, monkeypatch,
                                                       capsys):
    real, calls = speech_task.speech_step, []

    def nan_at_step_2(model, batch):
        loss, metrics = real(model, batch)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 2 else loss), metrics

    monkeypatch.setattr(speech_task, "speech_step", nan_at_step_2)
    exp = tmp_path / "exp"
    code = cli.main(train_args(tiny_dump, exp, [*TINY, "train.max_steps=4",
                                                "train.checkpoint_every=1"]))
    assert code == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(errors) == 1
    last = exp / "checkpoints" / "last.pt"
    assert re.fullmatch(rf"speechvq train: error: loss became nan at step 2; the last good "
                        rf"checkpoint is {re.escape(str(last))}; .*rerun the same command.*",
                        errors[0]), errors[0]
    assert last_state(exp)["step"] == 1
