"""Sampling from a trained prior (`speechvq sample`): codes drawn in raster order, then decoded by
the VQ-VAE whose codes the prior models (van den Oord et al. 2017, section 4: a PixelCNN's
samples of image codes decoded to images, a WaveNet's samples of speech codes decoded to audio).

    result = sample_prior("exp/images_prior", 16, "samples/", class_name="3", seed=1)

``OUT`` receives

- ``codes/``: the sampled codes as a code dump (`speechvq.data.code_dump`: ids ``sample_000``...,
  the class or speaker each was conditioned on), which ``speechvq evaluate`` reads like any other;
- images: ``sample_000.png`` ... through the VQ-VAE's decoder and ``grid.png`` of them all;
- speech: ``sample_000.wav`` ... through the VQ-VAE's log-mel head and Griffin-Lim (on CPU);
- video: ``sample_000.gif`` (animated) and ``sample_000.png`` (a strip of its frames) through
  the video VQ-VAE's decoder; with a prompt of whole latent frames the strip marks where the
  given frames end.

Conditioning: ``class_name`` / ``speaker`` fixes it for every sample; ``per_class`` draws that
many of every class, class after class (one row of ``grid.png`` each); without either a
conditional prior takes the prompt items' conditions, or goes through its classes in turn.
``prompt`` (a code dump) gives the first ``prompt_length`` codes of items 0, 1, ... in raster order, kept as given.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from speechvq.errors import ConfigError, DataError

__all__ = ["sample_prior", "DECODERS"]

UNCONDITIONED = "none"  # the condition name of samples from an unconditional prior


def _write_images(vq: Any, codes: torch.Tensor, names: list[str], out: Path,
                  conditions: list[str], columns: int = 10) -> list[Path]:
    from speechvq.evaluation.prior_images import image_grid
    from speechvq.fileio import atomic_save_png

    images = vq.decode(codes.to(next(vq.parameters()).device)).permute(0, 2, 3, 1).cpu().numpy()
    paths = []
    for name, image in zip(names, images):
        atomic_save_png(out / f"{name}.png", image)
        paths.append(out / f"{name}.png")
    atomic_save_png(out / "grid.png", image_grid(images, min(columns, len(images))))
    return paths + [out / "grid.png"]


def _write_wavs(vq: Any, codes: torch.Tensor, names: list[str], out: Path,
                conditions: list[str], columns: int = 10) -> list[Path]:
    from speechvq.audio import save_audio

    speakers = [c if c in vq.speakers else vq.speakers[0] for c in conditions]
    wav = vq.decode(codes, speakers, head="mel").cpu()  # (n, Tc * hop), Griffin-Lim on CPU
    paths = []
    for name, w in zip(names, wav):
        save_audio(out / f"{name}.wav", w, vq.sample_rate)
        paths.append(out / f"{name}.wav")
    return paths


def _write_clips(vq: Any, codes: torch.Tensor, names: list[str], out: Path,
                 conditions: list[str], columns: int = 10,
                 prompt_frames: int | None = None) -> list[Path]:
    from speechvq.evaluation.video_figures import clip_files

    clips = vq.decode(codes.to(next(vq.parameters()).device))  # (n, C, T, H, W)
    paths: list[Path] = []
    given = "" if not prompt_frames else f"; the first {prompt_frames} frames' codes given"
    for name, clip in zip(names, clips.permute(0, 2, 3, 4, 1).cpu().numpy()):
        paths += clip_files({"sample": clip}, out / name, prompt_frames or None,
                            f"{name}: decoded prior sample{given}")
    return paths


#: modality -> (VQ-VAE, codes (n, *grid), sample names, their condition names, OUT,
#: columns of a grid figure) -> the files written
DECODERS: dict[str, Callable[..., list[Path]]] = {"image": _write_images, "speech": _write_wavs,
                                                  "video": _write_clips}


def _condition_index(info: dict, name: str, option: str) -> int:
    if not info["n_classes"]:
        raise ConfigError(f"{option} {name}: this prior is unconditional (trained with "
                          f"model.conditional=false, or its codes had one condition)")
    if name not in info["conditions"]:
        shown = ", ".join(info["conditions"][:10])
        raise ConfigError(f"{option} {name!r} is not one the prior knows ({shown}"
                          f"{', ...' if len(info['conditions']) > 10 else ''})")
    return info["conditions"].index(name)


def _prompt(path: str | os.PathLike, n: int, length: int, grid: tuple[int, ...],
            info: dict) -> tuple[torch.Tensor, list[str]]:
    """(n, length) prompt codes from items 0, 1, ... of the code dump at `path` (cycled), and
    those items' condition names."""
    from speechvq.data.code_dump import CodeDump

    dump = CodeDump.open(path)
    if dump.codebook_size != info["codebook_size"]:
        raise DataError(f"--prompt '{path}' holds K = {dump.codebook_size} codes, the prior "
                        f"models K = {info['codebook_size']}; encode it with the prior's VQ-VAE")
    if length > int(np.prod(grid)):
        raise ConfigError(f"--prompt-length {length} exceeds the {int(np.prod(grid))} codes of a "
                          f"sample ({'x'.join(map(str, grid))})")
    rows, conds = [], []
    for k in range(n):
        i = k % len(dump)
        item = dump.item(i).reshape(-1)
        if len(grid) > 1 and dump.shapes[i] != tuple(grid):
            raise DataError(f"--prompt item {dump.ids[i]} is {dump.shapes[i]}, the prior's grid "
                            f"{tuple(grid)}")
        if item.size < length:
            raise DataError(f"--prompt item {dump.ids[i]} has {item.size} codes, fewer than "
                            f"--prompt-length {length}")
        rows.append(item[:length])
        conds.append(dump.conditions[dump.condition_ids[i]])
    return torch.from_numpy(np.stack(rows)), conds


