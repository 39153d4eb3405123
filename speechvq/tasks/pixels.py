"""What the image and video tasks share (`speechvq.tasks.image`, `speechvq.tasks.video`): their
VQ-VAEs (`speechvq.models.image`) take uint8 pixels, scale the MSE loss by the variance of the
training pixels, and are built, stepped and loaded alike. Not a task itself: it registers
nothing, and neither task imports the other. Torch and the models are imported when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

VARIANCE_SAMPLE = 10000  # training images the pixel variance of the MSE loss is measured on


def pixel_variance(items: Any, seed: int, limit: int = VARIANCE_SAMPLE,
                   chunk: int = 500) -> float:
    """Variance of the pixels (in [-0.5, 0.5] units) of up to `limit` training items (images,
    clips: the first axis of the uint8 array `items`) drawn with `seed`, read `chunk` at a time."""
    import numpy as np

    pick = np.sort(np.random.default_rng(seed).permutation(len(items))[:limit])
    total = total_sq = 0.0
    for start in range(0, len(pick), chunk):  # bounded memory for large items
        x = np.asarray(items[pick[start:start + chunk]], np.float64) / 255.0
        total, total_sq = total + x.sum(), total_sq + (x * x).sum()
    n = len(pick) * int(np.prod(items.shape[1:]))
    return total_sq / n - (total / n) ** 2


def pixel_step(model: Any, pixels: Any) -> tuple[Any, dict]:
    """One step of a pixel VQ-VAE on a batch of `pixels`: its loss and the metrics
    metrics.jsonl records (`speechvq.models.image.TRAINING`)."""
    out = model(pixels)
    return out.loss, getattr(model, "module", model).step_metrics(out)


def build_pixel_model(model_class: Any, cfg: Any, items: Any, *, fresh: bool, rank: int,
                      limit: int = VARIANCE_SAMPLE, chunk: int = 500) -> Any:
    """A new `model_class` (ImageVQVAE, VideoVQVAE) for `cfg`, its pixel variance measured on
    the training `items` (`pixel_variance` with `limit`, `chunk`), initialised and frozen as
    ``train.init_from`` / ``train.freeze`` say (`speechvq.models.freezing.init_and_freeze_`)."""
    import torch

    from speechvq.models.freezing import init_and_freeze_

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = model_class.from_config(cfg)
    model.set_pixel_variance_(pixel_variance(items, cfg.seed, limit, chunk=chunk))
    init_and_freeze_(model, cfg.train, fresh=fresh, rank=rank)
    return model


def load_pixel_model(model_class: Any, state: dict, path: Path) -> Any:
    """The `model_class` of a loaded checkpoint, with its config as ``.config``, in eval mode
    on the CPU.

    Raises:
        ModelError: weights that do not fit the config they came with.
    """
    from speechvq.checkpoint import load_weights_
    from speechvq.config import config_from_dict

    cfg = config_from_dict(state["config"], source=f"checkpoint {path}")
    model = model_class.from_config(cfg)
    load_weights_(model, state["model"], path)
    model.config = cfg
    return model.eval()
