"""A small CNN that labels images, trained once on the real training images, for scoring what a
class-conditional prior samples: the share of samples decoded to images that it labels as the
class asked for (Salimans et al.'s "Inception score" idea, with a classifier of the data itself).

The classifier: three blocks of a 3x3 convolution (32, 64, 128 channels), batch normalisation,
ReLU and 2x2 max-pooling, then a linear layer; Adam at 2e-3 with a cosine decay, batch 128,
`EPOCHS` epochs, seeded. It trains in channels-last memory (oneDNN's own layout: NCHW
max-pooling and batch norm took a third of the time) and, on a CPU with bf16 units
(`_bf16_autocast`), under bf16 autocast: on this project's 2-core AVX-512 BF16 machine an
epoch of the 20,000 built-in training images takes about 8 s instead of 17 s (README "Priors",
`python tools/bench_classifier.py`). On the built-in test images 4 epochs gave 89.7-91.5 %
over seeds 0-2 (`... --epochs 4 --seeds 0 1 2`), too near the 90 % that scoring needs; 5 epochs
give 92.6-93.4 % (`... --seeds 0 1 2`). Labelling runs
in fp32. It is saved as a plain dict of tensors (``torch.load(weights_only=True)``, never a
pickle of code) with the SHA-256 of the images it was trained on, and retrained only when they,
its seed, `EPOCHS` or `VERSION` change.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechvq.data.code_dump import file_sha256
from speechvq.fileio import atomic_path

__all__ = ["ImageClassifier", "train_classifier", "load_or_train_classifier", "accuracy",
           "predict"]

EPOCHS = 5
BATCH = 128
LR = 2e-3
# how it is trained; a saved classifier of another version is trained again (2: channels-last
# memory and bf16 autocast, whose classifier differs from version 1's NCHW fp32 one)
VERSION = 2


class ImageClassifier(nn.Module):
    """(B, C, H, W) uint8 -> (B, n_classes) logits."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((channels, 32), (32, 64), (64, 128)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(), nn.MaxPool2d(2)]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                 nn.Linear(128 * 16, n_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.float() / 255.0 - 0.5)


def _nchw(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) -> (N, C, H, W) in channels-last memory: the array's own order (copied:
    a dump's images are a read-only memory map)."""
    return torch.from_numpy(np.array(images, order="C")).permute(0, 3, 1, 2)


def _bf16_autocast() -> bool:
    """Whether this CPU runs oneDNN in bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is
    emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def train_classifier(images: np.ndarray, labels: np.ndarray, n_classes: int, *, seed: int = 0,
                     epochs: int = EPOCHS, progress: bool = False,
                     fast: bool = True) -> ImageClassifier:
    """Train on (N, H, W, C) uint8 `images` with (N,) `labels`; returns it in eval mode.
    `fast=False` trains in NCHW memory and fp32, the baseline of tools/bench_classifier.py."""
    from speechvq.progress import tqdm

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ImageClassifier(images.shape[-1], n_classes)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast and _bf16_autocast())
    x_all, y_all = _nchw(images), torch.from_numpy(np.asarray(labels, np.int64))
    if fast:
        model = model.to(memory_format=torch.channels_last)
    else:
        x_all = x_all.contiguous()
    n = len(x_all)
    steps = epochs * -(-n // BATCH)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    with torch.enable_grad():
        for _ in tqdm(range(epochs), desc="classifier", unit="epoch", disable=not progress):
            order = torch.randperm(n, generator=gen)
            for k in range(0, n, BATCH):
                idx = order[k:k + BATCH]
                with autocast:
                    logits = model(x_all[idx])
                loss = F.cross_entropy(logits.float(), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return model.eval()


@torch.no_grad()
def predict(model: ImageClassifier, images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Labels of images ((B, C, H, W) uint8 tensor, or (N, H, W, C) uint8 array); (N,) int64."""
    x = images if torch.is_tensor(images) else _nchw(images)
    return torch.cat([model(x[k:k + 512]).argmax(1) for k in range(0, len(x), 512)]).numpy()


def accuracy(model: ImageClassifier, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of (N, H, W, C) images labelled as `labels`."""
    return float((predict(model, images) == np.asarray(labels)).mean())


def load_or_train_classifier(path: str | os.PathLike, train_dump, *, seed: int = 0,
                             progress: bool = False) -> tuple[ImageClassifier, bool]:
    """The classifier saved at `path` if it was trained on `train_dump`'s images (their
    SHA-256), else one trained now and saved there (atomically).

    Returns:
        (the classifier in eval mode, whether it was trained now).
    """
    path = Path(path)
    digest = file_sha256(Path(train_dump.path) / "images.npy")
    n_classes, channels = len(train_dump.classes), train_dump.shape[2]
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if (state.get("images_sha256") == digest and state.get("seed") == seed
                and state.get("version", 1) == VERSION and state.get("epochs") == EPOCHS):
            model = ImageClassifier(channels, n_classes)
            model.load_state_dict(state["model"])
            return model.eval(), False
    model = train_classifier(np.asarray(train_dump.images), train_dump.labels, n_classes,
                             seed=seed, epochs=EPOCHS, progress=progress)
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "images_sha256": digest, "seed": seed,
                    "version": VERSION, "epochs": EPOCHS,
                    "train_images": str(train_dump.path)}, tmp)
    return model, True