def sample_prior(model: str | os.PathLike, n: int, out: str | os.PathLike, *,
                 class_name: str | None = None, speaker: str | None = None,
                 prompt: str | os.PathLike | None = None, prompt_length: int = 0,
                 length: int | None = None, temperature: float = 1.0, seed: int = 0,
                 per_class: int = 0, checkpoint: str | None = None,
                 device: str = "auto", engine: str | None = None,
                 guidance: float = 0.0) -> dict[str, Any]:
    """`speechvq sample`: draw `n` samples from the prior `model` into `out` (module docstring).

    Args:
        n: samples to draw (with `per_class`: ignored, per_class x classes are drawn).
        class_name, speaker: the condition of every sample (at most one; by name).
        per_class: draw this many of every class of a conditional prior, class by class.
        prompt, prompt_length: a code dump and how many of its items' first codes to keep.
        length: codes per sample of a 1-D prior (default: its training crop).
        temperature: softmax temperature; 0 = greedy. seed: the draws' generator.
        engine: a speech prior's WaveNet sampling engine (`WaveNet.generate`; None = its
            config's, 'auto'); other priors have none.
        guidance: a class-conditional PixelCNN prior's guidance weight
            (`PixelCNNPrior.sample`; 0 = none).
    Returns:
        {"n", "grid", "codes_per_second", "seconds", "files": [...], "codes": OUT/codes}.
    """
    from speechvq.checkpoint import load_model, resolve_checkpoint
    from speechvq.data.code_dump import CodeItem, write_code_dump
    from speechvq.device import pick_device
    from speechvq.ownership import claim
    from speechvq.tasks.prior import vqvae_of

    if sum(x is not None for x in (class_name, speaker)) + bool(per_class) > 1:
        raise ConfigError("give one of --class, --speaker and --per-class")
    if prompt_length and prompt is None:
        raise ConfigError("--prompt-length needs --prompt DATA (a code dump)")
    ckpt = resolve_checkpoint(model, checkpoint)
    out = Path(out)
    with claim(out, "sample", inputs=[ckpt, prompt]):
        dev = pick_device(device, option="--device")
        prior = load_model(ckpt, kind="prior", device=dev)
        info = prior.prior_info
        if engine is not None and info["modality"] != "speech":
            raise ConfigError(f"--engine {engine}: only a speech (wavenet) prior has sampling "
                              f"engines, this one models {info['modality']} codes; drop --engine")
        sampler_args = {} if engine is None else {"engine": engine}
        if guidance:
            if prior.config.model.arch != "pixelcnn" or not info["n_classes"]:
                raise ConfigError(f"--guidance {guidance:g}: only a class-conditional PixelCNN "
                                  f"prior is guided; drop --guidance")
            sampler_args["guidance"] = guidance
        if per_class:
            if not info["n_classes"]:
                raise ConfigError("--per-class: this prior is unconditional (trained with "
                                  "model.conditional=false, or its codes had one condition)")
            n = per_class * info["n_classes"]
        grid = tuple(info["grid"]) if info["grid"] else (int(length or info["crop"]),)
        prompt_codes, prompt_conds = (None, None)
        if prompt is not None:
            prompt_codes, prompt_conds = _prompt(prompt, n, prompt_length or 0, grid, info)
        wanted = class_name if class_name is not None else speaker
        option = "--class" if class_name is not None else "--speaker"
        if per_class:
            cond = torch.arange(info["n_classes"]).repeat_interleave(per_class)
        elif wanted is not None:
            cond = torch.full((n,), _condition_index(info, wanted, option), dtype=torch.long)
        elif info["n_classes"] and prompt_conds is not None:
            cond = torch.tensor([_condition_index(info, c, "--prompt condition")
                                 for c in prompt_conds])
        elif info["n_classes"]:
            cond = torch.arange(n) % info["n_classes"]
        else:
            cond = None
        gen = torch.Generator(device=dev).manual_seed(seed)
        start = time.perf_counter()
        codes = prior.sample(n, grid, cond=None if cond is None else cond.to(dev),
                             prompt=prompt_codes, temperature=temperature, generator=gen,
                             **sampler_args).cpu()
        seconds = time.perf_counter() - start
        names = [f"sample_{i:03d}" for i in range(n)]
        conditions = list(info["conditions"]) if info["n_classes"] else [UNCONDITIONED]
        chosen = [conditions[int(c)] for c in cond] if cond is not None else \
            [UNCONDITIONED] * n
        vq = vqvae_of(prior, dev)
        write_code_dump(out / "codes", [CodeItem(nm, c.numpy(), ch) for nm, c, ch in
                                        zip(names, codes, chosen)],
                        modality=info["modality"], codebook_size=info["codebook_size"],
                        conditions=conditions, checkpoint=info["vqvae"]["path"], source=str(ckpt),
                        grid=info["grid"], frame_rate_hz=info.get("frame_rate_hz"))
        decoder = DECODERS.get(info["modality"])
        extra = {}
        if info["modality"] == "video" and prompt_length:  # whole latent frames given
            per_frame = int(np.prod(grid[1:]))
            extra["prompt_frames"] = prompt_length // per_frame * vq.time_stride
        files = decoder(vq, codes, names, out, chosen, per_class or 10, **extra) \
            if decoder else []
    return {"n": n, "grid": list(grid), "seconds": seconds,
            "codes_per_second": n * int(np.prod(grid)) / max(seconds, 1e-9),
            "files": [str(f) for f in files], "codes": str(out / "codes")}
