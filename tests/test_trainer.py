"""The model-agnostic Trainer on a toy model: resume, checkpoints, metrics, NaN stop."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from speechvq.checkpoint import load_checkpoint
from speechvq.config import load_config
from speechvq.errors import ConfigError, TrainingError
from speechvq.train import Trainer, amp_settings, lr_lambda


class ToyBatches(torch.utils.data.Dataset):
    """Batch for a step is a pure function of (seed, step), as the speech batches are."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def __len__(self):
        return 10**9

    def __getitem__(self, step):
        g = torch.Generator().manual_seed(self.seed * 100003 + step)
        x = torch.randn(8, 4, generator=g)
        return {"x": x, "y": x @ torch.tensor([1.0, -2.0, 0.5, 3.0])}


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.drop = nn.Dropout(0.1)  # consumes RNG: exact resume must restore it

    def forward(self, x):
        return self.lin(self.drop(x)).squeeze(-1)


def toy_step(model, batch):
    err = model(batch["x"]) - batch["y"]
    return (err**2).mean(), {"abs_err": err.abs().mean().detach()}


def make(exp, overrides, step_fn=toy_step, valid_batches=None, optimizer_changes=False,
         lr_scales=None):
    cfg = load_config(None, ["train.lr=0.05", "train.device=cpu", *overrides])
    torch.manual_seed(cfg.seed)
    return Trainer(Toy(), cfg, exp, batches=ToyBatches(), step_fn=step_fn,
                   extra_state={"labels": ["a", "b"]}, exp_files={"labels.txt": "a\nb\n"},
                   valid_batches=valid_batches, progress=False,
                   optimizer_changes=optimizer_changes, lr_scales=lr_scales)


def test_amp_on_cpu_only_when_bf16_is_asked_for():
    cpu = torch.device("cpu")
    assert amp_settings("bf16", cpu) == (torch.bfloat16, False)
    assert amp_settings("auto", cpu) == amp_settings("fp16", cpu) == (None, False)


