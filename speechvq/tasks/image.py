"""The image task: the VQ-VAE of van den Oord et al. (2017, arXiv:1711.00937, section 4.2) on an
image dump, trained by the shared Trainer.

It gives the core (`speechvq.registry.Task`): the config sections (`speechvq.config.image`), the
model (`speechvq.models.image.ImageVQVAE`), step-indexed batches of whole images
(`speechvq.data.images.batches`), the step function, ``classes.txt`` in the exp dir, the class
list in every checkpoint, held-out batches for validation, and the checkpoint loader (built,
stepped and loaded as the video task's: `speechvq.tasks.pixels`). Torch and the models are
imported when a run is set up, so resolving a config stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from speechvq.config.image import ImageDataConfig, ImageModelConfig, check_image
from speechvq.errors import DataError
from speechvq.registry import Task, TaskRun, register_task
from speechvq.tasks.pixels import build_pixel_model, load_pixel_model, pixel_step


def image_step(model: Any, batch: Mapping[str, Any]) -> tuple[Any, dict]:
    """`step_fn` of the image VQ-VAE: its loss and the metrics metrics.jsonl records
    (`speechvq.models.image.TRAINING`)."""
    return pixel_step(model, batch["image"])


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


def setup_image(cfg: Any, data: str | os.PathLike, *, valid: str | os.PathLike | None = None,
                rank: int = 0, world_size: int = 1, fresh: bool = True) -> TaskRun:
    """Build an image training run on the dump `data` (see `speechvq.registry.TaskRun`).

    Args:
        cfg: resolved image config. data: a dump made by `speechvq prepare-images`.
        valid: a held-out dump for the validation pass (None: no validation).
        rank, world_size: this process under torchrun (each rank takes its slice of a batch).
        fresh: no checkpoint exists yet (only then does ``train.init_from`` apply).
    """
    from speechvq.data.images.batches import ImageBatches, validation_batches
    from speechvq.models.image import ImageVQVAE

    dump = open_image_dump(data, cfg, "training")
    classes = list(dump.classes)
    model = build_pixel_model(ImageVQVAE, cfg, dump.images, fresh=fresh, rank=rank)
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
    from speechvq.models.image import ImageVQVAE

    model = load_pixel_model(ImageVQVAE, state, path)
    model.classes = list(state.get("classes", []))
    return model


TASK = register_task(Task(
    name="image", sections={"data": ImageDataConfig, "model": ImageModelConfig},
    setup=setup_image, load=load_image, check=check_image,
    doc="image VQ-VAE: pixels -> 2-D codes -> MSE or 256-way categorical decoder (paper "
        "section 4.2)"))
