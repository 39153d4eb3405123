"""``speechvq evaluate video``: how well a video VQ-VAE reconstructs held-out clips and how well
its prior continues them, beside two baselines that need no model.

Reconstruction (DESIGN.md key ``video.<split>.vqvae.recon_psnr_db``): ``decode(encode(clip))``
rounded to uint8, PSNR = 10 log10(255^2 / MSE) over all pixels of all scored clips (not a mean
of per-clip PSNRs), with a 95 % bootstrap interval over clips.

Continuation (with a prior; van den Oord et al. 2017, section 4.4): the first `prompt_frames`
frames of each of the first `max_clips` clips are encoded; their latent frames
(``prompt_frames / time stride``) are the prompt, and the prior continues the code clip greedily
(temperature 0, code by code in raster order) up to the clip's length; the decoder turns the
whole code clip into frames, and frames ``prompt_frames + 1`` ... are the prediction. Systems
(``video.<split>.<system>``):

- ``continuation``: those predicted frames;
- ``repeat_last``: the last given frame, repeated (right wherever nothing moves);
- ``blank``: an all-zero frame (right on the background of dark-background video).

Each gets ``psnr_db_per_frame`` (predicted frame k = 1, 2, ...: PSNR over that frame of every
continued clip) and ``psnr_db_frames_2_5``, the mean of predicted frames 2-5's PSNRs (frame 1 is
left out as in the usual next-frame reports: its latent frame often shares a time stride with a
given frame; 2-5 is the short-term prediction before any model drifts).

The prior's NLL in bits per code beside uniform, unigram and bigram codes is ``speechvq evaluate
prior`` (`speechvq.evaluation.prior`) on the code dumps; with ``--exp`` the video exp dir its
``prior_<name>.json`` joins this report.

Results go to ``EXP/eval/video_<name>.json`` with the figures beside them
(`speechvq.evaluation.video_figures`; paths under ``details.figures``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from speechvq.evaluation.image import bootstrap_ci, psnr_db
from speechvq.evaluation.results import (check_name, command_line, default_name,
                                         resolve_exp_dir, write_result)

__all__ = ["evaluate_video", "format_video_table", "frame_psnr", "CONTINUATION_SYSTEMS",
           "FRAMES_2_5"]

CONTINUATION_SYSTEMS = ("continuation", "repeat_last", "blank")
SYSTEM_LABELS = {"continuation": "prior, greedy", "repeat_last": "repeat last frame",
                 "blank": "blank frame", "vqvae": "VQ-VAE"}
FRAMES_2_5 = "psnr_db_frames_2_5"
PER_FRAME = "psnr_db_per_frame"
RECON = "recon_psnr_db"


def frame_psnr(predicted: np.ndarray, real: np.ndarray) -> list[float]:
    """PSNR of each frame over all clips: (N, T, H, W, C) arrays -> T values in dB."""
    err = predicted.astype(np.float64) - real.astype(np.float64)
    mse = (err * err).mean(axis=(0, 2, 3, 4))  # (T,)
    return [psnr_db(float(m)) for m in mse]


def _decode(vq, codes: np.ndarray, dev) -> np.ndarray:
    """Frames of code clips (N, t, h, w); (N, T, H, W, C) uint8."""
    import torch

    with torch.no_grad():
        x = vq.decode(torch.from_numpy(codes).to(dev))  # (N, C, T, H, W)
    return x.permute(0, 2, 3, 4, 1).cpu().numpy()


def _load_prior(prior: Any, vq, dev):
    """The prior (a module, or an exp dir / checkpoint loaded as kind ``prior``), refused when
    it does not model this VQ-VAE's video codes."""
    from speechvq.errors import ModelError

    if isinstance(prior, (str, os.PathLike)):
        from speechvq.checkpoint import load_model
        path, prior = prior, load_model(prior, kind="prior", device=dev)
        modality = prior.prior_info.get("modality")
        if modality != "video":
            raise ModelError(f"--prior {path} models {modality} codes; give a prior trained on "
                             f"this video VQ-VAE's codes (model.arch=video)")
    k = getattr(prior, "codebook_size", None)
    if k is not None and k != vq.codebook_size:
        raise ModelError(f"the prior models {k} codes but the VQ-VAE has "
                         f"{vq.codebook_size}; train the prior on this model's codes")
    return prior.eval()


