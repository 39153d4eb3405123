"""One Trainer for every speechvq model (after minGPT's trainer: a loop with hooks).

The Trainer knows no modality: it takes a model, a map-style dataset whose item ``step`` is the
batch for that step, and a ``step_fn(model, batch) -> (loss, metrics)``. It owns the optimiser
(AdamW), the learning-rate schedule, gradient clipping, mixed precision on CUDA (bf16, or fp16 with
a gradient scaler; the quantiser keeps its own arithmetic in float32), DDP under ``torchrun``,
atomic step-numbered checkpoints with ``last.pt``, exact resume, the validation pass (``best.pt``),
``metrics.jsonl``, TensorBoard events when installed, and a progress bar. Whatever a task keeps in
the exp dir (a speaker list, a label map) comes in as `exp_files`.

Exact resume: batches are a pure function of (seed, step) (each task's batches guarantee it), and
a checkpoint holds model, optimiser, scheduler, scaler and RNG state, so a run killed at any point
and restarted with the same command reaches bit-identical weights on CPU. The validation pass runs
under its own seeded RNG (`torch.random.fork_rng`), so training is bit-identical with it on or off.

Resuming with other optimiser settings: a rerun whose config differs from the checkpoint's in a
key of `OPTIMIZER_CHANGES` (``train.lr``, ``train.grad_clip``, ``train.warmup_steps``) resumes
only when asked (``optimizer_changes=True``, ``speechvq train --change-optimizer``): the new peak
lr replaces the checkpoint's at the same point of the schedule, and the change is written to
cmdline.txt and log/train.log. Everything else a checkpoint holds is restored as it was.

`train` is what ``speechvq train`` calls: it holds the exp dir's lock and checks the output rules
(`speechvq.ownership.claim`: one run per exp dir; the exp dir is not an input, holds only what
training made, and no link in it leads out of it), asks the config's task (`speechvq.registry`)
to set the run up and hands it to a Trainer.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn
from speechvq.progress import tqdm

from speechvq import __version__
from speechvq.checkpoint import load_checkpoint, save_checkpoint
from speechvq.config import Config, config_to_dict, dump_config
from speechvq.device import cpu_cores, pick_device
from speechvq.distributed import check_batch_divisible, distributed_env, process_group
from speechvq.errors import ConfigError, TrainingError
from speechvq.experiment import config_differences, resolved_config, truncate_metrics
from speechvq.provenance import run_info
from speechvq.fileio import append_text, atomic_write_text
from speechvq.ownership import claim
from speechvq.models.outputs import StepFn
from speechvq.registry import get_task

# Keys that may change between a run and its resumption (they do not change what is learned).
RESUMABLE_CHANGES = {"train.max_steps", "train.log_every", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.device", "train.num_workers", "train.threads",
                     "train.valid_every", "train.valid_max_items"}
# Keys that may change on resume when the user says so (``speechvq train --change-optimizer``):
# the way on after a NaN loss is the same run with a lower lr or a tighter clip.
OPTIMIZER_CHANGES = {"train.lr", "train.grad_clip", "train.warmup_steps"}


# --------------------------------------------------------------------------------- environment


def amp_settings(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a gradient scaler is needed) for `train.amp`.

    On CPU only an explicit ``bf16`` turns autocast on: it pays where the CPU has bf16 units
    (AVX-512 BF16, AMX), where convolutions and products run about 1.5x faster, and costs
    elsewhere; ``auto`` keeps fp32 there."""
    if device.type == "cpu" and amp == "bf16":
        return torch.bfloat16, False
    if device.type != "cuda" or amp == "none":
        return None, False
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return (torch.bfloat16, False) if amp == "bf16" else (torch.float16, True)


