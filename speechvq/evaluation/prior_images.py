"""The image half of ``speechvq evaluate prior`` (`speechvq.evaluation.prior`): the paper's
bits/dim for a VQ-VAE with the categorical decoder, and the class-match score of
class-conditional samples (a classifier of the real training images labels them), with the
sample grid figure (one row per class).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechvq.evaluation.image_classifier import accuracy, load_or_train_classifier, predict
from speechvq.fileio import atomic_save_png

__all__ = ["add_bits_per_dim", "sample_quality", "image_grid"]


def image_grid(images: np.ndarray, columns: int, pad: int = 2) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (rows*(H+pad)-pad, columns*(W+pad)-pad, C) white-padded grid."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad, c), 255, np.uint8)
    for i, image in enumerate(images):
        y, x = (i // columns) * (h + pad), (i % columns) * (w + pad)
        canvas[y:y + h, x:x + w] = image
    return canvas


def _image_dump(code_dump: Any, what: str):
    """The image dump a code dump was encoded from (its ``source``)."""
    from speechvq.data.images.dump import ImageDump
    from speechvq.errors import DataError

    source = Path(code_dump.meta.get("source") or "")
    if not (source / "images.npy").is_file():
        raise DataError(f"{what}: the images of code dump '{code_dump.path}' ('{source}') are "
                        f"gone; they are needed to score bits/dim and samples")
    return ImageDump.open(source)


def add_bits_per_dim(block: dict, bits: dict, dump: Any, info: dict, device: Any):
    """For a categorical VQ-VAE, put ``bits_per_dim`` = (system bits for z + -log2 p(x|z)) /
    (H W C) in each system of `block`; returns the VQ-VAE (loaded for the samples too)."""
    from speechvq.data.images.batches import to_batch
    from speechvq.tasks.prior import vqvae_of

    class _Prior:  # vqvae_of reads prior_info only
        prior_info = info

    vq = vqvae_of(_Prior, device)
    if vq.output != "categorical":
        return vq
    images = _image_dump(dump, "bits/dim")
    nll = np.zeros(len(images))
    for k in range(0, len(images), 256):
        x = to_batch(np.asarray(images.images[k:k + 256]), images.labels[k:k + 256])["image"]
        nll[k:k + len(x)] = vq.nll_bits(x.to(device)).cpu().numpy()
    dims = int(np.prod(images.shape))
    for system, b in bits.items():
        block[system]["bits_per_dim"] = float((b.sum() + nll.sum()) / (len(nll) * dims))
    block["bits_per_dim_given_codes"] = float(nll.sum() / (len(nll) * dims))
    return vq


def sample_quality(prior: Any, vq: Any, dump: Any, fit: Any, figure: Path, *,
                   samples_per_class: int, seed: int, device: Any, temperature: float = 1.0,
                   progress: bool, guidance: float = 0.0) -> tuple[dict, dict, Path]:
    """Class-conditional samples, decoded and labelled by a classifier of the real training
    images (trained once, saved beside the figure).

    Returns:
        (``prior.samples`` block, ``prior.classifier`` block, the figure written).
    """
    from speechvq.data.images.batches import to_batch

    info = prior.prior_info
    train_images = _image_dump(fit, "samples")
    test_images = _image_dump(dump, "samples")
    # the classifier's own seed, not `seed`: the samples of every seed are labelled by one
    # classifier (trained once), so their figures differ by the samples alone
    classifier, trained = load_or_train_classifier(figure.parent / "image_classifier.pt",
                                                   train_images, progress=progress)
    n_classes = info["n_classes"]
    # the prior's class index i is the image dumps' class named conditions[i]
    classes = list(train_images.classes)
    asked, predicted, grids = [], [], []
    gen = torch.Generator(device=device).manual_seed(seed)
    for c in range(n_classes):
        cond = torch.full((samples_per_class,), c, dtype=torch.long, device=device)
        codes = prior.sample(samples_per_class, tuple(info["grid"]), cond=cond, generator=gen,
                             temperature=temperature, guidance=guidance)  # image: PixelCNN
        images = vq.decode(codes)  # (n, C, H, W) uint8
        predicted.append(predict(classifier, images.cpu()))
        asked.append(np.full(samples_per_class, classes.index(info["conditions"][c])))
        grids.append(images[:10].permute(0, 2, 3, 1).cpu().numpy())
    asked, predicted = np.concatenate(asked), np.concatenate(predicted)
    recon = []
    for k in range(0, len(test_images), 256):
        x = to_batch(np.asarray(test_images.images[k:k + 256]),
                     test_images.labels[k:k + 256])["image"]
        recon.append(vq.reconstruct(x.to(device)).permute(0, 2, 3, 1).cpu().numpy())
    samples = {"class_match": float((asked == predicted).mean()), "chance": 1.0 / n_classes,
               "n_images": int(len(asked)), "samples_per_class": samples_per_class,
               "temperature": temperature, "guidance": guidance}
    scores = {"real_test_accuracy": accuracy(classifier, np.asarray(test_images.images),
                                             test_images.labels),
              "reconstruction_accuracy": accuracy(classifier, np.concatenate(recon),
                                                  test_images.labels),
              "n_test_images": len(test_images), "trained_now": trained,
              "trained_on": str(train_images.path)}
    atomic_save_png(figure, image_grid(np.concatenate(grids), min(10, samples_per_class)))
    return samples, scores, figure
