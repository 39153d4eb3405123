"""The image task: the VQ-VAE of van den Oord et al. (2017, arXiv:1711.00937, section 4.2) on an
image dump, trained by the shared Trainer.

It gives the core (`speechvq.registry.Task`): the config sections (`speechvq.config.image`), the
model (`speechvq.models.image.ImageVQVAE`), step-indexed batches of whole images
(`speechvq.data.images.batches`), the step function, ``classes.txt`` in the exp dir, the class
list in every checkpoint, held-out batches for validation, and the checkpoint loader. Torch and
the models are imported when a run is set up, so resolving a config stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from speechvq.config.image import ImageDataConfig, ImageModelConfig, check_image
from speechvq.errors import DataError
from speechvq.registry import Task, TaskRun, register_task

VARIANCE_SAMPLE = 10000  # training images the pixel variance of the MSE loss is measured on


def image_step(model: Any, batch: Mapping[str, Any]) -> tuple[Any, dict]:
    """`step_fn` of the image VQ-VAE: its loss and the metrics metrics.jsonl records
    (`speechvq.models.image.TRAINING`)."""
    out = model(batch["image"])
    return out.loss, getattr(model, "module", model).step_metrics(out)


def open_image_dump(path: str | os.PathLike, cfg: Any, what: str):
    """The dump at `path`, refused when its images are not the shape `cfg.data` says."""
    from speechvq.data.images.dump import ImageDump

    dump = ImageDump.open(path)
    h, w, c = dump.shape
    size, channels = cfg.data.image_size, cfg.data.channels
    if (h, w, c) != (size, size, channels):
        raise DataError(f"{what} dump '{path}' holds {h}x{w}x{c} images but the config says "
                        f"data.image_size={size}, data.channels={channels}; set "
                        f"data.image_size={h} data.channels={c} (square images only), or "
                        f"prepare the images at that size")
    if len(dump) == 0:
        raise DataError(f"{what} dump '{path}' holds no images")
    return dump


def pixel_variance(dump: Any, seed: int) -> float:
    """Variance of the pixels (in [-0.5, 0.5] units) of up to `VARIANCE_SAMPLE` training images
    drawn with `seed`."""
    import numpy as np

    pick = np.sort(np.random.default_rng(seed).permutation(len(dump))[:VARIANCE_SAMPLE])
    total = total_sq = 0.0
    for start in range(0, len(pick), 500):  # bounded memory for large images
        x = np.asarray(dump.images[pick[start:start + 500]], np.float64) / 255.0
        total, total_sq = total + x.sum(), total_sq + (x * x).sum()
    n = len(pick) * int(np.prod(dump.shape))
    return total_sq / n - (total / n) ** 2


def setup_image(cfg: Any, data: str | os.PathLike, *, valid: str | os.PathLike | None = None,
                rank: int = 0, world_size: int = 1, fresh: bool = True) -> TaskRun:
    """Build an image training run on the dump `data` (see `speechvq.registry.TaskRun`).

    Args:
        cfg: resolved image config. data: a dump made by `speechvq prepare-images`.
        valid: a held-out dump for the validation pass (None: no validation).
        rank, world_size: this process under torchrun (each rank takes its slice of a batch).
        fresh: no checkpoint exists yet (only then does ``train.init_from`` apply).
    """
    import torch

    from speechvq.data.images.batches import ImageBatches, validation_batches
    from speechvq.models.freezing import init_and_freeze_
    from speechvq.models.image import ImageVQVAE

    dump = open_image_dump(data, cfg, "training")
    classes = list(dump.classes)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = ImageVQVAE.from_config(cfg)
    model.set_pixel_variance_(pixel_variance(dump, cfg.seed))
    init_and_freeze_(model, cfg.train, fresh=fresh, rank=rank)
    held = None
    if valid is not None:
        held = validation_batches(open_image_dump(valid, cfg, "validation"),
                                  cfg.train.batch_size, cfg.train.valid_max_items)
    batches = ImageBatches(dump, cfg.train.batch_size, cfg.seed, rank=rank,
                           world_size=world_size)
    return TaskRun(model=model, batches=batches, step_fn=image_step,
                   extra_state={"classes": classes},
                   exp_files={"classes.txt": "".join(f"{c}\n" for c in classes)},
                   valid_batches=held)


def load_image(state: dict, path: Path) -> Any:
    """The image VQ-VAE of a loaded checkpoint, in eval mode on the CPU.

    Raises:
        ModelError: weights that do not fit the config they came with.
    """
    from speechvq.checkpoint import load_weights_
    from speechvq.config import config_from_dict
    from speechvq.models.image import ImageVQVAE

    cfg = config_from_dict(state["config"], source=f"checkpoint {path}")
    model = ImageVQVAE.from_config(cfg)
    load_weights_(model, state["model"], path)
    model.classes = list(state.get("classes", []))
    model.config = cfg
    return model.eval()


TASK = register_task(Task(
    name="image", sections={"data": ImageDataConfig, "model": ImageModelConfig},
    setup=setup_image, load=load_image, check=check_image,
    doc="image VQ-VAE: pixels -> 2-D codes -> MSE or 256-way categorical decoder (paper "
        "section 4.2)"))
