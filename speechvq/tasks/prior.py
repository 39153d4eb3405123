"""The prior task: an autoregressive model over a VQ-VAE's codes (van den Oord et al. 2017,
section 4), trained by the shared Trainer after the VQ-VAE, on the code dump that ``speechvq
encode --codes-out`` writes.

It gives the core (`speechvq.registry.Task`): the config sections (`speechvq.config.prior`), the
model that ``model.arch`` names (`speechvq.models.prior.build_prior`: a gated PixelCNN for 2-D
image codes, the causal WaveNet-style prior for 1-D speech codes, the video prior for 3-D
codes), step-indexed batches (`speechvq.data.code_batches`: whole grids, or seeded crops of
``data.crop`` codes), the step function (cross-entropy, logged as ``bits_per_code``), held-out
batches (``--valid``, else the ``data.held_out`` fraction of the training items, which training
never sees), ``conditions.txt`` in the exp dir, and in every checkpoint what sampling needs: K,
the grid or crop, the conditions, the modality and frame rate, and the VQ-VAE checkpoint (path
and SHA-256) the codes came from.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any, Mapping

from speechvq.config.prior import ARCH_DIMS, PriorDataConfig, PriorModelConfig
from speechvq.errors import ConfigError, DataError
from speechvq.models.outputs import Metric
from speechvq.registry import Task, TaskRun, register_task

BITS_PER_CODE = Metric("bits_per_code", "negative log-likelihood (bits per code)", "lower",
                       fmt=".3f", short="bits/code")
TRAINING = (BITS_PER_CODE,)


def prior_step(model: Any, batch: Mapping[str, Any], *, conditional: bool) -> tuple[Any, dict]:
    """`step_fn` of a prior: the cross-entropy (nats per scored code) of its logits against
    the codes, and ``bits_per_code``."""
    import torch.nn.functional as F

    codes, mask = batch["codes"], batch["mask"]
    first = {"first": batch["first"]} if "first" in batch else {}  # windows with a start symbol
    logits = model(codes, batch["cond"] if conditional else None, **first)  # (B, K, *grid)
    nats = F.cross_entropy(logits.float(), codes, reduction="none")  # (B, *grid)
    loss = (nats * mask).sum() / mask.sum().clamp(min=1)
    return loss, {BITS_PER_CODE.name: loss.detach() / math.log(2)}


def check_prior(cfg: Any) -> None:
    """Cross-section checks of a prior root config."""
    if cfg.train.freeze or cfg.train.init_from:
        raise ConfigError("train.freeze and train.init_from do not apply to a prior (it is "
                          "trained whole, from scratch); leave them empty")


def open_code_dump(path: str | os.PathLike, arch: str, what: str):
    """The code dump at `path`, refused when its codes are not the grids `arch` models."""
    from speechvq.data.code_dump import CodeDump

    dump = CodeDump.open(path)
    dims = len(dump.shapes[0])
    if dims != ARCH_DIMS[arch]:
        fit = [a for a, d in ARCH_DIMS.items() if d == dims]
        raise DataError(f"{what} code dump '{path}' holds {dims}-D {dump.modality} codes but "
                        f"model.arch={arch} models {ARCH_DIMS[arch]}-D ones; set "
                        f"model.arch={fit[0] if fit else '?'}")
    return dump


def condition_count(cfg: Any, dump: Any) -> int:
    """The prior's n_classes: the dump's conditions when ``model.conditional``, else 0."""
    return len(dump.conditions) if cfg.model.conditional and len(dump.conditions) > 1 else 0


def start_from_codebook_(model: Any, vqvae_checkpoint: Path) -> None:
    """Start `model`'s code embedding from the codewords of the VQ-VAE that wrote its codes
    (`speechvq.models.prior.codebook_rows`)."""
    import torch

    from speechvq.checkpoint import load_model
    from speechvq.models.prior import codebook_rows

    codebook = load_model(vqvae_checkpoint, device="cpu").quantizer.codebook  # (K, D)
    table = model.code_embedding
    if codebook.shape[0] > table.num_embeddings:
        raise DataError(f"the VQ-VAE '{vqvae_checkpoint}' has {codebook.shape[0]} codes but the "
                        f"prior embeds {table.num_embeddings}; encode again with it")
    with torch.no_grad():
        table.weight[:codebook.shape[0]] = codebook_rows(codebook, table.embedding_dim)


def setup_prior(cfg: Any, data: str | os.PathLike, *, valid: str | os.PathLike | None = None,
                rank: int = 0, world_size: int = 1, fresh: bool = True) -> TaskRun:
    """Build a prior training run on the code dump `data` (see `speechvq.registry.TaskRun`).

    Args:
        cfg: resolved prior config. data: a code dump. valid: a held-out code dump for the
            validation pass (None: the ``data.held_out`` fraction of `data`).
        rank, world_size: this process under torchrun. fresh: no checkpoint exists yet.
    """
    import torch

    from speechvq.data.code_batches import CodeBatches, validation_batches
    from speechvq.data.code_dump import held_out_split
    from speechvq.models.prior import build_prior, condition_parameter_names

    dump = open_code_dump(data, cfg.model.arch, "training")
    ckpt = dump.check_checkpoint()
    train_items, held = held_out_split(len(dump), cfg.data.held_out, cfg.seed)
    n_classes = condition_count(cfg, dump)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = build_prior(cfg.model, codebook_size=dump.codebook_size, n_classes=n_classes)
    if fresh and cfg.model.embed_init == "codebook":
        start_from_codebook_(model, ckpt)
    # windows of a speech prior with a start symbol carry their first input (code_batches)
    start = model.start if getattr(model, "start_symbol", False) else None
    valid_batches = None
    if cfg.train.valid_every:
        vdump, vitems = dump, held
        if valid is not None:
            vdump = open_code_dump(valid, cfg.model.arch, "validation")
            vitems = range(len(vdump))
        if len(vitems):
            valid_batches = validation_batches(vdump, vitems, cfg.train.batch_size,
                                               cfg.data.crop, cfg.train.valid_max_items,
                                               start)
    batches = CodeBatches(dump, train_items, cfg.train.batch_size, cfg.seed, cfg.data.crop,
                          rank=rank, world_size=world_size, start=start,
                          start_share=cfg.data.start_share)
    info = {"codebook_size": dump.codebook_size, "modality": dump.modality,
            "grid": list(dump.grid) if dump.grid else None, "crop": cfg.data.crop,
            "frame_rate_hz": dump.meta.get("frame_rate_hz"), "conditions": list(dump.conditions),
            "n_classes": n_classes, "train_codes": str(Path(data).resolve()),
            "vqvae": {"path": str(ckpt), "sha256": dump.meta["vqvae"]["sha256"]}}
    # at 1 they share the other parameters' optimiser group (train.param_groups)
    lr_scales = {name: cfg.model.condition_lr_scale for name in condition_parameter_names(model)}
    return TaskRun(model=model, batches=batches, lr_scales=lr_scales,
                   step_fn=partial(prior_step, conditional=n_classes > 0),
                   extra_state={"prior": info},
                   exp_files={"conditions.txt": "".join(f"{c}\n" for c in dump.conditions)},
                   valid_batches=valid_batches)


def load_prior(state: dict, path: Path) -> Any:
    """The prior of a loaded checkpoint, in eval mode on the CPU, with ``prior_info`` (what
    `setup_prior` recorded) and ``config`` attached.

    Raises:
        ModelError: weights that do not fit the config they came with.
    """
    from speechvq.checkpoint import load_weights_
    from speechvq.config import config_from_dict
    from speechvq.models.prior import build_prior

    values = state["config"]
    if "start_symbol" not in values.get("model", {}):  # saved before the key: trained without
        values = {**values, "model": {**values["model"], "start_symbol": False}}
    cfg = config_from_dict(values, source=f"checkpoint {path}")
    info = state["prior"]
    model = build_prior(cfg.model, codebook_size=int(info["codebook_size"]),
                        n_classes=int(info["n_classes"]))
    load_weights_(model, state["model"], path)
    model.prior_info, model.config = info, cfg
    return model.eval()


TASK = register_task(Task(
    name="prior", sections={"data": PriorDataConfig, "model": PriorModelConfig},
    setup=setup_prior, load=load_prior, check=check_prior, holds_out=True,
    doc="autoregressive prior over a VQ-VAE's codes: gated PixelCNN (images), causal WaveNet "
        "(speech), causal in time (video) (paper section 4)"))


def vqvae_of(prior: Any, device: Any = "cpu") -> Any:
    """The VQ-VAE whose codes `prior` models (its checkpoint as recorded in the code dump),
    refused when it is gone or its bytes changed since the codes were encoded.

    Raises:
        DataError: naming the checkpoint and the fix.
    """
    from speechvq.checkpoint import load_model
    from speechvq.data.code_dump import file_sha256

    rec = prior.prior_info["vqvae"]
    path = Path(rec["path"])
    if not path.is_file():
        raise DataError(f"the VQ-VAE checkpoint '{path}' whose codes this prior models is gone; "
                        f"restore it to decode samples")
    if file_sha256(path) != rec["sha256"]:
        raise DataError(f"the VQ-VAE checkpoint '{path}' changed since its codes were encoded "
                        f"for this prior (its SHA-256 differs): the prior's codes no longer "
                        f"mean what they meant; encode again and retrain the prior")
    return load_model(path, device=device)