def test_resume_is_bit_exact_and_files_are_written(tmp_path):
    full = make(tmp_path / "full", ["train.max_steps=12", "train.checkpoint_every=4"])
    full.fit()
    part = make(tmp_path / "part", ["train.max_steps=8", "train.checkpoint_every=4"])
    part.fit()
    resumed = make(tmp_path / "part", ["train.max_steps=12", "train.checkpoint_every=4"])
    resumed.fit()
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 12
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    exp = tmp_path / "full"
    assert (exp / "config.yaml").exists() and (exp / "labels.txt").read_text() == "a\nb\n"
    assert a["kind"] == "speech" and a["labels"] == ["a", "b"]  # the task's name is the kind
    assert "git commit" in (exp / "cmdline.txt").read_text()
    lines = [json.loads(ln) for ln in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [12]  # log_every=50 > max_steps: the final step only
    assert {"loss", "abs_err", "lr", "step_time", "data_wait"} <= set(lines[0])
    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == [
        "last.pt", "step_00000004.pt", "step_00000008.pt", "step_00000012.pt"]


def test_validation_keeps_training_bit_identical_and_best_pt(tmp_path):
    held = [ToyBatches(seed=7)[i] for i in range(2)]
    plain = make(tmp_path / "plain", ["train.max_steps=9", "train.checkpoint_every=3"])
    plain.fit()
    steps = ["train.max_steps=9", "train.checkpoint_every=3", "train.valid_every=3"]
    valid = make(tmp_path / "valid", steps, valid_batches=held)
    seen = []
    valid.step_fn = lambda m, b: (seen.append(m.training), toy_step(m, b))[1]
    valid.fit()
    a = load_checkpoint(tmp_path / "plain" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "valid" / "checkpoints" / "last.pt")
    for key in a["model"]:  # validation draws from its own RNG: training is unchanged
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert False in seen and True in seen  # validated in eval mode, trained in train mode
    records = [json.loads(ln) for ln in (tmp_path / "valid" / "metrics.jsonl").read_text()
               .splitlines()]
    losses = {r["step"]: r["valid_loss"] for r in records if "valid_loss" in r}
    assert sorted(losses) == [3, 6, 9] and all("valid_abs_err" in r for r in records
                                               if "valid_loss" in r)
    best = load_checkpoint(tmp_path / "valid" / "checkpoints" / "best.pt")
    best_step = min(losses, key=losses.get)
    assert best["step"] == best_step
    assert best["best_valid_loss"] == pytest.approx(losses[best_step], abs=1e-6)
    # the validation loss is what step_fn gives on the held-out batches with best.pt's weights
    model = Toy()
    model.load_state_dict(best["model"])
    model.eval()
    with torch.no_grad():
        expect = sum(toy_step(model, h)[0].item() for h in held) / len(held)
    assert losses[best_step] == pytest.approx(expect, rel=1e-5)


def test_keep_checkpoints_and_nothing_to_do(tmp_path):
    t = make(tmp_path, ["train.max_steps=6", "train.checkpoint_every=1",
                        "train.keep_checkpoints=2", "train.log_every=2"])
    t.fit()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["last.pt", "step_00000005.pt", "step_00000006.pt"]
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
    log = (tmp_path / "log" / "train.log").read_text().splitlines()
    intervals = [ln for ln in log if " step " in ln and "/6, loss " in ln]
    assert [ln.split(" step ")[1].split("/")[0] for ln in intervals] == ["2", "4", "6"]
    assert all("abs_err" in ln and ", lr " in ln for ln in intervals)  # one line per interval
    again = make(tmp_path, ["train.max_steps=6", "train.checkpoint_every=1",
                            "train.keep_checkpoints=2", "train.log_every=2"])
    again.fit()
    assert again.step == 6


def test_resume_with_another_config_is_refused(tmp_path):
    make(tmp_path, ["train.max_steps=2"]).fit()
    with pytest.raises(TrainingError, match=r"another config \(changed: train.lr\)"):
        make(tmp_path, ["train.max_steps=4", "train.lr=0.1"]).fit()


def test_nan_loss_stops_naming_step_and_checkpoint(tmp_path):
    calls = []

    def nan_after_3(model, batch):
        loss, metrics = toy_step(model, batch)
        calls.append(1)
        return (loss * float("nan") if len(calls) > 3 else loss), metrics

    t = make(tmp_path, ["train.max_steps=10", "train.checkpoint_every=2"], step_fn=nan_after_3)
    with pytest.raises(TrainingError, match=r"loss became nan at step 4; the last good "
                                            r"checkpoint is .*last.pt") as e:
        t.fit()
    assert "train.lr=0.025" in str(e.value) and "--change-optimizer" in str(e.value)


def test_the_nan_advice_works_resume_with_a_lower_lr(tmp_path):
    """The NaN message's advice: the same command, a lower train.lr, --change-optimizer."""
    base = ["train.max_steps=6", "train.checkpoint_every=2", "train.log_every=1",
            "train.warmup_steps=4"]
    make(tmp_path, [*base, "train.max_steps=2"]).fit()
    lower = [*base, "train.lr=0.025"]
    with pytest.raises(TrainingError, match=r"changed: train.lr\).*rerun with --change-optimizer"):
        make(tmp_path, lower).fit()
    with pytest.raises(TrainingError, match=r"changed: train.schedule"):  # only optimiser keys
        make(tmp_path, [*lower, "train.schedule=cosine"], optimizer_changes=True).fit()
    t = make(tmp_path, lower, optimizer_changes=True)
    t.fit()
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # warm-up over 4 steps at 0.05, then at 0.025 from step 3 on, at the same point of warm-up
    assert lrs == pytest.approx([0.05 * 2 / 4, 0.05 * 3 / 4, 0.025 * 4 / 4, 0.025, 0.025, 0.025])
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["config"]["train"]["lr"] == 0.025
    said = "resumed at step 2 with train.lr 0.05 -> 0.025 (--change-optimizer)"
    assert said in (tmp_path / "cmdline.txt").read_text()
    assert "with train.lr 0.05 -> 0.025" in (tmp_path / "log" / "train.log").read_text()
    make(tmp_path, [*lower, "train.max_steps=8"]).fit()  # from now on the new lr is the run's


def test_lr_scales_keep_their_multiple_through_the_schedule_and_a_restart(tmp_path):
    base = ["train.max_steps=4", "train.checkpoint_every=2", "train.warmup_steps=4"]
    with pytest.raises(ConfigError, match="lin.nope"):
        make(tmp_path / "bad", base, lr_scales={"lin.nope": 2.0})
    t = make(tmp_path, [*base, "train.max_steps=2"], lr_scales={"lin.weight": 10.0})
    t.fit()
    lrs = {g["lr_scale"]: g["lr"] for g in t.opt.param_groups}
    assert lrs == pytest.approx({1.0: 0.05 * 3 / 4, 10.0: 0.5 * 3 / 4})  # step 3 of warm-up
    assert t.opt.param_groups[1]["params"] == [t.model.lin.weight]
    t = make(tmp_path, [*base, "train.lr=0.025"], optimizer_changes=True,
             lr_scales={"lin.weight": 10.0})
    t.fit()  # resumed at step 2 with a lower lr: the multiple stays
    lrs = {g["lr_scale"]: g["lr"] for g in t.opt.param_groups}
    assert lrs == pytest.approx({1.0: 0.025, 10.0: 0.25})
    assert len(make(tmp_path / "plain", base).opt.param_groups) == 1  # as checkpoints before
    assert len(make(tmp_path / "ones", base, lr_scales={"lin.weight": 1.0}).opt.param_groups) == 1


@pytest.mark.parametrize("schedule, expect", [
    ("constant", [0.5, 1.0, 1.0, 1.0]),
    ("linear", [0.5, 1.0, 0.5, 0.0]),
    ("cosine", [0.5, 1.0, 0.5, 0.0]),
])
def test_lr_schedule(schedule, expect):
    f = lr_lambda(schedule, warmup=2, max_steps=6)
    got = [f(0), f(2), f(4), f(6)]
    assert got == pytest.approx(expect, abs=1e-9)


def test_progress_in_a_log_file_is_plain_lines():
    import io

    from speechvq.progress import tqdm
    out = io.StringIO()  # not a terminal, as a recipe's run.log
    bar = tqdm(total=5000, file=out, desc="train")
    for _ in range(5000):
        bar.update(1)
        bar.set_postfix(loss="1.000", refresh=False)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and max(map(len, text.splitlines())) < 200
    assert 2 <= len([ln for ln in text.splitlines() if ln]) <= 3  # start, (throttled), end


def test_threads_option_sets_the_pools(monkeypatch):
    import argparse

    from speechvq.cli.common import apply_threads
    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(var, "")  # recorded, so what apply_threads writes is undone after
        monkeypatch.delenv(var)
    try:
        assert apply_threads(argparse.Namespace(threads=None, nj=1)) is None  # library default
        monkeypatch.setattr("speechvq.device.cpu_cores", lambda: 8)
        assert apply_threads(argparse.Namespace(threads=None, nj=4)) == 2  # cores // nj
        assert apply_threads(argparse.Namespace(threads=1, nj=4)) == 1
        assert torch.get_num_threads() == 1
        import os
        assert os.environ["OMP_NUM_THREADS"] == "1"  # inherited by worker processes
    finally:
        torch.set_num_threads(before)