def lr_lambda(schedule: str, warmup: int, max_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak lr at a step: linear warm-up, then constant, cosine or linear decay."""
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress  # linear
    return factor


# ------------------------------------------------------------------------------------- trainer


def _no_forward_buffer_sync() -> dict[str, bool]:
    """DDP's switch for not re-broadcasting rank 0's buffers before every forward (every rank
    updates its buffers alike): ``forward_sync_buffers`` where this torch has it (there the old
    ``broadcast_buffers`` is deprecated, with a warning in every run's log), else the old name.
    The new one still syncs buffers once at start, which changes nothing here: every rank
    starts from the same seed or checkpoint."""
    params = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    return ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
            else {"broadcast_buffers": False})


def param_groups(model: nn.Module, lr: float, lr_scales: Mapping[str, float]) -> list[dict]:
    """The optimiser's groups: every parameter at `lr`, but those `lr_scales` names at their
    multiple of it, one group per multiple (a group's ``lr_scale`` keeps it for a restarted
    schedule). With no multiple other than 1 it is one group, as checkpoints before it hold.

    Raises:
        ConfigError: `lr_scales` names a parameter the model does not have.
    """
    named = dict(model.named_parameters())
    unknown = sorted(set(lr_scales) - set(named))
    if unknown:
        raise ConfigError(f"learning-rate multiples for parameters the model does not have: "
                          f"{', '.join(unknown)}")
    by_scale: dict[float, list[nn.Parameter]] = defaultdict(list)
    for name, param in named.items():
        by_scale[float(lr_scales.get(name, 1.0))].append(param)
    return [{"params": params, "lr": lr * scale, "lr_scale": scale}
            for scale, params in sorted(by_scale.items(), key=lambda kv: kv[0] != 1.0)]


class Trainer:
    """Trains `model` for `cfg.train.max_steps` steps, resuming from ``exp/checkpoints/last.pt``.

    Args:
        model: any nn.Module; `step_fn` computes its loss on a batch.
        cfg: the resolved root config (its `train` section drives the loop; all of it is saved).
        exp_dir: output folder (config.yaml, cmdline.txt, checkpoints/, metrics.jsonl, log/).
        batches: map-style dataset, ``batches[step]`` is this rank's batch for that step.
        step_fn: ``(model, batch) -> (loss, metrics)``; metrics are scalars (floats or 0-d tensors).
        extra_state: saved in every checkpoint (e.g. the speaker list); plain data only. The
            checkpoint's ``kind`` is the config's task.
        exp_files: file name -> text the task keeps in the exp dir (e.g. ``speakers.txt``).
        valid_batches: fixed held-out batches; with ``train.valid_every`` > 0 they are scored
            through `step_fn` every that many steps and the best checkpoint kept as best.pt.
        lr_scales: parameter name -> its learning rate as a multiple of ``train.lr`` (one
            optimiser group per multiple other than 1; the schedule scales them all alike).
        optimizer_changes: on resume, accept new values of the `OPTIMIZER_CHANGES` keys (the
            module docstring says how they apply); otherwise they are refused as another config.
    """

    def __init__(self, model: nn.Module, cfg: Config, exp_dir: str | os.PathLike, *,
                 batches: torch.utils.data.Dataset, step_fn: StepFn,
                 extra_state: dict[str, Any] | None = None,
                 exp_files: Mapping[str, str] | None = None,
                 valid_batches: Sequence[Mapping[str, Any]] | None = None,
                 progress: bool = True, command: Sequence[str] | None = None,
                 optimizer_changes: bool = False, lr_scales: Mapping[str, float] | None = None):
        self.cfg, self.tc = cfg, cfg.train
        self.exp = Path(exp_dir)
        self.batches, self.step_fn = batches, step_fn
        self.extra_state = {**(extra_state or {}), "kind": cfg.task}
        self.exp_files = dict(exp_files or {})
        self.valid_batches = list(valid_batches) if valid_batches else []
        self.best_valid_loss = math.inf
        self.valid_items = 0
        self.last_valid_loss = math.inf
        self.progress = progress
        self.command = command
        self.optimizer_changes = optimizer_changes
        self.resume_changes: list[str] = []  # "train.lr 0.001 -> 0.0005", for the logs
        self.rank, self.local_rank, self.world = distributed_env()
        self.device = pick_device(self.tc.device, self.local_rank, option="train.device")
        if self.tc.threads:
            torch.set_num_threads(self.tc.threads)
        elif self.world > 1 and self.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            # torchrun's processes share the cores: one pool each of the whole machine would
            # oversubscribe it many times over
            torch.set_num_threads(max(1, cpu_cores() // self.world))
        self.amp_dtype, use_scaler = amp_settings(self.tc.amp, self.device)
        self.model = model.to(self.device)
        self.opt = torch.optim.AdamW(param_groups(self.model, self.tc.lr, lr_scales or {}),
                                     lr=self.tc.lr,
                                     betas=tuple(self.tc.betas), weight_decay=self.tc.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lr_lambda(self.tc.schedule, self.tc.warmup_steps, self.tc.max_steps))
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.step = 0
        self.callbacks: dict[str, list[Callable[["Trainer"], None]]] = defaultdict(list)
        self.last_metrics: dict[str, float] = {}

    # hooks --------------------------------------------------------------------------------
    def add_callback(self, event: str, fn: Callable[["Trainer"], None]) -> None:
        """Run `fn(trainer)` on 'on_step_end', 'on_log' or 'on_checkpoint'."""
        self.callbacks[event].append(fn)

    def _trigger(self, event: str) -> None:
        for fn in self.callbacks[event]:
            fn(self)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def ckpt_dir(self) -> Path:
        return self.exp / "checkpoints"

    # state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"model": self._unwrapped().state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": rng, "step": self.step, "sampler": {"seed": self.cfg.seed,
                                                           "step": self.step},
                "best_valid_loss": self.best_valid_loss,
                "config": config_to_dict(self.cfg), "version": __version__, **self.extra_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._unwrapped().load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step = int(state["step"])
        self.best_valid_loss = float(state.get("best_valid_loss", math.inf))

    def _unwrapped(self) -> nn.Module:
        return self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) \
            else self.model

    def save(self) -> Path:
        """Write ``step_<8-digit step>.pt`` and ``last.pt`` atomically; keep the newest
        `keep_checkpoints` step files."""
        state = self.state_dict()
        path = save_checkpoint(state, self.ckpt_dir / f"step_{self.step:08d}.pt")
        save_checkpoint(state, self.ckpt_dir / "last.pt")
        numbered = sorted(self.ckpt_dir.glob("step_*.pt"))
        for old in numbered[:-self.tc.keep_checkpoints]:
            old.unlink(missing_ok=True)
        self._trigger("on_checkpoint")
        return path

    def _resume(self) -> None:
        last = self.ckpt_dir / "last.pt"
        if not last.exists():
            return
        state = load_checkpoint(last, map_location=self.device)
        old, new = resolved_config(state["config"], last), config_to_dict(self.cfg)
        changed = config_differences(old, new)
        allowed = RESUMABLE_CHANGES | (OPTIMIZER_CHANGES if self.optimizer_changes else set())
        refused = [k for k in changed if k not in allowed]
        if refused:
            hint = ""
            if not self.optimizer_changes and set(refused) <= OPTIMIZER_CHANGES:
                hint = (f"; to resume with the new {', '.join(refused)}, rerun with "
                        f"--change-optimizer")
            raise TrainingError(f"exp dir '{self.exp}' holds a run with another config ("
                                f"changed: {', '.join(refused)}); use a new --exp, or the same "
                                f"config to resume (only {', '.join(sorted(RESUMABLE_CHANGES))} "
                                f"may change, and with --change-optimizer also "
                                f"{', '.join(sorted(OPTIMIZER_CHANGES))}){hint}")
        try:
            self.load_state_dict(state)
        except RuntimeError as e:  # torch lists every mismatched tensor: name the run instead
            lines = str(e).strip().splitlines()  # a header, then one line per tensor
            detail = lines[min(1, len(lines) - 1)].strip().rstrip(".")
            raise TrainingError(f"exp dir '{self.exp}' holds a checkpoint '{last}' that does "
                                f"not fit the model its config describes today ({detail}); it "
                                f"was written by another speechvq version: use a new --exp")\
                from None
        optimizer_keys = [k for k in changed if k in OPTIMIZER_CHANGES]
        self.resume_changes = [f"{k} {_dotted(old, k)} -> {_dotted(new, k)}"
                               for k in optimizer_keys]
        if optimizer_keys:
            self._restart_schedule()

    def _restart_schedule(self) -> None:
        """After a resume with new optimiser settings: the new peak lr (``train.lr``) and
        warm-up, at the step the checkpoint reached (the clip is read at every step)."""
        factor = self.sched.lr_lambdas[0](self.sched.last_epoch)  # this config's schedule
        self.sched.base_lrs = [self.tc.lr * g.get("lr_scale", 1.0) for g in self.opt.param_groups]
        for group, base in zip(self.opt.param_groups, self.sched.base_lrs):
            group["initial_lr"] = base
            group["lr"] = base * factor
        self.sched._last_lr = [group["lr"] for group in self.opt.param_groups]

    # files --------------------------------------------------------------------------------
    def _prepare_exp(self) -> None:
        if not self.is_main:
            return
        (self.exp / "log").mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.exp / "config.yaml", dump_config(self.cfg))
        changes = "".join(f"# resumed at step {self.step} with {c} (--change-optimizer)\n"
                          for c in self.resume_changes)
        append_text(self.exp / "cmdline.txt", run_info(self.command) + changes)
        for name, text in self.exp_files.items():
            atomic_write_text(self.exp / name, text)

    def _log(self, message: str, echo: bool = True) -> None:
        """A line in log/train.log, and on stderr when `echo`."""
        if not self.is_main:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        if echo:
            tqdm.write(line, file=sys.stderr)
        append_text(self.exp / "log" / "train.log", line + "\n")

    def _truncate_metrics(self) -> None:
        if self.is_main:
            truncate_metrics(self.exp / "metrics.jsonl", self.step)

    # loop ---------------------------------------------------------------------------------
    def fit(self) -> Path:
        """Train to `max_steps` (resuming if the exp dir has a checkpoint); returns last.pt."""
        self._resume()  # first: a rerun refused for another config leaves the exp dir as it was
        self._prepare_exp()
        if self.step:
            changes = f" with {', '.join(self.resume_changes)}" if self.resume_changes else ""
            self._log(f"resumed from {self.ckpt_dir / 'last.pt'} at step {self.step}{changes}")
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                **_no_forward_buffer_sync())
        if self.step >= self.tc.max_steps:
            self._log(f"already trained to step {self.step} (train.max_steps="
                      f"{self.tc.max_steps}); nothing to do")
            return self.ckpt_dir / "last.pt"
        self._truncate_metrics()
        writer = self._tensorboard()
        loader = torch.utils.data.DataLoader(
            self.batches, batch_size=None, sampler=range(self.step, self.tc.max_steps),
            num_workers=self.tc.num_workers, pin_memory=self.device.type == "cuda",
            # its own generator: the loader's worker seed must not draw from the global RNG,
            # or a resumed run's dropout/jitter stream would be shifted by one draw
            generator=torch.Generator().manual_seed(self.cfg.seed))
        sums: dict[str, float] = defaultdict(float)
        count, last_saved = 0, self.step
        bar = tqdm(total=self.tc.max_steps, initial=self.step, desc="train", unit="step",
                   disable=not (self.progress and self.is_main), dynamic_ncols=True,
                   file=sys.stderr)
        self.model.train()
        t_prev = time.perf_counter()
        for batch in loader:
            t_data = time.perf_counter()
            loss, metrics = self._train_step(batch)
            self.step += 1
            t_done = time.perf_counter()
            for key, value in {"loss": loss, **metrics}.items():
                sums[key] += float(value)
            sums["step_time"] += t_done - t_prev
            sums["data_wait"] += t_data - t_prev
            count += 1
            t_prev = t_done
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            self._trigger("on_step_end")
            if self.step % self.tc.log_every == 0 or self.step == self.tc.max_steps:
                self._write_metrics({k: v / count for k, v in sums.items()}, writer)
                sums.clear()
                count = 0
            if self.valid_batches and self.tc.valid_every and (
                    self.step % self.tc.valid_every == 0 or self.step == self.tc.max_steps):
                self._validate(writer)
            if self.step % self.tc.checkpoint_every == 0 or self.step == self.tc.max_steps:
                if self.is_main:
                    self.save()
                last_saved = self.step
        bar.close()
        if writer is not None:
            writer.close()
        assert last_saved == self.step == self.tc.max_steps
        self._log(f"finished at step {self.step}: {self.ckpt_dir / 'last.pt'}")
        return self.ckpt_dir / "last.pt"

    def _train_step(self, batch: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                 for k, v in batch.items()}
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) \
            if self.amp_dtype is not None else contextlib.nullcontext()
        with autocast:
            loss, metrics = self.step_fn(self.model, batch)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        norm = nn.utils.clip_grad_norm_(self.model.parameters(),
                                        self.tc.grad_clip if self.tc.grad_clip > 0 else math.inf)
        # One host sync per step: loss, gradient norm and metrics come to the CPU together, and
        # are checked before the optimiser moves (a NaN step changes no weight).
        values = torch.stack([torch.as_tensor(v, device=self.device).detach().reshape(()).double()
                              for v in (loss, norm, *metrics.values())])  # (2 + n_metrics,)
        # (fp16's scaler skips steps with inf/NaN gradients itself)
        self._check_finite(values[:2], check_norm=not self.scaler.is_enabled())
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        host = values.tolist()
        return host[0], dict(zip(metrics, host[2:]))

    def _check_finite(self, loss_and_norm: torch.Tensor, check_norm: bool) -> None:
        """Stop (on every rank) when the loss, or the gradient norm when checked, is NaN/inf."""
        bad = (~torch.isfinite(loss_and_norm)).double()  # (2,)
        if not check_norm:
            bad[1] = 0
        if self.world > 1:  # every rank must stop together, or the others hang in all-reduce
            dist.all_reduce(bad)
        flags = bad.tolist()
        if flags[0] > 0 or flags[1] > 0:
            what, k = ("loss", 0) if flags[0] > 0 else ("gradient norm", 1)
            last = self.ckpt_dir / "last.pt"
            good = f"the last good checkpoint is {last}" if last.exists() else \
                "no checkpoint was written yet"
            raise TrainingError(f"{what} became {float(loss_and_norm[k])} at step "
                                f"{self.step + 1}; {good}; to resume from it with a lower lr, "
                                f"rerun the same command with train.lr={self.tc.lr / 2:g} (or "
                                f"a lower train.grad_clip) and --change-optimizer; or check "
                                f"the data")

    def validate(self) -> dict[str, float]:
        """Mean loss and metrics over the held-out batches (weighted by batch size), in eval
        mode, without gradients, under a seeded RNG of its own: the training RNG stream, and so
        training itself, is the same with validation on or off."""
        model = self._unwrapped()
        was_training = model.training
        model.eval()
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        totals, n_items = None, 0
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=cuda):
                torch.manual_seed(self.cfg.seed)
                for batch in self.valid_batches:
                    batch = {k: v.to(self.device) if torch.is_tensor(v) else v
                             for k, v in batch.items()}
                    autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) \
                        if self.amp_dtype is not None else contextlib.nullcontext()
                    with autocast:
                        loss, metrics = self.step_fn(model, batch)
                    n = len(next(v for v in batch.values() if torch.is_tensor(v)))
                    values = torch.stack([torch.as_tensor(v, device=self.device).reshape(())
                                          .double() for v in (loss, *metrics.values())]) * n
                    totals = values if totals is None else totals + values
                    names = ["loss", *metrics]
                    n_items += n
        finally:
            model.train(was_training)
        self.valid_items = n_items
        means = (totals / n_items).tolist()  # one host transfer for the whole pass
        return dict(zip(names, means))

    def _validate(self, writer: Any) -> None:
        """Validation on the main process; logs ``valid_*`` to metrics.jsonl, keeps best.pt."""
        if not self.is_main:
            return
        means = self.validate()
        self.last_valid_loss = means["loss"]
        record = {"step": self.step, **{f"valid_{k}": round(v, 6) for k, v in means.items()}}
        append_text(self.exp / "metrics.jsonl", json.dumps(record) + "\n")
        if writer is not None:
            for key, value in means.items():
                writer.add_scalar(f"valid/{key}", value, self.step)
        best = means["loss"] < self.best_valid_loss
        if best:
            self.best_valid_loss = means["loss"]
            save_checkpoint(self.state_dict(), self.ckpt_dir / "best.pt")
        self._log(f"step {self.step}: validation loss {means['loss']:.4f} over "
                  f"{self.valid_items} items" + (" (best so far: best.pt)" if best else
                                                  f" (best {self.best_valid_loss:.4f})"))

    def _write_metrics(self, means: dict[str, float], writer: Any) -> None:
        if self.world > 1:  # every rank logs at the same steps: average over all of them
            values = torch.tensor(list(means.values()), dtype=torch.float64, device=self.device)
            dist.all_reduce(values)
            means = dict(zip(means, (values / self.world).tolist()))
        if not self.is_main:
            return
        record = {"step": self.step, **{k: round(v, 6) for k, v in means.items()},
                  "lr": self.sched.get_last_lr()[0]}
        self.last_metrics = record
        append_text(self.exp / "metrics.jsonl", json.dumps(record) + "\n")
        self._log(self._interval_line(record), echo=False)
        if writer is not None:
            for key, value in record.items():
                if key != "step":
                    writer.add_scalar(f"train/{key}", value, self.step)
        self._trigger("on_log")

    def _interval_line(self, record: dict[str, float]) -> str:
        """train.log's line for one logging interval, as ESPnet's train.log has it: step, loss,
        the other metrics, the learning rate, the last validation loss, peak GPU memory."""
        fields = [f"step {self.step}/{self.tc.max_steps}"]
        fields += [f"{k} {v:.4g}" for k, v in record.items() if k not in ("step", "lr")]
        fields.append(f"lr {record['lr']:.3g}")
        if math.isfinite(self.last_valid_loss):
            fields.append(f"valid_loss {self.last_valid_loss:.4g} (best {self.best_valid_loss:.4g})")
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**30
            fields.append(f"peak_gpu_mem {peak:.2f} GiB")
        return ", ".join(fields)

    def _tensorboard(self) -> Any:
        if not self.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra
            return None
        return SummaryWriter(log_dir=str(self.exp / "tensorboard"), purge_step=self.step or None)


def _dotted(values: dict, key: str) -> Any:
    """``values["train"]["lr"]`` for ``train.lr``."""
    for part in key.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


# --------------------------------------------------------------------------------- entry point


def _is_exp_dir(path: Path) -> bool:
    """An exp dir that training made before exp dirs carried the ownership marker."""
    return any((path / name).is_file() for name in ("config.yaml", "cmdline.txt",
                                                    "checkpoints/last.pt"))


def train(cfg: Config, data: str | os.PathLike, exp_dir: str | os.PathLike, *,
          valid: str | os.PathLike | None = None, progress: bool = True,
          command: Sequence[str] | None = None, optimizer_changes: bool = False) -> Path:
    """Train (or resume) the model of `cfg.task` on `data`; returns the path of ``last.pt``.

    Args:
        cfg: resolved config; its ``task`` picks what `data` is and which model trains.
        data: the training data (speech: a dump made by `speechvq dump`).
        exp_dir: the experiment folder.
        valid: held-out data of the same kind for the validation pass (``train.valid_every``).
        optimizer_changes: resume even though `OPTIMIZER_CHANGES` keys differ (``speechvq
            train --change-optimizer``).
    Raises:
        LockedError: another run is training in `exp_dir`. OutputError: `exp_dir` is an input,
            holds files training did not make, or a link in it leads out of it.
    """
    task = get_task(cfg.task)
    main = distributed_env().rank == 0
    if cfg.train.valid_every and valid is None and main and not task.holds_out:
        print(f"train: train.valid_every={cfg.train.valid_every} but no --valid data was given: "
              f"no validation, no best.pt", file=sys.stderr)
    owner = claim(exp_dir, "train", inputs=[data, valid, cfg.train.init_from or None],
                  ours_if=_is_exp_dir, kind="dir") if main else contextlib.nullcontext()
    with owner, process_group(cfg.train.device) as env:
        check_batch_divisible(cfg.train.batch_size, env.world_size)
        fresh = not (Path(exp_dir) / "checkpoints" / "last.pt").exists()
        run = task.setup(cfg, data, valid=valid if cfg.train.valid_every else None,
                         rank=env.rank, world_size=env.world_size, fresh=fresh)
        trainer = Trainer(run.model, cfg, exp_dir, batches=run.batches, step_fn=run.step_fn,
                          extra_state=run.extra_state, exp_files=run.exp_files,
                          valid_batches=run.valid_batches,
                          progress=progress, command=command,
                          optimizer_changes=optimizer_changes, lr_scales=run.lr_scales)
        return trainer.fit()
