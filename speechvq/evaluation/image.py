"""``speechvq evaluate images``: how well an image VQ-VAE reconstructs held-out images, beside a
classical vector quantiser at the same bits per image.

Systems (DESIGN.md, report keys ``images.<split>.<system>.<metric>``):

- ``vqvae``: the model's reconstruction ``decode(encode(x))``, rounded to uint8.
- ``patch_kmeans``: k-means with the same K on non-overlapping patches of one latent's footprint
  (2^downsample square x C: 4x4x3 for 8x8 latents of 32x32 RGB), scikit-learn ``KMeans``,
  k-means++ init, up to `kmeans_iters` (default 100) Lloyd iterations, fitted on
  `kmeans_patches` (default 100,000) patches drawn from the ``--fit-on`` images; each patch is
  replaced by its centroid (rounded). The classical VQ image coder (Gersho and Gray 1992,
  "Vector Quantization and Signal Compression"), at exactly the VQ-VAE's bits per image.

Metrics: ``mse`` (per subpixel, uint8 units) and ``psnr_db`` = 10 log10(255^2 / MSE) over all
scored pixels (not a mean of per-image PSNRs), each with a 95 % bootstrap interval over images
(``ci95.<metric>``, the same resamples for both systems); ``bits_per_image`` = latents x
log2 K; ``codes_used`` and ``perplexity`` (exp of the entropy of code use over the scored set);
and for the categorical decoder ``bits_per_dim`` = (-log2 p(x|z) + bits_per_image) / (H W C),
the negative ELBO under the uniform prior the VQ-VAE is trained with (the paper's CIFAR-10
table), with ``bits_per_dim_given_codes`` = -log2 p(x|z) / (H W C) beside it.

Results go to ``EXP/eval/images_<name>.json`` with the figures beside them
(`speechvq.evaluation.image_figures`; their paths under ``details.figures``), which `speechvq
report` copies into its report (`speechvq.evaluation.report.image`).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from speechvq.evaluation import bootstrap
from speechvq.evaluation.results import (check_name, command_line, default_name,
                                         resolve_exp_dir, write_result)
from speechvq.models.image import BITS_GIVEN_CODES, MSE
from speechvq.models.outputs import CODES_USED, PERPLEXITY, Metric

__all__ = ["psnr_db", "code_statistics", "bootstrap_ci", "PatchKMeans", "evaluate_images",
           "format_images_table", "SYSTEMS", "IMAGES", "PSNR"]

SYSTEMS = ("vqvae", "patch_kmeans")
SYSTEM_LABELS = {"vqvae": "VQ-VAE", "patch_kmeans": "patch k-means"}

# The metrics of images.<split>.<system>, each name defined once (the CLI table and the report).
PSNR = Metric("psnr_db", "PSNR over all pixels", "higher", fmt=".2f", unit="dB", short="PSNR dB")
BITS_PER_IMAGE = Metric("bits_per_image", "bits per image (latents x log2 K)", fmt=".0f",
                        short="bits/img")
BITS_PER_DIM = Metric("bits_per_dim", "bits/dim, negative ELBO under the uniform prior", "lower",
                      fmt=".3f", short="bits/dim")
IMAGES = (MSE, PSNR, BITS_PER_IMAGE, CODES_USED, PERPLEXITY, BITS_PER_DIM, BITS_GIVEN_CODES)


def psnr_db(mse: float) -> float:
    """10 log10(255^2 / mse) in dB (inf for a perfect reconstruction)."""
    return math.inf if mse <= 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def code_statistics(usage: np.ndarray) -> dict[str, float]:
    """``codes_used`` and ``perplexity`` of code counts `usage` (K,)."""
    p = usage[usage > 0] / max(usage.sum(), 1)
    return {CODES_USED.name: int((usage > 0).sum()),
            PERPLEXITY.name: float(np.exp(-(p * np.log(p)).sum()))}


def bootstrap_ci(sse: np.ndarray, dims: int, seed: int) -> dict[str, list[float]]:
    """95 % bootstrap intervals of MSE and PSNR from per-image squared-error sums `sse` (N,)
    of images with `dims` subpixels; resampled images drawn from `seed`."""
    counts = bootstrap.resample_counts(len(sse), seed)  # (R, N)
    lo, hi = bootstrap.ratio_ci(sse, np.full(len(sse), float(dims)), counts)
    return {MSE.name: [lo, hi], PSNR.name: [psnr_db(hi), psnr_db(lo)]}


def _patches(images: np.ndarray, p: int) -> np.ndarray:
    """(N, H, W, C) -> (N * H/p * W/p, p*p*C): non-overlapping patches, image by image."""
    n, h, w, c = images.shape
    x = images.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, p * p * c)


def _unpatch(patches: np.ndarray, n: int, h: int, w: int, c: int, p: int) -> np.ndarray:
    """The inverse of `_patches`; (N, H, W, C)."""
    x = patches.reshape(n, h // p, w // p, p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h, w, c)


class PatchKMeans:
    """k-means over non-overlapping p x p x C patches (see the module docstring).

    Args:
        codebook_size: K. patch: p. n_patches: training patches the centroids are fitted on.
        iters: most Lloyd iterations. seed: patch sampling and k-means++.
    """

    def __init__(self, codebook_size: int, patch: int, n_patches: int = 100000,
                 iters: int = 100, seed: int = 0):
        self.k, self.patch, self.n_patches, self.iters, self.seed = \
            codebook_size, patch, n_patches, iters, seed

    def fit(self, images: np.ndarray) -> "PatchKMeans":
        """Fit on (N, H, W, C) uint8 images (a memory map is fine)."""
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        n, h, w, _ = images.shape
        per_image = (h // self.patch) * (w // self.patch)
        rng = np.random.default_rng(self.seed)
        n_images = min(n, math.ceil(self.n_patches / per_image))
        pick = np.sort(rng.permutation(n)[:n_images])
        data = _patches(np.asarray(images[pick]), self.patch).astype(np.float32)
        if len(data) > self.n_patches:
            data = data[np.sort(rng.permutation(len(data))[:self.n_patches])]
        self.n_fit = len(data)
        k = min(self.k, len(data))
        with warnings.catch_warnings():  # fewer distinct patches than K (tiny data sets)
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.kmeans = KMeans(k, init="k-means++", n_init=1, max_iter=self.iters, tol=0.0,
                                 random_state=self.seed).fit(data)
        self.centroids = np.clip(np.rint(self.kmeans.cluster_centers_), 0, 255).astype(np.uint8)
        return self

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Centroid index of every patch; (N, H/p, W/p) int64."""
        n, h, w, _ = images.shape
        codes = self.kmeans.predict(_patches(images, self.patch).astype(np.float32))
        return codes.reshape(n, h // self.patch, w // self.patch).astype(np.int64)

    def decode(self, codes: np.ndarray, channels: int) -> np.ndarray:
        """Images of patch codes (N, h, w); (N, h*p, w*p, C) uint8."""
        n, h, w = codes.shape
        p = self.patch
        return _unpatch(self.centroids[codes.reshape(-1)], n, h * p, w * p, channels, p)


def _score(sse: np.ndarray, usage: np.ndarray, dims: int, bits_per_image: float,
           seed: int) -> dict[str, Any]:
    mse = float(sse.sum() / (len(sse) * dims))
    return {MSE.name: mse, PSNR.name: psnr_db(mse), BITS_PER_IMAGE.name: bits_per_image,
            **code_statistics(usage), "ci95": bootstrap_ci(sse, dims, seed)}


def evaluate_images(model: str | os.PathLike, data: str | os.PathLike, *,
                    fit_on: str | os.PathLike | None = None, name: str | None = None,
                    exp_dir: str | os.PathLike | None = None, checkpoint: str | None = None,
                    batch_size: int = 64, kmeans_patches: int = 100000, kmeans_iters: int = 100,
                    seed: int = 0, device: str = "auto", progress: bool = True) -> dict:
    """Score an image VQ-VAE and the patch k-means baseline on the dump `data`; writes
    ``EXP/eval/images_<name>.json`` and its figures, and returns the result.

    Args:
        model: exp dir or checkpoint of an image run. data: the scored dump (the test split).
        fit_on: the dump the baseline is fitted on (the training split); None = `data` itself.
        name: result name (default: the dump's folder name). exp_dir: where results go
            (default: the model's exp dir). batch_size: images per model batch.
        kmeans_patches, kmeans_iters: the baseline's training patches and Lloyd iterations.
        seed: patch sampling, k-means++ and the bootstrap.
    """
    import torch
    from speechvq.progress import tqdm

    from speechvq.checkpoint import load_model
    from speechvq.data.images.batches import to_batch
    from speechvq.device import pick_device
    from speechvq.evaluation.image_figures import code_usage_figure, reconstruction_grid
    from speechvq.tasks.image import open_image_dump

    exp = resolve_exp_dir(model, exp_dir)
    name = check_name(name or default_name(data))
    dev = pick_device(device, option="--device")
    vq = load_model(model, checkpoint, kind="image", device=dev)
    dump = open_image_dump(data, vq.config, "scored")
    fit = dump if fit_on is None else open_image_dump(fit_on, vq.config, "--fit-on")
    h, w, c = dump.shape
    dims, p, k = h * w * c, 2 ** vq.downsample, vq.codebook_size
    bits_per_image = (h // p) * (w // p) * math.log2(k)
    baseline = PatchKMeans(k, p, kmeans_patches, kmeans_iters, seed).fit(fit.images)

    n = len(dump)
    sse = {s: np.zeros(n) for s in SYSTEMS}
    usage = {s: np.zeros(k, np.int64) for s in SYSTEMS}
    nll_bits = np.zeros(n) if vq.output == "categorical" else None
    shown = min(n, 16)
    grid = {"original": np.asarray(dump.images[:shown])}
    for start in tqdm(range(0, n, batch_size), desc="evaluate images", unit="batch",
                      disable=not progress):
        originals = np.asarray(dump.images[start:start + batch_size])  # (b, H, W, C)
        stop = start + len(originals)
        x = to_batch(originals, dump.labels[start:stop])["image"].to(dev)  # (b, C, H, W)
        with torch.no_grad():
            codes = vq.encode(x)  # (b, h, w)
            recons = {"vqvae": vq.decode(codes).permute(0, 2, 3, 1).cpu().numpy()}
            if nll_bits is not None:
                nll_bits[start:stop] = vq.nll_bits(x).cpu().numpy()
        km_codes = baseline.encode(originals)
        recons["patch_kmeans"] = baseline.decode(km_codes, c)
        for s, codes_s in (("vqvae", codes.cpu().numpy()), ("patch_kmeans", km_codes)):
            err = recons[s].astype(np.float64) - originals
            sse[s][start:stop] = (err * err).reshape(len(err), -1).sum(1)
            usage[s] += np.bincount(codes_s.reshape(-1), minlength=k)
            if start < shown:
                grid.setdefault(s, []).append(recons[s][:shown - start])
    block: dict[str, Any] = {s: _score(sse[s], usage[s], dims, bits_per_image, seed)
                             for s in SYSTEMS}
    if nll_bits is not None:
        block["vqvae"][BITS_GIVEN_CODES.name] = float(nll_bits.sum() / (n * dims))
        block["vqvae"][BITS_PER_DIM.name] = float((nll_bits.sum() + n * bits_per_image)
                                                  / (n * dims))
    block.update(n_images=n, image_shape=[h, w, c], latent_shape=[h // p, w // p],
                 codebook_size=k, output=vq.output,
                 fit_on="eval" if fit_on is None else str(fit_on),
                 kmeans={"patch": [p, p, c], "n_fit_patches": baseline.n_fit,
                         "iterations": int(baseline.kmeans.n_iter_), "max_iter": kmeans_iters})
    grid = {s: v if s == "original" else np.concatenate(v) for s, v in grid.items()}
    figures = {"reconstructions": reconstruction_grid(
                   grid, exp / "eval" / f"images_{name}_reconstructions.png",
                   {s: block[s][PSNR.name] for s in SYSTEMS}),
               "code_usage": code_usage_figure(usage, exp / "eval" / f"images_{name}_codes.png")}
    result = {
        "images": {name: block},
        "command": command_line(["speechvq", "evaluate", "images", "--model", str(model),
                                 "--checkpoint", checkpoint, "--data", str(data),
                                 "--fit-on", None if fit_on is None else str(fit_on),
                                 "--name", name, "--exp", None if exp_dir is None else str(exp),
                                 "--kmeans-patches", kmeans_patches, "--kmeans-iters",
                                 kmeans_iters, "--seed", seed]),
        "data": {"model": str(model), "checkpoint": checkpoint, "data": str(data),
                 "fit_on": None if fit_on is None else str(fit_on)},
        "details": {"figures": {key: str(path) for key, path in figures.items()}},
    }
    write_result(exp, "images", name, result)
    return result


# ------------------------------------------------------------------------------------ table


def psnr_gain_line(block: dict) -> str:
    """One sentence: the VQ-VAE's PSNR against the baseline's at the same bits per image."""
    gain = block["vqvae"][PSNR.name] - block["patch_kmeans"][PSNR.name]
    return (f"VQ-VAE - patch k-means: {gain:+.2f} dB PSNR at the same "
            f"{block['vqvae'][BITS_PER_IMAGE.name]:.0f} bits per image"
            + ("" if gain > 0 else " (the baseline wins)"))


def format_images_table(result: dict) -> str:
    """The images block(s) of a result as a plain-text table: systems x metrics."""
    lines = []
    for split, block in result["images"].items():
        lines.append(f"images {split}: {block['n_images']} images of "
                     f"{'x'.join(map(str, block['image_shape']))}, "
                     f"{'x'.join(map(str, block['latent_shape']))} codes of K="
                     f"{block['codebook_size']}, baseline fitted on "
                     f"{'the scored data' if block['fit_on'] == 'eval' else block['fit_on']}")
        cols = [m for m in IMAGES if any(m.name in block[s] for s in SYSTEMS)]
        head = f"{'system':<14}" + "".join(f"{m.header:>11}" for m in cols)
        lines += [head, "-" * len(head)]
        for s in SYSTEMS:
            lines.append(f"{s:<14}" + "".join(f"{m.format(block[s].get(m.name)):>11}"
                                               for m in cols))
        lines.append(psnr_gain_line(block))
    return "\n".join(lines)