def _continue(vq, prior, clips: np.ndarray, prompt_frames: int, batch_size: int, dev,
              progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """(codes (N, t, h, w) of the clips, their greedy continuations decoded (N, T, H, W, C))."""
    import torch

    from speechvq.encode import encode_clips
    from speechvq.progress import tqdm

    codes = encode_clips(vq, clips, batch_size=batch_size)
    n, t, h, w = codes.shape
    given = prompt_frames // vq.time_stride
    frames = []
    for s in tqdm(range(0, n, batch_size), desc="continue clips", unit="batch",
                  disable=not progress):
        c = torch.from_numpy(codes[s:s + batch_size]).to(dev)
        sampled = prior.sample(len(c), (t, h, w), prompt=c[:, :given].reshape(len(c), -1),
                               temperature=0)
        frames.append(_decode(vq, sampled.cpu().numpy(), dev))
    return codes, np.concatenate(frames)


def evaluate_video(model: str | os.PathLike, data: str | os.PathLike, *, prior: Any = None,
                   prompt_frames: int = 10,
                   name: str | None = None, exp_dir: str | os.PathLike | None = None,
                   checkpoint: str | None = None, batch_size: int = 8, max_clips: int = 64,
                   examples: int = 4, seed: int = 0, device: str = "auto",
                   progress: bool = True) -> dict:
    """Score a video VQ-VAE (and its prior's continuations) on the dump `data`; writes
    ``EXP/eval/video_<name>.json`` and the figures, and returns the result.

    Args:
        model: exp dir or checkpoint of a video run. data: the scored dump (the test split).
        prior: exp dir / checkpoint of a prior over this model's codes, or the module; None =
            reconstruction only. prompt_frames: given frames per continued clip.
        name: result name (default: the dump's folder name). exp_dir: where results go
            (default: the model's exp dir). batch_size: clips per model batch.
        max_clips: clips continued (the first of `data`). examples: clips drawn.
        seed: the bootstrap.
    Raises:
        DataError: a dump of another shape. ConfigError: prompt_frames not a multiple of the
        time stride, or not shorter than the clips.
    """
    from speechvq.checkpoint import load_model
    from speechvq.device import pick_device
    from speechvq.encode import encode_clips
    from speechvq.errors import ConfigError
    from speechvq.progress import tqdm
    from speechvq.evaluation.video_figures import clip_figures, psnr_per_frame_figure
    from speechvq.tasks.video import open_video_dump

    exp = resolve_exp_dir(model, exp_dir)
    name = check_name(name or default_name(data))
    dev = pick_device(device, option="--device")
    vq = load_model(model, checkpoint, kind="video", device=dev)
    dump = open_video_dump(data, vq.config, "scored")
    if prior is not None and (prompt_frames % vq.time_stride or prompt_frames >= dump.frames):
        raise ConfigError(f"--prompt-frames {prompt_frames} must be a multiple of the model's "
                          f"time stride ({vq.time_stride}) and shorter than the clips "
                          f"({dump.frames} frames)")
    n = len(dump)
    sse = np.zeros(n)
    frame_dims = int(np.prod(dump.clips.shape[1:]))
    recon_first = None
    for s in tqdm(range(0, n, batch_size), desc="reconstruct clips", unit="batch",
                  disable=not progress):
        real = np.asarray(dump.clips[s:s + batch_size])
        recon = _decode(vq, encode_clips(vq, real, batch_size=batch_size), dev)
        err = recon.astype(np.float64) - real
        sse[s:s + len(real)] = (err * err).reshape(len(real), -1).sum(1)
        if recon_first is None:
            recon_first = recon
    mse = float(sse.sum() / (n * frame_dims))
    block: dict[str, Any] = {
        "vqvae": {RECON: psnr_db(mse), "recon_mse": mse,
                  "ci95": {RECON: bootstrap_ci(sse, frame_dims, seed)["psnr_db"]}},
        "n_clips": n, "frames": dump.frames, "frame_shape": list(dump.frame_shape),
        "latent_shape": list(vq.config.model.latent_grid(dump.frames, dump.frame_shape[0])),
        "codebook_size": vq.codebook_size}
    shown = min(examples, n)
    rows = {"real": np.asarray(dump.clips[:shown]), "reconstruction": recon_first[:shown]}
    figures: dict[str, str] = {}
    if prior is not None:
        pm = _load_prior(prior, vq, dev)
        m = min(n, max_clips)
        real = np.asarray(dump.clips[:m])
        codes, continued = _continue(vq, pm, real, prompt_frames, batch_size, dev, progress)
        future = real[:, prompt_frames:]
        preds = {"continuation": continued[:, prompt_frames:],
                 "repeat_last": np.repeat(real[:, prompt_frames - 1:prompt_frames],
                                          future.shape[1], axis=1),
                 "blank": np.zeros_like(future)}
        for s, pred in preds.items():
            per_frame = frame_psnr(pred, future)
            block[s] = {PER_FRAME: per_frame, FRAMES_2_5: float(np.mean(per_frame[1:5]))}
        block.update(n_clips_continued=m, prompt_frames=prompt_frames,
                     prompt_latent_frames=prompt_frames // vq.time_stride)
        rows["continuation"] = continued[:shown]
        figures["psnr_per_frame"] = str(psnr_per_frame_figure(
            {s: block[s][PER_FRAME] for s in CONTINUATION_SYSTEMS},
            exp / "eval" / f"video_{name}_psnr_per_frame.png", prompt_frames))
    for k, path in clip_figures(rows, exp / "eval", f"video_{name}",
                                prompt_frames if prior is not None else None).items():
        figures[k] = str(path)
    words = ["speechvq", "evaluate", "video", "--model", str(model), "--checkpoint", checkpoint,
             "--data", str(data), "--prior", None if prior is None else str(prior),
             "--prompt-frames", prompt_frames, "--max-clips", max_clips, "--name", name,
             "--exp", None if exp_dir is None else str(exp), "--seed", seed]
    data_paths = {"model": str(model), "checkpoint": checkpoint, "data": str(data),
                  "prior": None if prior is None else str(prior)}
    result = {"video": {name: block}, "command": command_line(words), "data": data_paths,
              "details": {"figures": figures}}
    write_result(exp, "video", name, result)
    return result


def continuation_line(block: dict) -> str | None:
    """One sentence: the continuation's mean PSNR over predicted frames 2-5 against the better
    baseline (None without continuations)."""
    if "continuation" not in block:
        return None
    best = max(("repeat_last", "blank"), key=lambda s: block[s][FRAMES_2_5])
    gain = block["continuation"][FRAMES_2_5] - block[best][FRAMES_2_5]
    return (f"greedy continuation - {SYSTEM_LABELS[best]}: {gain:+.2f} dB mean PSNR over "
            f"predicted frames 2-5" + ("" if gain > 0 else " (the baseline wins)"))


def format_video_table(result: dict) -> str:
    """The video block(s) of a result as plain text."""
    lines = []
    for split, block in result["video"].items():
        ci = block["vqvae"]["ci95"][RECON]
        lines.append(f"video {split}: {block['n_clips']} clips of {block['frames']} frames of "
                     f"{'x'.join(map(str, block['frame_shape']))}, "
                     f"{'x'.join(map(str, block['latent_shape']))} codes of K="
                     f"{block['codebook_size']}")
        lines.append(f"reconstruction PSNR {block['vqvae'][RECON]:.2f} dB "
                     f"[{ci[0]:.2f}, {ci[1]:.2f}]")
        if "continuation" in block:
            lines.append(f"continuations of {block['n_clips_continued']} clips from "
                         f"{block['prompt_frames']} frames; PSNR dB per predicted frame")
            head = f"{'system':<14}{'frames 2-5':>11}  per frame"
            lines += [head, "-" * 60]
            for s in CONTINUATION_SYSTEMS:
                lines.append(f"{s:<14}{block[s][FRAMES_2_5]:>11.2f}  "
                             + " ".join(f"{v:.1f}" for v in block[s][PER_FRAME]))
            lines.append(continuation_line(block))
    return "\n".join(lines)
