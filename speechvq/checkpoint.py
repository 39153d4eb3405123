"""Checkpoint files: atomic writes, safe loads, and finding the checkpoint a user means.

A checkpoint is a dict of tensors, ints, floats, strings, lists and dicts only, so it loads with
``torch.load(weights_only=True)``: loading a checkpoint never runs code. Writes go to a temp name in
the same folder and are renamed (`speechvq.fileio.atomic_path`), so a kill at any moment leaves
either the old file or the new one.

`--model M` everywhere means an exp dir (its ``checkpoints/last.pt``, or ``--checkpoint NAME``
inside it: ``best`` is ``best.pt``, the best validation loss) or a ``.pt`` file.

A checkpoint's ``kind`` names the task that wrote it; `load_model` hands the checkpoint to that
task's loader (`speechvq.registry`), and a command that needs one kind refuses another with both
named. Checkpoints from before tasks carry ``kind: speech`` or no kind, which means speech.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from speechvq.errors import ConfigError, ModelError
from speechvq.fileio import atomic_path

DEFAULT_KIND = "speech"  # the kind of a checkpoint that names none (the first speechvq wrote none)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically (temp ``.NAME.tmp`` in the same folder, fsync, rename;
    a rerun overwrites the temp a killed run left). Returns: `path`."""
    path = Path(path)
    with atomic_path(path, stable_name=True) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)  # to a file object: the archive's inner folder is "archive"
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``.

    Raises:
        ModelError: the file is missing, truncated (at any size), holds something other than
            plain data, or weights that are NaN or infinite (a diverged run: codes from them
            would be meaningless).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint '{path}' does not exist; give an exp dir with "
                         f"checkpoints/last.pt or a .pt file to --model")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError,
            IndexError, TypeError, AttributeError) as e:  # torch's zip reader, by where it stops
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        first = first.split(". ")[0]  # torch's zip reader adds a paragraph of advice
        if "weights only load failed" in first.lower() or "invalid load key" in first.lower():
            first = "not a plain-data PyTorch file"  # torch's own text runs to a page
        elif isinstance(e, OSError) or "zip archive" in first:
            first = f"truncated or not a PyTorch archive: {first}"
        raise ModelError(f"checkpoint '{path}' cannot be loaded safely ({first}); it is "
                         f"corrupt or was not written by speechvq: retrain or pick another "
                         f"checkpoint") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ModelError(f"checkpoint '{path}' is not a speechvq checkpoint (no model/config "
                         f"entries)")
    weights = state["model"] if isinstance(state["model"], dict) else {}
    for name, tensor in weights.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() \
                and not bool(torch.isfinite(tensor).all()):
            raise ModelError(f"checkpoint '{path}' holds NaN or infinite weights ({name}); the "
                             f"run that wrote it diverged: pick an earlier checkpoint "
                             f"(--checkpoint step_...) or retrain with a lower train.lr")
    return state


def load_weights_(model: torch.nn.Module, weights: dict, path: str | os.PathLike
                  ) -> torch.nn.Module:
    """`model.load_state_dict(weights)`, for a task's checkpoint loader.

    Raises:
        ModelError: the weights do not fit the model the checkpoint's config describes (one
            line naming the checkpoint, not torch's list of every mismatched key).
    """
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"checkpoint '{path}' does not match the model its config describes "
                         f"({first}); it was written by another speechvq version") from None
    return model


def resolve_checkpoint(model: str | os.PathLike, checkpoint: str | None = None) -> Path:
    """The checkpoint file that `--model M [--checkpoint NAME]` names.

    Args:
        model: an exp dir or a ``.pt`` file.
        checkpoint: inside an exp dir, a file name under ``checkpoints/`` (default ``last.pt``).
    """
    model = Path(model)
    if model.is_file():
        return model
    if model.is_dir():
        name = checkpoint or "last.pt"
        if not name.endswith(".pt"):
            name += ".pt"  # --checkpoint best, --checkpoint step_00001000
        path = model / "checkpoints" / name
        if path.is_file():
            return path
        found = sorted(p.name for p in (model / "checkpoints").glob("*.pt")) \
            if (model / "checkpoints").is_dir() else []
        have = f"; it has: {', '.join(found)}" if found else "; it has no checkpoints (train first)"
        raise ModelError(f"no checkpoint '{name}' in exp dir '{model}/checkpoints'{have}")
    raise ModelError(f"--model '{model}' is neither an exp dir nor a checkpoint file; give the "
                     f"exp dir of `speechvq train` (e.g. exp/mini) or a .pt file")


def checkpoint_kind(state: dict) -> str:
    """The task that wrote a loaded checkpoint."""
    return str(state.get("kind", DEFAULT_KIND))


def load_model(model: str | os.PathLike, checkpoint: str | None = None, *,
               kind: str | None = None, device: str | torch.device = "cpu"):
    """The trained model behind `--model M [--checkpoint NAME]`, in eval mode, built by the task
    that wrote it.

    Args:
        model: an exp dir or a ``.pt`` file. checkpoint: a name inside the exp dir.
        kind: the task the caller needs (None: any); another kind is refused.
        device: where to put the model: a torch device, or a name (``auto`` = CUDA when
            available; `speechvq.device.pick_device`).
    Raises:
        ModelError: no such checkpoint, an unsafe or corrupt one, or one of another kind.
        ConfigError: a device this machine does not have.
    """
    from speechvq.device import pick_device
    from speechvq.registry import get_task

    if isinstance(device, str):
        device = pick_device(device, option="device")

    path = resolve_checkpoint(model, checkpoint)
    state = load_checkpoint(path, map_location="cpu")  # weights_only=True
    found = checkpoint_kind(state)
    if kind is not None and found != kind:
        raise ModelError(f"checkpoint '{path}' holds a '{found}' model, but this command needs a "
                         f"'{kind}' model; give the exp dir of a {kind} run")
    try:
        task = get_task(found)
    except ConfigError:  # an unknown kind is the checkpoint's fault, not the config's
        raise ModelError(f"checkpoint '{path}' holds a '{found}' model, which this speechvq "
                         f"cannot load; upgrade speechvq or retrain") from None
    return task.load(state, path).to(device).eval()
