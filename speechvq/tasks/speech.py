"""The speech task: the VQ-VAE of van den Oord et al. (2017, arXiv:1711.00937, section 4.3) on a
dump of waveforms, trained by the shared Trainer.

It gives the core (`speechvq.registry.Task`): the config sections (`speechvq.config.speech`), the
model (`speechvq.models.speech.vqvae.VQVAE`), step-indexed batches of random windows
(`speechvq.data.speech.batches`), the step function, ``speakers.txt`` in the exp dir, the speaker
list in every checkpoint, held-out batches for validation, and the checkpoint loader. Torch and
the models are imported when a run is set up, so resolving a config stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from speechvq.config.speech import (SpeechDataConfig, SpeechModelConfig, check_speech,
                                    migrate_speech)
from speechvq.errors import DataError, ModelError
from speechvq.models.speech.outputs import step_metrics
from speechvq.registry import Task, TaskRun, register_task


def speech_step(model: Any, batch: Mapping[str, Any]) -> tuple[Any, dict]:
    """`step_fn` of the speech VQ-VAE: its loss and the metrics metrics.jsonl records
    (`speechvq.models.speech.outputs.STEP_METRICS`)."""
    out = model(batch["wav"], batch["speaker"], batch["length"])
    return out.loss, step_metrics(out)


def _open_dump(path: str | os.PathLike, cfg: Any, what: str):
    from speechvq.data.speech.dump import SpeechDump

    dump = SpeechDump.open(path)
    if dump.sample_rate != cfg.data.sample_rate:
        raise DataError(f"{what} dump '{path}' is at {dump.sample_rate} Hz but "
                        f"data.sample_rate is {cfg.data.sample_rate}; re-dump at that rate or "
                        f"set data.sample_rate={dump.sample_rate}")
    return dump


def setup_speech(cfg: Any, data: str | os.PathLike, *, valid: str | os.PathLike | None = None,
                 rank: int = 0, world_size: int = 1, fresh: bool = True) -> TaskRun:
    """Build a speech training run on the dump `data` (see `speechvq.registry.TaskRun`).

    Args:
        cfg: resolved speech config. data: a dump made by `speechvq dump`.
        valid: a held-out dump for the validation pass (None: no validation).
        rank, world_size: this process under torchrun (each rank takes its slice of a batch).
        fresh: no checkpoint exists yet (only then does ``train.init_from`` apply).
    """
    import torch

    from speechvq.data.speech.batches import SpeechBatches, WindowSampler, validation_batches
    from speechvq.models.freezing import init_and_freeze_
    from speechvq.models.speech.vqvae import VQVAE

    dump = _open_dump(data, cfg, "training")
    speakers = list(dump.speakers)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = VQVAE.from_config(cfg, speakers)
    init_and_freeze_(model, cfg.train, fresh=fresh, rank=rank)
    sampler = WindowSampler(dump.lengths, cfg.data.window, cfg.train.batch_size, cfg.seed,
                            rank=rank, world_size=world_size)
    held = None
    if valid is not None:
        held = validation_batches(_open_dump(valid, cfg, "validation"), speakers,
                                  cfg.data.window, cfg.train.batch_size,
                                  cfg.train.valid_max_items)
    return TaskRun(model=model, batches=SpeechBatches(dump, sampler, hop=model.hop),
                   step_fn=speech_step, extra_state={"speakers": speakers},
                   exp_files={"speakers.txt": "".join(f"{s}\n" for s in speakers)},
                   valid_batches=held)


def load_speech(state: dict, path: Path) -> Any:
    """The VQ-VAE of a loaded speech checkpoint, in eval mode on the CPU.

    Raises:
        ModelError: no speaker list, or weights that do not fit the config they came with.
    """
    from speechvq.checkpoint import load_weights_
    from speechvq.config import config_from_dict
    from speechvq.models.speech.vqvae import VQVAE

    if "speakers" not in state:
        raise ModelError(f"checkpoint '{path}' has no speaker list; it is not a speech VQ-VAE")
    cfg = config_from_dict(state["config"], source=f"checkpoint {path}")
    vqvae = VQVAE.from_config(cfg, list(state["speakers"]))
    load_weights_(vqvae, state["model"], path)
    return vqvae.eval()


TASK = register_task(Task(
    name="speech", sections={"data": SpeechDataConfig, "model": SpeechModelConfig},
    setup=setup_speech, load=load_speech, check=check_speech, migrate=migrate_speech,
    doc="speech VQ-VAE: waveform -> codes -> WaveNet / log-mel heads (paper section 4.3)"))
