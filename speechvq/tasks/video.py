"""The video task: a VQ-VAE with 3-D convolutions (`speechvq.models.video.VideoVQVAE`) on a
video dump, trained by the shared Trainer (van den Oord et al. 2017, section 4.4).

It gives the core (`speechvq.registry.Task`): the config sections (`speechvq.config.video`),
the model, step-indexed batches of training windows (`speechvq.data.video.batches`), the step
function (the model's loss and `speechvq.models.image.TRAINING` metrics), held-out whole clips
for validation, and the checkpoint loader (built, stepped and loaded as the image task's:
`speechvq.tasks.pixels`). Torch and the models are imported when a run is set up, so resolving
a config stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from speechvq.config.video import VideoDataConfig, VideoModelConfig, check_video
from speechvq.errors import DataError
from speechvq.registry import Task, TaskRun, register_task
from speechvq.tasks.pixels import build_pixel_model, load_pixel_model, pixel_step

VARIANCE_CLIPS = 256  # training clips the pixel variance of the MSE loss is measured on


def video_step(model: Any, batch: Mapping[str, Any]) -> tuple[Any, dict]:
    """`step_fn` of the video VQ-VAE: its loss and the metrics metrics.jsonl records."""
    return pixel_step(model, batch["clip"])


def open_video_dump(path: str | os.PathLike, cfg: Any, what: str):
    """The dump at `path`, refused when its clips are not the shape `cfg.data` says."""
    from speechvq.data.video.dump import VideoDump

    dump = VideoDump.open(path)
    h, w, c = dump.frame_shape
    d = cfg.data
    if (dump.frames, h, w, c) != (d.frames, d.image_size, d.image_size, d.channels):
        raise DataError(f"{what} dump '{path}' holds clips of {dump.frames} frames of "
                        f"{h}x{w}x{c} but the config says data.frames={d.frames}, "
                        f"data.image_size={d.image_size}, data.channels={d.channels}; set "
                        f"data.frames={dump.frames} data.image_size={h} data.channels={c} "
                        f"(square frames only), or prepare the clips at that size")
    if len(dump) == 0:
        raise DataError(f"{what} dump '{path}' holds no clips")
    return dump


def setup_video(cfg: Any, data: str | os.PathLike, *, valid: str | os.PathLike | None = None,
                rank: int = 0, world_size: int = 1, fresh: bool = True) -> TaskRun:
    """Build a video training run on the dump `data` (see `speechvq.registry.TaskRun`).

    Args:
        cfg: resolved video config. data: a dump made by `speechvq prepare-video`.
        valid: a held-out dump for the validation pass (whole clips; None: no validation).
        rank, world_size: this process under torchrun (each rank takes its slice of a batch).
        fresh: no checkpoint exists yet (only then does ``train.init_from`` apply).
    """
    from speechvq.data.video.batches import VideoBatches, validation_clips
    from speechvq.models.video import VideoVQVAE

    dump = open_video_dump(data, cfg, "training")
    model = build_pixel_model(VideoVQVAE, cfg, dump.clips, fresh=fresh, rank=rank,
                              limit=VARIANCE_CLIPS, chunk=32)
    held = None
    if valid is not None:
        held = validation_clips(open_video_dump(valid, cfg, "validation"),
                                cfg.train.batch_size, cfg.train.valid_max_items)
    batches = VideoBatches(dump, cfg.train.batch_size, cfg.seed, cfg.data.train_frames,
                           rank=rank, world_size=world_size)
    return TaskRun(model=model, batches=batches, step_fn=video_step, valid_batches=held)


def load_video(state: dict, path: Path) -> Any:
    """The video VQ-VAE of a loaded checkpoint, in eval mode on the CPU.

    Raises:
        ModelError: weights that do not fit the config they came with.
    """
    from speechvq.models.video import VideoVQVAE

    return load_pixel_model(VideoVQVAE, state, path)


TASK = register_task(Task(
    name="video", sections={"data": VideoDataConfig, "model": VideoModelConfig},
    setup=setup_video, load=load_video, check=check_video,
    doc="video VQ-VAE: clips -> 3-D codes (time stride 2, space stride 4) -> frames (paper "
        "section 4.4)"))
